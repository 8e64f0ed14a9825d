"""The routing table: schema errors with key paths and lines, and the runtime built from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from sidecar.auth.clients import ClientAuth, Refused
from sidecar.auth.signing import Algorithm
from sidecar.config import loader, schema
from sidecar.config.runtime import build
from sidecar.errors import ConfigError, DomainNotAllowed
from sidecar.providers.base import Ownership
from sidecar.providers.cloudflare.provider import CloudflareProvider
from sidecar.providers.memory import MemoryProvider
from sidecar.routing.table import RoutingTable
from tests.builders import local
from tests.conftest import make_settings

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "routing.example.yaml"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        loader.parse(text, "t.yaml")
    return caught.value.problems


def test_example_table_routes_by_longest_suffix(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped example builds; names go to the longest matching zone with merged defaults."""
    monkeypatch.setenv("CF_WORK_KEY", "key")
    runtime = build(
        loader.read(EXAMPLE).spec, make_settings(), source=str(EXAMPLE), coordination=local()
    )
    lab = runtime.table.resolve("a.b.lab.example.com")
    assert (lab.zone.name, lab.account.name, lab.zone.ttl, lab.zone.ownership) == (
        "lab.example.com",
        "scratch",
        60,
        Ownership.OFF,
    )
    apex = runtime.table.resolve("example.com")
    assert (apex.account.name, apex.zone.zone_id, apex.zone.ttl) == (
        "personal",
        "023e105f4ecef8ad9ca31a8372d0c353",
        300,
    )
    org = runtime.table.resolve("www.example.org")
    assert (org.zone.proxied, org.zone.comment) == (True, "owned by dns-sidecar (work)")
    assert isinstance(lab.account.provider, MemoryProvider)
    assert isinstance(org.account.provider, CloudflareProvider)
    with pytest.raises(DomainNotAllowed):
        runtime.table.resolve("notexample.com")  # a suffix, but not on a label boundary


def test_example_table_shows_every_key() -> None:
    """config/routing.example.yaml ("every key, with what it does") uses every schema key."""

    def keys(model: type[BaseModel]) -> set[str]:
        return {field.alias or name for name, field in model.model_fields.items()}

    wanted: set[str] = set()
    for model in (
        schema.RoutingTableSpec,
        schema.Defaults,
        schema.ClientSpec,
        schema.RateLimit,
        schema.CloudflareAccount,
        schema.MemoryAccount,
        schema.Rfc2136Account,
        schema.Tsig,
        schema.ZoneSpec,
    ):
        wanted |= keys(model)

    def used(node: object) -> set[str]:
        if isinstance(node, dict):
            return set(node).union(*(used(v) for v in node.values()))
        if isinstance(node, list):
            return set().union(*(used(v) for v in node))
        return set()

    assert wanted - used(yaml.safe_load(EXAMPLE.read_text())) == set()


def test_client_secrets_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Client secrets come from env and files; an unset one refuses the client, naming it."""
    secret_file = tmp_path / "hmac"
    secret_file.write_text("from-file\n")
    monkeypatch.setenv("HMAC_A", "from-env")
    spec = loader.parse(
        f"""
version: 1
clients:
  - name: a
    algorithm: sha-512
    secrets: [{{env: HMAC_A}}, {{file: {secret_file}}}]
  - name: b
    secrets: [{{env: UNSET_VARIABLE}}]
accounts: [{{name: m, provider: memory}}]
zones: [{{name: example.com, account: m}}]
""",
        "t.yaml",
    )
    a, b = build(spec, make_settings(), source="t.yaml", coordination=local()).clients
    assert a.state() == ClientAuth(Algorithm.SHA512, (b"from-env", b"from-file"))
    assert b.state() == Refused(
        "client 'b': The credential environment variable UNSET_VARIABLE is empty or unset."
    )
    secret_file.write_text("rotated\n")  # read again at the next use: rotation needs no reload
    assert a.state() == ClientAuth(Algorithm.SHA512, (b"from-env", b"rotated"))


def test_every_problem_is_listed_with_its_line() -> None:
    """Unknown keys, bad values, duplicates and dangling references, each with path and line."""
    found = problems(
        """version: 1
defaults: {ttl: 0, ownership: sometimes}
clients:
  - {name: c, dnsClass: home, secrets: [{value: x}]}
  - {name: d, secrets: [{value: x}], zones: [elsewhere.net]}
accounts:
  - {name: cf, provider: cloudflare, apiToken: {env: T}, email: a@b.c}
  - {name: cf2, provider: cloudflare}
  - {name: m, provider: memory, apiToken: {env: T}}
zones:
  - {name: example.com, account: m, zoneId: nothex}
  - {name: EXAMPLE.com., account: m}
  - {name: "bad name", account: gone}
"""
    )
    assert found == [
        "defaults.ttl (line 2): Input should be greater than or equal to 1",
        "defaults.ownership (line 2): Input should be 'strict', 'adopt' or 'off'",
        "clients[0] (line 4): give either dnsClass or algorithm + secrets, not both",
        (
            "clients[1].zones[0] (line 5): client 'd' may change 'elsewhere.net', but no zone "
            "routes it"
        ),
        "accounts[0] (line 7): email goes with apiKey, not with apiToken",
        "accounts[1] (line 8): a Cloudflare account needs exactly one of apiToken or apiKey",
        "accounts[2].apiToken (line 9): unknown key",
        "zones[0].zoneId (line 11): String should match pattern '^[0-9a-f]{32}$'",
        "zones[1].name (line 12): duplicate name 'example.com' (first at zones[0])",
        (
            "zones[2].name (line 13): zone name 'bad name' has a label 'bad name' with "
            "characters a DNS name cannot hold (letters, digits, '-' and '_' only; no leading "
            "or trailing '-')."
        ),
        (
            "zones[2].account (line 13): zone 'bad name' names account 'gone', which is not "
            "defined (accounts: cf, cf2, m)"
        ),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the routing table must be a YAML mapping (version, zones...)"),
        ("version: [", "not valid YAML"),
        ("version: 1\nversion: 1\naccounts: []\nzones: []\n", "version (line 2): duplicate key"),
        ("version: 2\n", "version (line 1): Input should be 1"),
        ("version: 1\nzones: []\n", "accounts (line 1): required key is missing"),
    ],
)
def test_structural_problems(text: str, expected: str) -> None:
    """Empty files, broken YAML, duplicate keys, wrong version and missing sections are named."""
    assert any(problem.startswith(expected) for problem in problems(text)), problems(text)


def test_unreadable_file(tmp_path: Path) -> None:
    """A missing file is a ConfigError naming the path."""
    with pytest.raises(ConfigError, match="cannot read the file"):
        loader.read(tmp_path / "missing.yaml")


def test_bare_off_means_ownership_off() -> None:
    """YAML 1.1 turns `off` into false; the table still means ownership off."""
    spec = loader.parse(
        "version: 1\ndefaults: {ownership: off}\naccounts: [{name: m, provider: memory}]\n"
        "zones: [{name: example.com, account: m}]\n",
        "t.yaml",
    )
    assert spec.defaults.ownership is Ownership.OFF


def test_root_zone_catches_everything_else() -> None:
    """A zone named '.' serves every name no longer suffix covers."""
    spec = loader.parse(
        "version: 1\naccounts: [{name: m, provider: memory}, {name: n, provider: memory}]\n"
        "zones: [{name: '.', account: m}, {name: example.com, account: n}]\n",
        "t.yaml",
    )
    table = build(spec, make_settings(), source="t", coordination=local()).table
    assert table.resolve("anything.test").account.name == "m"
    assert table.resolve("www.example.com").account.name == "n"


def test_resolved_names_are_remembered_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name's route is searched once; the memory of names stays bounded; an unrouted name is
    refused every time (never remembered)."""
    spec = loader.parse(
        "version: 1\naccounts: [{name: n, provider: memory}]\n"
        "zones: [{name: example.com, account: n}]\n",
        "t.yaml",
    )
    table = build(spec, make_settings(), source="t", coordination=local()).table
    monkeypatch.setattr(RoutingTable, "REMEMBERED", 3)
    searched: list[str] = []
    search = table._search  # noqa: SLF001 - our own table's lookup, counted
    monkeypatch.setattr(
        table,
        "_search",
        lambda view, fqdn, client: searched.append(fqdn) or search(view, fqdn, client),
    )
    assert table.resolve("www.example.com") is table.resolve("www.example.com")
    assert searched == ["www.example.com"]
    for name in ("a", "b", "c", "d"):
        table.resolve(f"{name}.example.com")
    assert len(table._anyone.resolved) <= 3  # noqa: SLF001 - our own table's memo, bounded
    for _ in range(2):
        with pytest.raises(DomainNotAllowed):
            table.resolve("www.example.org")
    assert searched.count("www.example.org") == 2


def test_problems_for_a_first_user() -> None:
    """A misspelt key gets the nearest one, a bare number or boolean name gets "quote it"."""
    assert problems(
        "version: 1\n"
        "accounts: [{name: m, provider: memory}]\n"
        "zone: []\n"
        "zones:\n"
        "  - {name: 123, account: m}\n"
        "  - {name: off, account: m}\n"
    ) == [
        "zone (line 3): unknown key (did you mean 'zones'?)",
        "zones[0].name (line 5): YAML reads 123 as a number, not a name: quote it ('123')",
        (
            "zones[1].name (line 6): YAML reads an unquoted yes/no/on/off/true/false as a "
            "boolean, not a name: quote it"
        ),
    ]


def test_yaml_syntax_errors_name_the_file() -> None:
    """The parser's position names the file, not "<unicode string>"."""
    (problem,) = problems("version: 1\naccounts: [\n")
    assert 'in "t.yaml", line 3, column 1' in problem
    assert "<unicode string>" not in problem


def test_sweep_settings_per_zone_and_the_comment_leaves_room_for_the_owner() -> None:
    """orphans and drift come from defaults or the zone (report by default); a bad value and a
    comment too long for the owner to fit beside it are named with their line."""
    spec = loader.parse(
        "version: 1\ndefaults: {orphans: prune}\naccounts: [{name: m, provider: memory}]\n"
        "zones:\n  - {name: example.com, account: m}\n"
        "  - {name: example.org, account: m, orphans: report, drift: repair}\n",
        "t.yaml",
    )
    runtime = build(spec, make_settings(), source="t.yaml", coordination=local())
    policies = [(r.zone.name, r.zone.orphans.value, r.zone.drift.value) for r in runtime.table]
    assert policies == [("example.com", "prune", "report"), ("example.org", "report", "repair")]
    long = "x" * 62
    found = problems(
        f"version: 1\ndefaults: {{comment: {long}}}\naccounts: [{{name: m, provider: memory}}]\n"
        "zones: [{name: example.com, account: m, orphans: delete, drift: fix}]\n"
    )
    assert found == [
        (
            "defaults.comment (line 2): the comment is 62 characters; keep it to 61, so that the "
            "owner and DNSClass fit beside it in the ownership marker (Cloudflare keeps 100 "
            "characters of a record's comment)"
        ),
        "zones[0].orphans (line 4): Input should be 'report' or 'prune'",
        "zones[0].drift (line 4): Input should be 'report' or 'repair'",
    ]
