"""``dns-sidecar audit``: one sweep from the command line with the service's table, credentials
and DNSRecords (the real watch against the fake API server, Cloudflare on the emulator); it
changes nothing, prints the plan, and exits 0 (nothing to do), 1 (something) or 2 (could not
look). The command runs in a thread (it has its own event loop), the servers in the test's."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path

import pytest

from sidecar import cli
from tests.builders import dns_record_spec, operator_upsert
from tests.conftest import RunningEmulator, RunningKube, StartSidecar, make_settings
from tests.test_sweeps_e2e import PUBLIC, foreign, table

MARK = "managed by dns-sidecar (owner=dns-sidecar, class=public)"
HEAD = "(account cf; DNSClass internal, public; orphans: prune, drift: repair)"


async def audit(*args: str) -> tuple[int, str]:
    """Run ``dns-sidecar audit ARGS``; its exit code and what it printed."""
    out = io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(out):
            return cli.main(["audit", *args])

    code = await asyncio.to_thread(run)
    return code, out.getvalue()


@pytest.fixture
def routing(
    tmp_path: Path, kube: RunningKube, cf: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("DNS_SIDECAR_KUBECONFIG", str(kube.kubeconfig))
    monkeypatch.setenv("DNS_SIDECAR_KUBERNETES_SYNC_TIMEOUT", "5")
    path = tmp_path / "routing.yaml"
    path.write_text(table(cf))
    kube.fake.set_dns_class("public", PUBLIC)
    return path


def marked(cf: RunningEmulator, name: str, content: str) -> None:
    foreign(cf, name, content, comment=MARK)


async def test_nothing_to_do_exits_0(routing: Path, kube: RunningKube, cf: RunningEmulator) -> None:
    """Every DNSRecord's set is in place: exit 0, and the plan says so per zone."""
    kube.fake.set_dns_record(
        "apps", "www", dns_record_spec("A", "example.com", "www", ["192.0.2.1"], "public")
    )
    marked(cf, "www", "192.0.2.1")
    code, printed = await audit("--config", str(routing))
    assert (code, printed) == (
        0,
        (
            f"zone example.com {HEAD}\n"
            "  nothing to do\n"
            "\n"
            f"zone example.org {HEAD}\n"
            "  nothing to do\n"
            "\n"
            "Nothing to do: every zone holds what the DNSRecords want.\n"
        ),
    )


async def test_the_plan_says_create_change_delete_and_report_and_changes_nothing(
    routing: Path, kube: RunningKube, cf: RunningEmulator
) -> None:
    """An orphan, a missing set, a changed one and a foreign record: each a step with its
    reason, exit 1, and not one write at the provider though the zone prunes and repairs."""
    for name, values in (("www", ["192.0.2.1"]), ("api", ["192.0.2.2"]), ("taken", ["192.0.2.3"])):
        spec = dns_record_spec("A", "example.com", name, values, "public")
        kube.fake.set_dns_record("apps", name, spec)
    marked(cf, "www", "198.51.100.1")
    marked(cf, "old", "192.0.2.9")
    foreign(cf, "taken", "198.51.100.7")
    cf.emulator.stats.clear()
    code, printed = await audit("--config", str(routing))
    assert cf.emulator.writes() == 0
    assert code == 1
    assert printed.splitlines()[:10] == [
        f"zone example.com {HEAD}",
        "  create  A     api.example.com  192.0.2.2 (TTL 300)",
        (
            "          drift: DNSRecord apps/api (DNSClass public): missing: the provider holds no "
            "such set."
        ),
        "  delete  A     old.example.com  192.0.2.9",
        (
            "          orphan: No DNSRecord of DNSClass public wants it any more (renamed, "
            "retyped, deleted while the DNSClass was gone, or its finalizer removed by hand)."
        ),
        "  report  A     taken.example.com  198.51.100.7",
        (
            "          conflict: taken.example.com holds A records dns-sidecar does not own for "
            "this DNSClass (198.51.100.7); remove them, or set ownership: adopt for the zone."
        ),
        "  change  A     www.example.com  198.51.100.1 -> 192.0.2.1 (TTL 300)",
        (
            "          drift: DNSRecord apps/www (DNSClass public): holds 198.51.100.1, wanted "
            "192.0.2.1."
        ),
        "",
    ]
    assert printed.splitlines()[-1] == "4 step(s): 1 create, 1 change, 1 delete, 1 report."


async def test_json_plan(routing: Path, kube: RunningKube, cf: RunningEmulator) -> None:
    """--json: the same steps as data, with the counts and the exit code."""
    marked(cf, "old", "192.0.2.9")
    code, printed = await audit("--config", str(routing), "--json")
    plan = json.loads(printed)
    assert code == 1
    assert (plan["complete"], plan["counts"], plan["exitCode"]) == (
        True,
        {"orphan": 1, "drift": 0, "conflict": 0},
        1,
    )
    assert [(s["step"], s["name"], s["values"], s["fix"]) for s in plan["steps"]] == [
        ("delete", "old.example.com", ["192.0.2.9"], "prune")
    ]


async def test_could_not_look_exits_2(
    routing: Path, tmp_path: Path, cf: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing that fails, a table without a dnsClass client, and a table that does not load:
    exit 2, each saying why."""
    cf.emulator.fail(503, times=None)
    code, printed = await audit("--config", str(routing))
    assert code == 2
    assert (
        "  could not list it: Cloudflare account 'cf': Cloudflare failed to list DNS records"
        in printed
    )
    assert printed.endswith("Could not look at every zone (above); exit 2.\n")
    cf.emulator.faults.clear()

    plain = tmp_path / "plain.yaml"
    plain.write_text(
        table(cf)
        .replace("dnsClass: public", "algorithm: SHA256, secrets: [{value: s}]")
        .replace("  - {name: internal, dnsClass: internal}\n", "")
    )
    code, printed = await audit("--config", str(plain))
    assert code == 2
    assert printed.startswith(
        "Could not look: the DNSRecords could not be read (no client of the routing "
        "table names a dnsClass"
    )

    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nzones: []\n")
    assert (await audit("--config", str(broken)))[0] == 2
    monkeypatch.setenv("DNS_SIDECAR_SWEEP_INTERVAL", "0.5")
    assert (await audit("--config", str(routing)))[0] == 2


async def test_audit_sees_what_the_service_wrote(
    routing: Path, kube: RunningKube, cf: RunningEmulator, start_sidecar: StartSidecar
) -> None:
    """The service and audit agree: what the operator's upserts wrote through the sidecar is
    exactly what audit expects (exit 0), and a rename shows as one delete."""
    spec = dns_record_spec("A", "example.com", "www", ["192.0.2.1"], "public")
    kube.fake.set_dns_record("apps", "www", spec)
    settings = make_settings(table={"config": routing}, kubernetes={"kubeconfig": kube.kubeconfig})
    sidecar = await start_sidecar(settings)
    reply = await sidecar.caller.call("POST", "/records", operator_upsert(spec, PUBLIC))
    assert reply.status == 200
    assert (await audit("--config", str(routing)))[0] == 0
    kube.fake.set_dns_record("apps", "www", spec | {"subdomain": "web"})
    code, printed = await audit("--config", str(routing))
    assert code == 1
    assert "  delete  A     www.example.com  192.0.2.1" in printed
