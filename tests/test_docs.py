"""The docs hold: the value formats the README and the OpenAPI document give are the ones the
server takes; every relative link and repository path named in the README and docs/ exists; the
README stays short."""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

import yaml

from tests.conftest import StartSidecar

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
PAGES = [README, REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 250
# the operator's kustomize tree (config/default, config/crd/bases, config/rbac/...), named where
# the docs say what is taken from the operator's repository: not paths of this one
OPERATOR_PATHS = re.compile(r"^config/(crd|default|rbac|certmanager|webhook|manager|samples)\b")


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


def test_every_relative_link_resolves() -> None:
    """Every Markdown link in the README, CHANGELOG and docs/ that is not a URL points at a
    file or directory that exists (anchors aside)."""
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            if not (page.parent / target.split("#", 1)[0]).exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert broken == []


def test_every_repository_path_named_exists() -> None:
    """Every path into this repository the README and docs/ name (manifests/..., dev/...,
    config/..., tests/..., ...) exists, so a reader can follow each one."""
    pattern = re.compile(
        r"(?<![\w/.-])((?:manifests|dev|config|docs|tests|sidecar|bench|\.ci)/[\w./-]*[\w])"
    )
    missing = sorted(
        f"{page.relative_to(REPO)}: {path}"
        for page in PAGES
        for path in set(pattern.findall(page.read_text(encoding="utf-8")))
        if not OPERATOR_PATHS.match(path) and not (REPO / path).exists()
    )
    assert missing == []


def test_readme_is_short_and_links_every_docs_page() -> None:
    """The README stays at or under 250 lines, and links every page in docs/ (an index)."""
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    pages = {p.name for p in (REPO / "docs").glob("*.md")} - {"README.md"}
    linked = set(re.findall(r"\(docs/([\w.-]+\.md)\)", text))
    assert pages - linked == set()


def test_docs_index_links_every_docs_page() -> None:
    """docs/README.md, the index of docs/, links every other page there."""
    text = (REPO / "docs" / "README.md").read_text(encoding="utf-8")
    pages = {p.name for p in (REPO / "docs").glob("*.md")} - {"README.md"}
    linked = set(re.findall(r"\]\(([\w.-]+\.md)\)", text))
    assert pages - linked == set()


def test_development_layout_is_the_layers_contract() -> None:
    """docs/development.md's layout lists the layers of pyproject.toml's contract, in order."""
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = [layer.replace("sidecar.", "") for layer in contracts["contracts"][0]["layers"]]
    text = (REPO / "docs" / "development.md").read_text(encoding="utf-8")
    block = text.split("Layout, top to bottom", 1)[1].split("\n\n")[1]
    shown = [line.strip().removeprefix("-> ") for line in block.splitlines()]
    assert shown == layers
