"""The batch plan for one name: unit tests of ``providers/cloudflare/diff.plan``."""

from __future__ import annotations

from sidecar.providers.cloudflare.diff import Desired, Plan, plan
from sidecar.providers.cloudflare.mapping import CloudflareRecord

MARK = "managed by dns-sidecar"


def record(
    ident: str, value: str, *, ttl: int = 300, proxied: bool = False, comment: str | None = MARK
) -> CloudflareRecord:
    return CloudflareRecord(ident, "A", "www.example.com", value, ttl, proxied, comment)


def want(*values: str, ttl: int = 300, mark_existing: bool = True) -> Desired:
    return Desired("A", "www.example.com", values, ttl, False, MARK, mark_existing)


def post(value: str) -> dict[str, object]:
    return {
        "type": "A",
        "name": "www.example.com",
        "ttl": 300,
        "proxied": False,
        "comment": MARK,
        "content": value,
    }


def test_nothing_there_creates_one_record_per_value() -> None:
    """An empty name gets one post per value, nothing else."""
    assert plan([], want("192.0.2.1", "192.0.2.2")) == Plan(
        posts=[post("192.0.2.1"), post("192.0.2.2")]
    )


def test_unchanged_set_plans_nothing() -> None:
    """The same values with the same settings: an empty plan (no write at all)."""
    result = plan(
        [record("a", "192.0.2.1"), record("b", "192.0.2.2")], want("192.0.2.2", "192.0.2.1")
    )
    assert (result, result.empty) == (Plan(), True)


def test_changed_value_is_patched_in_place_not_deleted_and_created() -> None:
    """A value that goes is reused for a value that comes, so the name never empties."""
    assert plan([record("a", "192.0.2.1")], want("192.0.2.9")) == Plan(
        patches=[{"id": "a", **post("192.0.2.9")}]
    )


def test_shrinking_set_deletes_the_leftovers_only() -> None:
    """Values no longer wanted are deleted; the kept one is left alone."""
    existing = [record("a", "192.0.2.1"), record("b", "192.0.2.2"), record("c", "192.0.2.3")]
    assert plan(existing, want("192.0.2.2")) == Plan(deletes=[{"id": "a"}, {"id": "c"}])


def test_duplicate_of_a_kept_value_is_deleted() -> None:
    """Two records holding one value (left by an old merge) collapse into one."""
    assert plan([record("a", "192.0.2.1"), record("b", "192.0.2.1")], want("192.0.2.1")) == Plan(
        deletes=[{"id": "b"}]
    )


def test_setting_changes_on_kept_values_are_patched() -> None:
    """A kept value whose TTL differs is patched with the TTL alone."""
    assert plan([record("a", "192.0.2.1", ttl=60)], want("192.0.2.1")) == Plan(
        patches=[{"id": "a", "type": "A", "ttl": 300}]
    )


def test_marker_written_on_adopt_and_left_alone_on_off() -> None:
    """Adopt (mark_existing) writes the marker on a foreign record it keeps; off does not."""
    foreign = [record("a", "192.0.2.1", comment="hand-made")]
    assert plan(foreign, want("192.0.2.1")) == Plan(
        patches=[{"id": "a", "type": "A", "comment": MARK}]
    )
    assert plan(foreign, want("192.0.2.1", mark_existing=False)) == Plan()


def test_reused_foreign_record_keeps_its_comment_when_not_marking() -> None:
    """Mode off: a foreign record patched to a new value keeps the comment it had."""
    result = plan(
        [record("a", "192.0.2.1", comment="hand")], want("192.0.2.9", mark_existing=False)
    )
    assert result == Plan(patches=[{"id": "a", **post("192.0.2.9"), "comment": "hand"}])
