"""The soak's verdict: every provider state, every GET and every final state against the
writes that were sent (pure functions over what ``bench.soak`` recorded).

- **States.** Each state the provider held (the emulator's history) is the set requested by a
  write to that name in flight at that moment; a merge of two requests is no request, so it
  is caught even when a later write overwrites it. A write without a definite answer (503,
  connection lost, replica killed) counts as in flight ``slack`` seconds past its end: the
  provider may apply it late. A write answered as not sent (``refused``: "not served",
  "nothing was sent", a 4xx) counts as never in flight: a state only it asked for is the
  false "not served" of issue 25.
- **GETs.** A GET shows a state the provider held at some moment between the latest write
  acknowledged before the GET started (from when that write's set was in place) and the
  GET's end. SPEC section 7 lets it lag by ``bound`` (after an acknowledged write whose
  version move Redis did not take, or after Redis came back): such a GET is counted, not
  failed; one older than a write acknowledged ``bound`` before it is a violation.
- **Final states.** The provider's last state of each name is the last acknowledged write's
  set or that of a write that may have landed after it, and every replica's GET agrees.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import defaultdict
from dataclasses import dataclass, field

Values = tuple[str, ...]  # sorted; () is nothing there (deleted, 404)


@dataclass(frozen=True)
class Write:
    name: str
    target: Values  # () for a delete
    start: float
    end: float
    status: int | None  # None: no answer
    replica: int = 0
    refused: bool = False  # the answer says nothing was sent to the provider

    @property
    def acknowledged(self) -> bool:
        return self.status == 200


@dataclass(frozen=True)
class Read:
    name: str
    start: float
    end: float
    values: Values
    replica: int = 0


@dataclass(frozen=True)
class State:
    name: str
    at: float
    values: Values
    seq: int


@dataclass
class Verdict:
    states: int = 0
    reads: int = 0
    stale_within_bound: int = 0
    names: int = 0
    violations: list[str] = field(default_factory=list)


class Timeline:
    """The states one name went through, from the empty one at the start."""

    def __init__(self, states: list[State]) -> None:
        self.starts = [-math.inf] + [s.at for s in states]
        self.values: list[Values] = [(), *(s.values for s in states)]

    def held(self, values: Values, lo: float, hi: float) -> float | None:
        """The earliest moment in [lo, hi] at which ``values`` was held (``None``: never)."""
        first = max(0, bisect.bisect_right(self.starts, lo) - 1)  # the state held at ``lo``
        for i in range(first, bisect.bisect_right(self.starts, hi)):
            end = self.starts[i + 1] if i + 1 < len(self.starts) else math.inf
            if self.values[i] == values and end > lo:
                return max(self.starts[i], lo)
        return None


class Acknowledged:
    """One name's acknowledged writes by the time of their answer: the latest floor among
    those answered before a moment, in O(log n)."""

    def __init__(self, floors: list[tuple[float, float]]) -> None:
        floors.sort()
        self.ends = [end for end, _ in floors]
        self.best: list[float] = list(itertools.accumulate((f for _, f in floors), max))

    def floor_before(self, moment: float) -> float:
        count = bisect.bisect_left(self.ends, moment)
        return self.best[count - 1] if count else -math.inf


@dataclass
class Run:
    """What the soak recorded, indexed by name."""

    writes: dict[str, list[Write]]
    history: dict[str, list[State]]
    timelines: dict[str, Timeline]

    @classmethod
    def of(cls, writes: list[Write], states: list[State]) -> Run:
        by_name: dict[str, list[Write]] = defaultdict(list)
        for write in writes:
            by_name[write.name].append(write)
        history: dict[str, list[State]] = defaultdict(list)
        for state in sorted(states, key=lambda s: s.seq):
            history[state.name].append(state)
        return cls(by_name, history, {n: Timeline(found) for n, found in history.items()})

    def timeline(self, name: str) -> Timeline:
        return self.timelines.get(name) or Timeline([])


def check(
    writes: list[Write],
    reads: list[Read],
    states: list[State],
    finals: dict[str, Values],
    final_reads: list[Read],
    *,
    slack: float,
    outages: list[tuple[float, float]],
    bound: float,
) -> Verdict:
    verdict = Verdict(states=len(states), reads=len(reads), names=len(finals))
    run = Run.of(writes, states)
    verdict.violations += check_states(run, states, slack)
    floors, unheld = acknowledged_floors(run, writes)
    verdict.violations += unheld
    acked: dict[str, Acknowledged] = defaultdict(lambda: Acknowledged([]))
    per_name: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for write, floor in floors.items():
        per_name[write.name].append((write.end, floor))
    acked.update({name: Acknowledged(found) for name, found in per_name.items()})
    for read in reads:
        line = run.timeline(read.name)
        floor = acked[read.name].floor_before(read.start)
        if line.held(read.values, floor, read.end) is not None:
            continue
        settled = acked[read.name].floor_before(read.start - bound)
        if line.held(read.values, settled, read.end) is not None or any(
            down <= read.start <= back + bound for down, back in outages
        ):
            verdict.stale_within_bound += 1
            continue
        verdict.violations.append(
            f"GET {read.name} through replica {read.replica} at {read.start:.3f} showed "
            f"{list(read.values)}, older than a write acknowledged before it"
        )
    verdict.violations += check_finals(run, finals, final_reads, slack)
    return verdict


def check_states(run: Run, states: list[State], slack: float) -> list[str]:
    """Each state is the set of a write to that name in flight at that moment."""
    violations = []
    by_target: dict[tuple[str, Values], list[Write]] = defaultdict(list)
    for writes in run.writes.values():
        for write in writes:
            by_target[write.name, write.target].append(write)
    for state in states:
        asked = [
            w for w in by_target[state.name, state.values] if w.start <= state.at <= _last(w, slack)
        ]
        if not asked:
            violations.append(
                f"{state.name} held {list(state.values)} at {state.at:.3f} (seq {state.seq}): "
                "no write in flight asked for it"
            )
        elif all(w.refused for w in asked):
            sent = ", ".join(
                f"{w.status} through replica {w.replica} ({w.start:.3f}..{w.end:.3f})"
                for w in asked
            )
            violations.append(
                f"{state.name} held {list(state.values)} at {state.at:.3f} (seq {state.seq}), "
                f"applied by a write answered as not sent: {sent}"
            )
    return violations


def acknowledged_floors(run: Run, writes: list[Write]) -> tuple[dict[Write, float], list[str]]:
    """For each acknowledged write, the first moment its set was in place while it was in
    flight; and a violation for each whose set never was."""
    floors: dict[Write, float] = {}
    unheld: list[str] = []
    for write in writes:
        if not write.acknowledged:
            continue
        floor = run.timeline(write.name).held(write.target, write.start, write.end)
        if floor is None:
            unheld.append(
                f"{write.name}: {list(write.target)} acknowledged at {write.end:.3f} but never "
                "held while the write was in flight"
            )
        else:
            floors[write] = floor
    return floors, unheld


def check_finals(
    run: Run, finals: dict[str, Values], final_reads: list[Read], slack: float
) -> list[str]:
    """The last state of each name is the last acknowledged write's set, or that of a write
    that may have landed after it; the history ends there; every replica's GET agrees."""
    violations = []
    for name, final in sorted(finals.items()):
        found = run.history.get(name, [])
        if (found[-1].values if found else ()) != final:
            violations.append(f"{name}: the provider holds {list(final)}, its history does not")
        writes = run.writes[name]
        acked = [w for w in writes if w.acknowledged]
        allowed = {()} | {w.target for w in writes}
        if acked:
            last = max(acked, key=lambda w: w.end)
            allowed = {last.target}
            allowed |= {w.target for w in writes if w is not last and _last(w, slack) > last.start}
        if final not in allowed:
            violations.append(
                f"{name} ended as {list(final)}, which neither the last acknowledged write nor "
                "any write sent after it asked for"
            )
    violations += [
        f"GET {read.name} through replica {read.replica} after the run showed "
        f"{list(read.values)}, the provider holds {list(finals.get(read.name, ()))}"
        for read in final_reads
        if read.values != finals.get(read.name, ())
    ]
    return violations


def _last(write: Write, slack: float) -> float:
    """Until when ``write`` may still change the provider."""
    return write.end if write.acknowledged else write.end + slack
