"""The practical ceiling: a bare aiohttp handler doing only JSON in and out, nothing else.

``python bench/bare_server.py PORT`` serves it as an aiohttp application (a route, the
router, the application layer): the baseline the issue's targets are set against.
``python bench/bare_server.py PORT low-level`` serves the same handler on aiohttp's
low-level server, as the sidecar's protocol port runs (no router, no application layer): the
floor of the sidecar's own stack.
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiohttp import web


async def handle(request: web.BaseRequest) -> web.Response:
    body = await request.read()
    payload = json.loads(body) if body else {}
    return web.json_response({"success": True, "echo": payload.get("operation")})


async def low_level(port: int) -> None:
    server = web.Server(handle)
    await asyncio.get_running_loop().create_server(server, "127.0.0.1", port)
    await asyncio.Event().wait()  # until the process is stopped


def main() -> None:
    port = int(sys.argv[1])
    if sys.argv[2:] == ["low-level"]:
        asyncio.run(low_level(port))
        return
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
