"""The management port: liveness, readiness, metrics and the status page."""

from __future__ import annotations

from pydantic import SecretStr

from sidecar.app import MANAGEMENT_API, create_app
from sidecar.auth.signing import Algorithm
from tests.conftest import SECRET, StartManagement, StartSidecar, make_settings


async def test_livez_and_readyz(
    start_sidecar: StartSidecar, start_management: StartManagement
) -> None:
    """/livez answers from the start; /readyz is ready once the app's startup has run (nobody
    else marks it), and 503 again once shutdown begins."""
    sidecar = await start_sidecar()
    management = await start_management(sidecar)
    assert (await management.call("GET", "/livez")).body == {"status": "alive"}
    assert (await management.call("GET", "/readyz")).body == {"status": "ready", "generation": 1}
    sidecar.app[MANAGEMENT_API].readiness.draining()
    reply = await management.call("GET", "/readyz")
    assert (reply.status, reply.body) == (503, {"status": "draining"})


async def test_readyz_waits_for_every_startup_step() -> None:
    """An app whose startup has not run is not ready: readiness is the last startup step."""
    app = create_app(make_settings())
    assert app[MANAGEMENT_API].readiness.verdict() == ("starting", None)
    assert app.cleanup_ctx[-1].__name__ == "serving"


async def test_metrics_count_requests_and_latency(
    start_sidecar: StartSidecar, start_management: StartManagement
) -> None:
    """/metrics has requests by endpoint and status, the latency histogram and the replay cache."""
    settings = make_settings(hmac_secret=SecretStr(SECRET.decode()))
    sidecar = await start_sidecar(settings, secret=SECRET)
    management = await start_management(sidecar)
    await sidecar.caller.upsert("A", "example.com", "www", ["192.0.2.1"])
    await sidecar.caller.call("GET", "/records/A/example.com/nothing")
    reply = await management.call("GET", "/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    text = reply.body
    assert 'dns_sidecar_requests_total{endpoint="/records",method="POST",status="200"} 1.0' in text
    assert (
        'dns_sidecar_requests_total{endpoint="/records/{type}/{domain}/{subdomain}",'
        'method="GET",status="404"} 1.0'
    ) in text
    assert 'dns_sidecar_request_duration_seconds_count{endpoint="/records"} 1.0' in text
    assert "dns_sidecar_replay_cache_entries 2.0" in text
    assert 'dns_sidecar_record_changes_total{account="memory",outcome="created"} 1.0' in text
    assert "dns_sidecar_config_generation 1.0" in text


async def test_made_up_methods_share_one_metric_label(
    start_sidecar: StartSidecar, start_management: StartManagement
) -> None:
    """Methods outside the standard ones (WebDAV's, which the parser accepts, or any token with
    aiohttp's Python parser) are counted as "other", so a caller cannot grow the number of
    series; the standard ones keep their names."""
    sidecar = await start_sidecar()
    management = await start_management(sidecar)
    for method in ("PROPFIND", "MKCOL", "PUT"):
        assert (await sidecar.caller.call(method, "/health", sign=False)).status == 405
    text = (await management.call("GET", "/metrics")).body
    assert 'endpoint="unmatched",method="other",status="405"} 2.0' in text
    assert 'endpoint="unmatched",method="PUT",status="405"} 1.0' in text
    assert "PROPFIND" not in text


async def test_status_page(start_sidecar: StartSidecar, start_management: StartManagement) -> None:
    """/status shows the table's source, zones, accounts with health, clients and the cache."""
    settings = make_settings(hmac_secret=SecretStr(SECRET.decode()), hmac_algorithm="SHA512")
    sidecar = await start_sidecar(settings, secret=SECRET, algorithm=Algorithm.SHA512)
    management = await start_management(sidecar)
    before = (await management.call("GET", "/status")).body
    assert before["accounts"] == {
        "memory": {
            "provider": "memory",
            "healthy": None,
            "message": "not checked yet",
            "recordSets": 0,
            "snapshot": None,
        }
    }
    assert (await sidecar.caller.call("GET", "/health")).status == 200
    status = (await management.call("GET", "/status")).body
    assert status["config"] == {
        "file": None,
        "source": "embedded default (in-memory provider serving every zone)",
        "generation": 1,
        "lastReloadError": None,
        "failedReloads": 0,
    }
    assert status["zones"] == [{"zone": ".", "account": "memory", "clients": "all"}]
    assert status["clients"] == [
        {
            "name": "env",
            "source": "HMAC_SECRET environment",
            "algorithm": "SHA512",
            "signed": True,
            "secrets": 1,
            "zones": "all",
            "refused": None,
        }
    ]
    assert status["accounts"]["memory"] == {
        "provider": "memory",
        "healthy": True,
        "message": "in-memory provider",
        "recordSets": 0,
        "snapshot": None,
    }
    assert status["replayCache"] == {"entries": 1, "capacity": 100000}
    assert SECRET.decode() not in str(status)
