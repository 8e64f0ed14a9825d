"""What the Cloudflare provider recovers from, and how it reports what it cannot: a zone
re-created under a new id, a record removed by hand between our read and our batch, odd error
bodies."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sidecar.clock import SystemClock
from sidecar.coordination.budget import Budget
from sidecar.errors import ProviderError
from sidecar.providers.cloudflare.auth import Auth
from sidecar.providers.cloudflare.client import CloudflareApi
from tests.conftest import RunningEmulator, StartSidecar, eventually
from tests.test_cloudflare import COM, MARK, sidecar_for, table, warm

LIST = "GET /zones/{zone_id}/dns_records"
BATCH = "POST /zones/{zone_id}/dns_records/batch"


async def test_a_zone_recreated_under_a_new_id_is_looked_up_again(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """The cached id answers 7003 once the zone is re-created: the id is dropped, looked up
    again once, and the request served on the new one (no restart)."""
    caller = await sidecar_for(start_sidecar, cf, table(cf))
    await warm(caller, cf)
    del cf.emulator.state.zones[COM]
    cf.emulator.state.add_zone("example.com", "c" * 32)
    reply = await caller.upsert("A", "example.com", "www", ["192.0.2.1"])
    assert (reply.status, cf.records("example.com")[0]["content"]) == (200, "192.0.2.1")
    assert cf.calls() == {LIST: 2, "GET /zones": 1, BATCH: 1}  # 7003, lookup, read, batch
    got = await caller.call("GET", "/records/A/example.com/www")
    assert (got.status, cf.calls()[LIST]) == (200, 3)  # the new id is kept: no lookup


async def test_a_configured_zone_id_that_is_gone_says_to_check_it(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """With zoneId from the routing table there is nothing to look up: one 502 that says
    which id to check."""
    caller = await sidecar_for(start_sidecar, cf, table(cf, zone_extra="    zoneId: " + "d" * 32))
    reply = await caller.call("GET", "/records/A/example.com/www")
    assert (reply.status, reply.code, reply.message) == (
        502,
        "PROVIDER_ERROR",
        (
            "Cloudflare account 'personal': Cloudflare knows no zone by the id used (Could not "
            "route to /zones/dddddddddddddddddddddddddddddddd (code 7003)); if the zone was "
            "re-created, "
            "check or remove its zoneId in the routing table."
        ),
    )
    assert cf.calls() == {LIST: 1}


async def test_a_record_removed_by_hand_before_the_batch_is_planned_again(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """A record deleted at Cloudflare between our read and our batch (81044): read again,
    plan again, one more batch, and the upsert succeeds."""
    caller = await sidecar_for(start_sidecar, cf, table(cf))
    assert (await caller.upsert("A", "example.com", "www", ["192.0.2.1"])).status == 200
    cf.emulator.stats.clear()
    cf.emulator.delay(0.5, path="dns_records")  # the read is served, then answered late
    change = asyncio.ensure_future(caller.upsert("A", "example.com", "www", ["192.0.2.2"]))
    await eventually(lambda: cf.calls().get(LIST) == 1)
    zone = cf.emulator.state.zones[COM]
    for record_id in list(zone.records):
        zone.remove(record_id)  # by hand, while our read is on its way back
    reply = await change
    assert (reply.status, reply.body["message"]) == (200, "Record created successfully")
    assert [(r["content"], r["comment"]) for r in cf.records("example.com")] == [
        ("192.0.2.2", MARK)
    ]
    assert cf.calls() == {LIST: 2, BATCH: 2}


async def test_a_record_missing_twice_is_a_retryable_503(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """81044 on the retry too: 503 PROVIDER_UNAVAILABLE (retryable), not a 502 that asks a
    person to step in."""
    caller = await sidecar_for(start_sidecar, cf, table(cf))
    await warm(caller, cf)
    cf.emulator.fail(404, code=81044, message="Record does not exist.", times=2, path="batch")
    reply = await caller.upsert("A", "example.com", "www", ["192.0.2.1"])
    assert (reply.status, reply.code, reply.message) == (
        503,
        "PROVIDER_UNAVAILABLE",
        (
            "Cloudflare account 'personal': a record to change was removed at Cloudflare while the "
            "change was being made (Record does not exist. (code 81044)); retry the request (it "
            "reads the name again)."
        ),
    )
    assert cf.calls() == {LIST: 2, BATCH: 2}


@pytest.mark.parametrize("code", ["not-a-number", "", "E42", 1.5])
async def test_an_error_code_that_is_not_a_number_is_a_provider_error(
    start_sidecar: StartSidecar, cf: RunningEmulator, code: Any
) -> None:
    """An error body whose code is not a number is reported with its message (502), not a
    500 raised while reading it."""
    caller = await sidecar_for(start_sidecar, cf, table(cf))
    await warm(caller, cf)
    cf.emulator.fail(400, code=code, message="Something odd", path="batch")
    reply = await caller.upsert("A", "example.com", "www", ["192.0.2.1"])
    shown = "" if code == "" else f" (code {code})"
    assert (reply.status, reply.code, reply.message) == (
        502,
        "PROVIDER_ERROR",
        (
            f"Cloudflare account 'personal': Cloudflare failed to apply the DNS record batch: "
            f"Something odd{shown} (HTTP 400)."
        ),
    )


async def test_only_an_answer_that_is_not_json_is_called_not_json(cf: RunningEmulator) -> None:
    """A ValueError raised inside the SDK call is not reported as "the answer was not JSON"
    (it is a bug, and surfaces as one); a body that does not parse is."""
    budget = Budget("personal", 100, 300, SystemClock())
    api = CloudflareApi("personal", lambda: Auth(token="cf-token"), budget, base_url=cf.base_url)

    async def sdk_bug(client: Any) -> Any:
        raise ValueError("Expected a non-empty value for `zone_id` but received ''")

    class Garbled:
        async def read(self) -> bytes:
            return b"<html>gateway</html>"

    async def garbled(client: Any) -> Any:
        return Garbled()

    try:
        with pytest.raises(ValueError, match="non-empty value"):
            await api._call("list DNS records", sdk_bug)  # noqa: SLF001 - our client's one call path
        with pytest.raises(ProviderError) as raised:
            await api._call("list DNS records", garbled)  # noqa: SLF001 - our client's one call path
        assert raised.value.message == (
            "Cloudflare account 'personal': the answer when asked to list DNS records was not JSON."
        )
    finally:
        await api.aclose()
