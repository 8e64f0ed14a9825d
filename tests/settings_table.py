"""The settings table of docs/configuration.md, spliced from ``sidecar.settings.reference_table``.

``python -m tests.settings_table --write docs/configuration.md`` rewrites it
(``make settings-table``); ``test_settings`` checks that the page holds exactly what the
declarations say.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sidecar.settings import reference_table

BEGIN = "<!-- settings-table: generated from sidecar/settings.py by `make settings-table` -->\n"
END = "<!-- /settings-table -->"


def current(text: str) -> str:
    """The table now between the markers in ``text``."""
    start = text.index(BEGIN) + len(BEGIN)
    return text[start : text.index(END, start)]


def spliced(text: str) -> str:
    """``text`` with the generated table between the markers."""
    start = text.index(BEGIN) + len(BEGIN)
    return text[:start] + reference_table() + text[text.index(END, start) :]


if __name__ == "__main__":
    path = Path(sys.argv[-1])
    path.write_text(spliced(path.read_text(encoding="utf-8")), encoding="utf-8")
