"""The practical ceiling: a bare aiohttp handler doing only JSON in and out, nothing else."""

from __future__ import annotations

import json
import sys

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    body = await request.read()
    payload = json.loads(body) if body else {}
    return web.json_response({"success": True, "echo": payload.get("operation")})


def main() -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
