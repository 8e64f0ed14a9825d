"""The soak (``bench.soak``): its verdict on made-up runs, and a short run against replicas.

The short run is marked ``soak`` (``pytest -m soak`` runs only it; ``-m "not soak"`` skips it).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.soak_check import Read, State, Write, check
from tests.service import REPO, clean_env

A, B, AB = ("192.0.2.1",), ("192.0.2.2",), ("192.0.2.1", "192.0.2.2")


def verdict(
    writes: list[Write],
    states: list[State],
    reads: list[Read] | None = None,
    finals: dict[str, tuple[str, ...]] | None = None,
    final_reads: list[Read] | None = None,
) -> list[str]:
    return check(
        writes,
        reads or [],
        states,
        finals if finals is not None else {"n": states[-1].values if states else ()},
        final_reads or [],
        slack=5,
        outages=[(100.0, 101.0)],
        bound=1.5,
    ).violations


def test_a_clean_run_has_no_violation() -> None:
    """Two writes in turn, a GET after each, and the final state: nothing to report."""
    writes = [Write("n", A, 1, 2, 200), Write("n", B, 3, 4, 200)]
    states = [State("n", 1.5, A, 1), State("n", 3.5, B, 2)]
    reads = [Read("n", 2.5, 2.6, A), Read("n", 4.5, 4.6, B)]
    assert verdict(writes, states, reads, final_reads=[Read("n", 9, 9.1, B, 1)]) == []


def test_a_merge_is_caught_even_when_overwritten() -> None:
    """A state no write asked for (a union of two) is a violation, though overwritten."""
    writes = [Write("n", A, 1, 3, 200), Write("n", B, 1, 3, 200), Write("n", A, 4, 5, 200)]
    states = [State("n", 2, AB, 1), State("n", 2.5, B, 2), State("n", 4.5, A, 3)]
    assert verdict(writes, states) == [
        "n held ['192.0.2.1', '192.0.2.2'] at 2.000 (seq 1): no write in flight asked for it",
        "n: ['192.0.2.1'] acknowledged at 3.000 but never held while the write was in flight",
    ]


def test_a_change_answered_as_not_sent_is_caught() -> None:
    """A state applied by a write answered "not served" only is a violation (issue 25)."""
    writes = [Write("n", A, 1, 2, 503, 0, refused=True)]
    found = verdict(writes, [State("n", 1.5, A, 1)])
    assert found == [
        (
            "n held ['192.0.2.1'] at 1.500 (seq 1), applied by a write answered as not sent: "
            "503 through replica 0 (1.000..2.000)"
        )
    ]


def test_a_write_without_an_answer_may_land_late() -> None:
    """A write that got no answer may change the provider up to ``slack`` after its end."""
    writes = [Write("n", A, 1, 2, None), Write("n", B, 3, 4, 200)]
    states = [State("n", 3.5, B, 1), State("n", 6.5, A, 2)]
    assert verdict(writes, states, finals={"n": A}) == []
    late = [State("n", 3.5, B, 1), State("n", 7.5, A, 2)]
    assert verdict(writes, late, finals={"n": A})[0].startswith("n held ['192.0.2.1'] at 7.500")


def test_a_stale_get_is_caught_outside_the_bound_only() -> None:
    """A GET older than a write acked a bound before it fails; within the bound it counts."""
    writes = [Write("n", A, 1, 2, 200), Write("n", B, 3, 4, 200)]
    states = [State("n", 1.5, A, 1), State("n", 3.5, B, 2)]
    stale = [Read("n", 5, 5.1, A, 1), Read("n", 5.6, 5.7, A, 1), Read("n", 102, 102.1, A, 1)]
    found = check(writes, stale, states, {"n": B}, [], slack=5, outages=[(100, 101)], bound=1.5)
    assert found.violations == [
        (
            "GET n through replica 1 at 5.600 showed ['192.0.2.1'], older than a write "
            "acknowledged before it"
        )
    ]
    assert found.stale_within_bound == 2
    assert verdict(writes, states, [Read("n", 3.2, 3.6, A)]) == []  # began before the ack


def test_final_states_are_checked_against_the_last_acknowledged_write() -> None:
    """Final states: older than the last ack, off the history, or shown otherwise: caught."""
    writes = [Write("n", A, 1, 2, 200), Write("n", B, 3, 4, 200)]
    states = [State("n", 1.5, A, 1), State("n", 3.5, B, 2)]
    assert verdict(writes, states, finals={"n": A}) == [
        "n: the provider holds ['192.0.2.1'], its history does not",
        (
            "n ended as ['192.0.2.1'], which neither the last acknowledged write nor any write "
            "sent after it asked for"
        ),
    ]
    assert verdict(writes, states, final_reads=[Read("n", 9, 9.1, A, 2)]) == [
        (
            "GET n through replica 2 after the run showed ['192.0.2.1'], the provider holds "
            "['192.0.2.2']"
        )
    ]


def test_an_acknowledged_write_whose_set_never_appeared_is_caught() -> None:
    """A 200 for a set the provider never held while the write was in flight."""
    writes = [Write("n", A, 1, 2, 200)]
    assert verdict(writes, [], finals={"n": ()}) == [
        "n: ['192.0.2.1'] acknowledged at 2.000 but never held while the write was in flight",
        (
            "n ended as [], which neither the last acknowledged write nor any write sent after it "
            "asked for"
        ),
    ]


@pytest.mark.soak
def test_a_short_soak_finds_no_violation() -> None:
    """30 s of writes and reads through 2 replicas under every fault of ``make soak``."""
    args = ["--seconds", "30", "--replicas", "2", "--writers", "4", "--names", "3"]
    result = subprocess.run(
        [sys.executable, "-m", "bench.soak", *args],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, report
    assert "violations: 0" in result.stdout, report
    faults = [line for line in result.stdout.splitlines() if line.startswith("  fault:")]
    assert len(faults) == 6, report
