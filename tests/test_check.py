"""`check` finds what would fail every request: a zone default TTL its provider refuses (an
error naming the key it came from), unset `{env}` and missing `{file}` credentials (warnings,
errors with --strict); and a TTL refused at request time says where it came from.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.config import loader
from sidecar.config.runtime import build
from sidecar.config.schema import RoutingTableSpec
from sidecar.errors import ConfigError
from tests.builders import local
from tests.conftest import RunningEmulator, StartSidecar, make_settings
from tests.test_cli import run

CLOUDFLARE_RANGE = "1 (automatic) or 60 to 86400 seconds"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        loader.parse(text, "t.yaml")
    return caught.value.problems


def test_a_table_default_ttl_cloudflare_refuses_is_an_error_at_defaults_ttl() -> None:
    """defaults.ttl 30 on Cloudflare zones is one error at that key, naming every zone it hits;
    a memory zone with the same default is not one of them."""
    found = problems(
        "version: 1\n"
        "defaults: {ttl: 30}\n"
        "accounts:\n"
        "  - {name: cf, provider: cloudflare, apiToken: {value: t}}\n"
        "  - {name: mem, provider: memory}\n"
        "zones:\n"
        "  - {name: example.com, account: cf}\n"
        "  - {name: example.net, account: mem}\n"
        "  - {name: example.org, account: cf}\n"
        "  - {name: own.example.com, account: cf, ttl: 120}\n"
    )
    assert found == [
        (
            "defaults.ttl (line 2): TTL 30 is refused by Cloudflare, and it is the default of "
            "'example.com' (zones[0], account 'cf'), 'example.org' (zones[2], account 'cf'): use "
            f"{CLOUDFLARE_RANGE} here, or give those zones their own ttl; as it stands, every "
            "request without a ttl there fails"
        )
    ]


def test_a_zone_ttl_cloudflare_refuses_is_an_error_at_that_zone() -> None:
    """A zone's own ttl out of Cloudflare's range is named at zones[i].ttl with its line."""
    found = problems(
        "version: 1\n"
        "accounts:\n"
        "  - {name: cf, provider: cloudflare, apiToken: {value: t}}\n"
        "zones:\n"
        "  - name: example.com\n"
        "    account: cf\n"
        "    ttl: 100000\n"
    )
    assert found == [
        (
            "zones[0].ttl (line 7): TTL 100000 is refused by Cloudflare, which zone 'example.com' "
            f"is on (account 'cf'): use {CLOUDFLARE_RANGE}; as it stands, every request without a "
            "ttl there fails"
        )
    ]


@pytest.mark.parametrize(("ttl", "provider"), [(1, "cloudflare"), (60, "cloudflare"),
                                               (86400, "cloudflare"), (30, "memory")])  # fmt: skip
def test_ttls_the_provider_takes_pass(ttl: int, provider: str) -> None:
    """1, 60 and 86400 pass on Cloudflare; 30 passes on the memory provider."""
    credential = ", apiToken: {value: t}" if provider == "cloudflare" else ""
    spec = loader.parse(
        f"version: 1\ndefaults: {{ttl: {ttl}}}\n"
        f"accounts: [{{name: a, provider: {provider}{credential}}}]\n"
        "zones: [{name: example.com, account: a}]\n",
        "t.yaml",
    )
    assert spec.defaults.ttl == ttl


def unresolved_table(tmp_path: Path) -> Path:
    table = tmp_path / "routing.yaml"
    table.write_text(
        "version: 1\n"
        "clients:\n"
        f"  - {{name: op, secrets: [{{file: {tmp_path / 'gone'}}},\n"
        f"                          {{file: {tmp_path / 'hmac'}}}]}}\n"
        "accounts:\n"
        "  - {name: cf, provider: cloudflare, apiToken: {env: CHECK_TEST_TOKEN}}\n"
        "zones: [{name: example.com, account: cf}]\n"
    )
    (tmp_path / "hmac").write_text("s3cret\n")
    return table


def test_check_warns_of_unset_env_and_missing_file_credentials(tmp_path: Path) -> None:
    """`check` exits 0 but warns, naming the key path, of an unset {env} and a missing {file}."""
    table = unresolved_table(tmp_path)
    result = run("check", str(table))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"{table}: OK (1 zone(s), 1 account(s), 1 client(s), 2 warning(s))"
    )
    tail = (
        " Requests that need it fail (503) unless it is given where the sidecar runs; --strict "
        "makes this an error."
    )
    assert result.stderr.splitlines() == [
        (
            f"{table}: warning: accounts[0].apiToken: The credential environment variable "
            f"CHECK_TEST_TOKEN is empty or unset.{tail}"
        ),
        (
            f"{table}: warning: clients[0].secrets[0]: Cannot read the credential file "
            f"{tmp_path / 'gone'}: No such file or directory.{tail}"
        ),
    ]


def test_check_names_an_unset_rfc2136_tsig_secret(tmp_path: Path) -> None:
    """An RFC 2136 account's TSIG secret from an unset {env} is an error with --strict, at
    accounts[i].tsig.secret, like every other {env} or {file} credential."""
    table = tmp_path / "routing.yaml"
    table.write_text(
        "version: 1\n"
        "accounts:\n"
        "  - name: bind\n"
        "    provider: rfc2136\n"
        "    server: 192.0.2.53:53\n"
        "    tsig: {name: dns-sidecar., secret: {env: CHECK_TEST_TSIG}}\n"
        "zones: [{name: example.com, account: bind}]\n"
    )
    result = run("check", "--strict", str(table))
    assert (result.returncode, result.stderr.splitlines()[1:]) == (
        1,
        [
            (
                "  - accounts[0].tsig.secret: The credential environment variable "
                "CHECK_TEST_TSIG is empty or unset."
            )
        ],
    )


def test_check_strict_makes_them_errors_and_passes_once_they_resolve(tmp_path: Path) -> None:
    """With --strict the same table exits 1 listing both; set and present, it passes clean."""
    table = unresolved_table(tmp_path)
    result = run("check", "--strict", str(table))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        f"{table}: 2 problem(s) (--strict)",
        (
            "  - accounts[0].apiToken: The credential environment variable CHECK_TEST_TOKEN is "
            "empty or unset."
        ),
        (
            f"  - clients[0].secrets[0]: Cannot read the credential file {tmp_path / 'gone'}: "
            "No such file or directory."
        ),
    ]
    (tmp_path / "gone").write_text("old-secret\n")
    result = run("check", "--strict", str(table), env={"CHECK_TEST_TOKEN": "token"})
    assert (result.returncode, result.stderr) == (0, "")


async def test_a_refused_request_ttl_says_it_came_from_the_request(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """ttl 30 in the request: the 400 says it is the request's ttl, and details say so."""
    spec = loader.parse(
        "version: 1\n"
        f"accounts: [{{name: cf, provider: cloudflare, apiToken: {{value: cf-token}}, "
        f"baseUrl: '{cf.base_url}'}}]\n"
        "zones: [{name: example.com, account: cf}]\n",
        "t.yaml",
    )
    runtime = build(spec, make_settings(), source="t.yaml", coordination=local())
    caller = (await start_sidecar(runtime=runtime)).caller
    reply = await caller.upsert("A", "example.com", "www", ["192.0.2.1"], ttl=30)
    assert (reply.status, reply.code, reply.message) == (
        400,
        "INVALID_RECORD",
        (
            f"Invalid TTL 30 for Cloudflare: use {CLOUDFLARE_RANGE}. This TTL is the request's "
            "ttl: send a TTL the provider takes."
        ),
    )
    assert reply.body["error"]["details"] == {"field": "ttl", "source": "request"}


async def test_a_refused_zone_default_names_the_table_key_it_came_from(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """A zone default Cloudflare refuses (a table built without the loader's check) is named
    with the routing table key it came from, and what to do."""
    spec = RoutingTableSpec.model_validate(
        {
            "version": 1,
            "defaults": {"ttl": 45},
            "accounts": [
                {
                    "name": "cf",
                    "provider": "cloudflare",
                    "apiToken": {"value": "cf-token"},
                    "baseUrl": cf.base_url,
                }
            ],
            "zones": [
                {"name": "example.com", "account": "cf"},
                {"name": "example.org", "account": "cf", "ttl": 20},
            ],
        }
    )
    runtime = build(spec, make_settings(), source="t.yaml", coordination=local())
    caller = (await start_sidecar(runtime=runtime)).caller
    replies = [
        await caller.upsert("A", domain, "www", ["192.0.2.1"])
        for domain in ("example.com", "example.org")
    ]
    assert [(r.status, r.message, r.body["error"]["details"]) for r in replies] == [
        (
            400,
            (
                f"Invalid TTL 45 for Cloudflare: use {CLOUDFLARE_RANGE}. This TTL is the "
                f"default of zone 'example.com', from the routing table's defaults.ttl: "
                f"fix defaults.ttl (dns-sidecar check finds it), or send a ttl."
            ),
            {"field": "ttl", "source": "defaults.ttl"},
        ),
        (
            400,
            (
                f"Invalid TTL 20 for Cloudflare: use {CLOUDFLARE_RANGE}. This TTL is the "
                f"default of zone 'example.org', from the routing table's zones[1].ttl: "
                f"fix zones[1].ttl (dns-sidecar check finds it), or send a ttl."
            ),
            {"field": "ttl", "source": "zones[1].ttl"},
        ),
    ]
