"""The memory provider on its own: what an edited account's provider takes from its predecessor."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from sidecar.errors import ProviderUnavailable
from sidecar.providers.base import ZonePolicy
from sidecar.providers.memory import MemoryProvider
from sidecar.records import RecordKey, RecordSet

ZONE = ZonePolicy(name="example.com")
NAMES = ("www", "old1", "old2")


async def holding(*names: str, snapshot: Path | None = None) -> MemoryProvider:
    provider = MemoryProvider(snapshot=snapshot)
    for name in names:
        key = RecordKey.parse("A", "example.com", name)
        await provider.upsert(ZONE, RecordSet.build(key, ["192.0.2.1"], 300))
    return provider


async def contents(provider: MemoryProvider) -> tuple[object, dict[str, RecordSet | None]]:
    """What the provider holds, through its public interface: the count it shows on /status,
    and the record set at each name these tests write."""
    found = {
        name: await provider.get(ZONE, RecordKey.parse("A", "example.com", name)) for name in NAMES
    }
    return provider.status()["recordSets"], found


async def test_records_in_memory_win_over_the_file(tmp_path: Path) -> None:
    """The live records replace what the new provider loaded from its file, which is rewritten."""
    snapshot = tmp_path / "records.json"
    await holding("old1", "old2", snapshot=snapshot)
    live = await holding("www")
    successor = MemoryProvider(snapshot=snapshot)
    said = successor.carry_over(live)
    assert said == (
        f"carried 1 record set(s) over and wrote them to {snapshot}, in place of the 2 the file "
        "held"
    )
    assert await contents(successor) == await contents(live)
    assert await contents(MemoryProvider(snapshot=snapshot)) == await contents(live)


async def test_an_empty_predecessor_leaves_the_files_records(tmp_path: Path) -> None:
    """Nothing in memory: the records loaded from the file stay."""
    snapshot = tmp_path / "records.json"
    stored = await holding("www", snapshot=snapshot)
    successor = MemoryProvider(snapshot=snapshot)
    said = successor.carry_over(MemoryProvider())
    assert said == "kept the 1 record set(s) loaded from its snapshot (none in memory)"
    assert await contents(successor) == await contents(stored)


async def test_carried_over_without_a_file_or_with_one_that_cannot_be_written(
    tmp_path: Path,
) -> None:
    """Without a file the records are kept in memory; an unwritable file is said, and /health
    then reports it."""
    live = await holding("www")
    plain = MemoryProvider()
    assert plain.carry_over(live) == "carried 1 record set(s) over, in memory only"
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    stuck = MemoryProvider(snapshot=blocker / "records.json")
    assert stuck.carry_over(live) == (
        f"carried 1 record set(s) over, but could not write them to {blocker / 'records.json'}: "
        "File exists"
    )
    assert await contents(stuck) == await contents(live)
    assert (await stuck.health()).healthy is False


async def test_an_upsert_never_answers_from_a_change_still_being_written(tmp_path: Path) -> None:
    """Two identical upserts of a new name while the snapshot cannot be written: the second
    waits for the first instead of answering "unchanged" from a change that is then undone;
    both are refused and nothing is stored."""
    directory = tmp_path / "state"
    provider = MemoryProvider(snapshot=directory / "records.json")
    directory.write_text("not a directory")
    key = RecordKey.parse("A", "example.com", "www")
    results = await asyncio.gather(
        provider.upsert(ZONE, RecordSet.build(key, ["192.0.2.1"], 300)),
        provider.upsert(ZONE, RecordSet.build(key, ["192.0.2.1"], 300)),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [ProviderUnavailable, ProviderUnavailable]
    assert await provider.get(ZONE, key) is None


async def test_a_failed_snapshot_write_is_logged_once_naming_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Changes refused because the snapshot cannot be written: one warning naming the file and
    the error (not one per refused change), and one line when it can be written again."""
    caplog.set_level(logging.INFO, logger="sidecar.providers.memory")
    directory = tmp_path / "state"
    provider = MemoryProvider(snapshot=directory / "records.json")
    directory.write_text("not a directory")
    for n in range(3):
        key = RecordKey.parse("A", "example.com", f"host{n}")
        with pytest.raises(ProviderUnavailable):
            await provider.upsert(ZONE, RecordSet.build(key, ["192.0.2.1"], 300))
    directory.unlink()
    await provider.upsert(
        ZONE, RecordSet.build(RecordKey.parse("A", "example.com", "ok"), ["192.0.2.1"], 300)
    )
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            (
                f"memory provider cannot write its snapshot {directory / 'records.json'}: File "
                "exists; changes are refused until it can"
            ),
        ),
        ("INFO", f"memory provider writes its snapshot {directory / 'records.json'} again"),
    ]
