"""The routing table in force: read by every request, replaced whole by a reload."""

from __future__ import annotations

from dataclasses import replace

from sidecar.config.runtime import Runtime


class LiveConfig:
    """Holds the current :class:`Runtime`; a swap is one attribute assignment (atomic)."""

    def __init__(self, initial: Runtime, *, config_file: str | None = None) -> None:
        self.current = initial
        self.config_file = config_file
        self.last_error: str | None = None
        self.failed_reloads = 0

    @property
    def generation(self) -> int:
        return self.current.generation

    def swap(self, new: Runtime) -> Runtime:
        """Put ``new`` in force with the next generation number; returns the old one."""
        old = self.current
        self.current = replace(new, generation=old.generation + 1)
        self.last_error = None
        return old

    def reject(self, error: str) -> None:
        """A reload failed: keep serving the current table, remember why."""
        self.last_error = error
        self.failed_reloads += 1
