"""Print the uv options that reach the same package indexes as pip on this machine.

uv reads no pip configuration: ``index-url``, ``extra-index-url`` and ``find-links`` (from
``pip config list``, which includes the ``PIP_*`` variables) become ``--index-url``,
``--extra-index-url`` and ``--find-links``, and ``--index-strategy unsafe-best-match`` makes uv
pick the best version across all of them, as pip does (uv's default stops at the first index
that has a package at all). pip's ``constraint`` setting is left out on purpose: the floors and
the newest releases are resolved from pyproject.toml alone.
"""

from __future__ import annotations

import shlex
import subprocess
import sys

OPTIONS = {key: f"--{key}" for key in ("index-url", "extra-index-url", "find-links")}


def uv_args(listing: str) -> list[str]:
    args = ["--index-strategy", "unsafe-best-match"]
    for line in listing.splitlines():
        key, _, raw = line.partition("=")
        option = OPTIONS.get(key.rpartition(".")[2])
        if option is None:
            continue
        for value in shlex.split(raw.strip().strip("'\"")):
            if [option, value] != args[-2:] and value not in args:
                args += [option, value]
    return args


def main() -> int:
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    print(shlex.join(uv_args(listing)))  # noqa: T201 - the Makefile reads it
    return 0


if __name__ == "__main__":
    sys.exit(main())
