"""A sweep as a plan a person can read (``dns-sidecar audit``), or as JSON.

Each finding becomes one step: ``create`` / ``change`` (drift a repair would fix), ``delete``
(an orphan a prune would remove), or ``report`` (a conflict, or an orphan never pruned: a person
decides), each with its reason; the zone's own settings say whether the sidecar would do it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sidecar.sweeps.plan import Finding, Fix, Kind
from sidecar.sweeps.sweeper import Sweep, finding_json

NOTHING, SOMETHING, COULD_NOT_LOOK = 0, 1, 2


def step(finding: Finding) -> str:
    """What the finding asks for: create, change, delete or report."""
    if finding.fix is Fix.PRUNE:
        return "delete"
    if finding.fix is Fix.REPAIR:
        return "change" if finding.held else "create"
    return "report"


def exit_code(sweep: Sweep) -> int:
    if not sweep.complete:
        return COULD_NOT_LOOK
    return SOMETHING if sweep.findings else NOTHING


def as_text(sweep: Sweep, policies: dict[tuple[str, str], str]) -> str:
    """The plan, zone by zone; ``policies``: each zone's ``orphans: …, drift: …``."""
    lines: list[str] = []
    if sweep.skipped is not None:
        return f"Could not look: {sweep.skipped}.\n"
    for zone in sweep.zones:
        where = (zone.zone, zone.account)
        lines.append(
            f"zone {zone.zone} (account {zone.account}; DNSClass "
            f"{', '.join(zone.classes)}; {policies.get(where, '')})"
        )
        if zone.error is not None:
            lines.append(f"  could not list it: {zone.error}")
            continue
        found = [f for f in sweep.findings if (f.zone, f.account) == where]
        if not found:
            lines.append("  nothing to do")
        for finding in found:
            lines += _step_lines(finding)
        lines.append("")
    counts = Counter(step(f) for f in sweep.findings)
    summary = ", ".join(
        f"{counts[s]} {s}" for s in ("create", "change", "delete", "report") if s in counts
    )
    if not sweep.complete:
        lines.append("Could not look at every zone (above); exit 2.")
    elif sweep.findings:
        lines.append(f"{len(sweep.findings)} step(s): {summary}.")
    else:
        lines.append("Nothing to do: every zone holds what the DNSRecords want.")
    return "\n".join(lines) + "\n"


def _step_lines(finding: Finding) -> list[str]:
    verb = step(finding)
    now = ", ".join(finding.held) or "nothing"
    if verb == "create" and finding.wanted is not None:
        what = f"{', '.join(finding.wanted.values)} (TTL {finding.wanted.ttl})"
    elif verb == "change" and finding.wanted is not None:
        want = finding.wanted.ttl
        moved = finding.held_ttl is not None and finding.held_ttl != want
        ttl = f"TTL {finding.held_ttl} -> {want}" if moved else f"TTL {want}"
        what = f"{now} -> {', '.join(finding.wanted.values)} ({ttl})"
    else:
        what = now
    return [
        f"  {verb:<7} {finding.type:<5} {finding.fqdn}  {what}",
        f"          {finding.kind.value}: {finding.reason}",
    ]


def as_json(sweep: Sweep) -> dict[str, Any]:
    return {
        "complete": sweep.complete,
        "skipped": sweep.skipped,
        "zones": [
            {"zone": z.zone, "account": z.account, "dnsClasses": list(z.classes), "error": z.error}
            for z in sweep.zones
        ],
        "steps": [finding_json(f) | {"step": step(f)} for f in sweep.findings],
        "counts": {kind.value: sum(1 for f in sweep.findings if f.kind is kind) for kind in Kind},
        "exitCode": exit_code(sweep),
    }
