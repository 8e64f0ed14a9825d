"""The value formats the README and the OpenAPI document give are the ones the server takes."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import yaml

from tests.conftest import StartSidecar

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_examples() -> dict[str, str]:
    """Type -> example value, from the README's "Record values" table."""
    section = README.read_text(encoding="utf-8").split("### Record values", 1)[1]
    rows = re.findall(r"^\| (\w+) \| [^|]+ \| `([^`]+)` \|$", section, flags=re.MULTILINE)
    return dict(rows)


def test_readme_and_openapi_give_one_example_per_type() -> None:
    """Every supported type has one example in the README, and the OpenAPI document has the same."""
    document = yaml.safe_load(
        resources.files("sidecar.protocol").joinpath("openapi.yaml").read_text()
    )
    values = document["components"]["schemas"]["RecordInput"]["properties"]["values"]
    examples = readme_examples()
    assert sorted(examples) == ["A", "AAAA", "CAA", "CNAME", "MX", "NS", "SRV", "TXT"]
    assert {e[0] for e in values["examples"]} == set(examples.values())
    assert all(f"`{value}`" in values["description"] for value in examples.values())


async def test_readme_examples_are_accepted_and_read_back_unchanged(
    start_sidecar: StartSidecar,
) -> None:
    """Each documented example upserts and reads back as written (it is already canonical)."""
    caller = (await start_sidecar()).caller
    got = {}
    for kind, value in readme_examples().items():
        sub = kind.lower()
        assert (await caller.upsert(kind, "example.com", sub, [value])).status == 200
        reply = await caller.call("GET", f"/records/{kind}/example.com/{sub}")
        got[kind] = reply.body["record"]["values"]
    assert got == {kind: [value] for kind, value in readme_examples().items()}
