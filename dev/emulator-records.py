#!/usr/bin/env python3
"""Print every record the Cloudflare emulator holds, zone by zone (the Tilt button
`sample-records` and the local walkthrough use it). Standard library only.

    python3 dev/emulator-records.py [--url http://127.0.0.1:8787] [--token dev-token]
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from typing import Any


def get(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 - a loopback URL
        return json.load(reply)["result"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8787")
    parser.add_argument("--token", default="dev-token")
    args = parser.parse_args()
    api = args.url.rstrip("/") + "/client/v4"
    try:
        zones = get(f"{api}/zones?per_page=50", args.token)
    except OSError as err:
        sys.exit(f"cannot reach the Cloudflare emulator at {args.url} ({err}): is it running?")
    for zone in zones:
        records = get(f"{api}/zones/{zone['id']}/dns_records?per_page=5000", args.token)
        print(f"{zone['name']}: {len(records)} record(s)")
        for r in sorted(records, key=lambda r: (r["name"], r["type"], str(r.get("content")))):
            value = r.get("content") or " ".join(str(v) for v in (r.get("data") or {}).values())
            extra = f" priority {r['priority']}" if r.get("priority") is not None else ""
            print(f"  {r['type']:<5} {r['name']:<32} {value}{extra}  ttl {r['ttl']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
