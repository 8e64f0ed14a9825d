#!/usr/bin/env python3
"""Print the podman build flags that give the image build this machine's pip configuration.

Behind a proxy or a private index the Dockerfile's `pip install` needs what pip here uses: the
effective settings (`pip config list`: files and PIP_* variables, merged) are written to one
pip.conf mounted at /etc/pip.conf, and every local path they name (CA bundle, constraint files,
find-links directories, file:// indexes) is mounted read-only at the same path. Build-time
mounts only: nothing of them stays in the image.

    podman build $(python3 dev/build-mounts.py) ...      (make image-test does this)
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

PATH_KEYS = {"cert", "client-cert", "constraint", "requirement", "find-links", "index-url",
             "extra-index-url"}


def settings() -> dict[str, str]:
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True, text=True, check=True,
    ).stdout
    found: dict[str, str] = {}
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        name = key.split(".", 1)[-1]
        found[name] = value.strip().strip("'\"")  # later lines (env, user) win, as in pip
    return found


def local_paths(value: str) -> list[Path]:
    paths = []
    for part in value.split():
        if part.startswith("file://"):
            part = unquote(urlsplit(part).path).rstrip("/")
            if part.endswith("/simple"):  # a file index links to ../../files/...: its parent
                part = part.removesuffix("/simple")
        if part.startswith("/") and Path(part).exists():
            paths.append(Path(part))
    return paths


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/dns-sidecar-build-pip.conf")
    found = settings()
    out.write_text("[global]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(found.items())))
    flags = ["--volume", f"{out}:/etc/pip.conf:ro"]
    mounted: set[Path] = set()
    for key, value in found.items():
        if key in PATH_KEYS:
            for path in local_paths(value):
                if path not in mounted:
                    mounted.add(path)
                    flags += ["--volume", f"{path}:{path}:ro"]
    print(" ".join(shlex.quote(flag) for flag in flags))
    return 0


if __name__ == "__main__":
    sys.exit(main())
