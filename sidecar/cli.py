"""The ``dns-sidecar`` command: ``serve``, ``check``, ``audit``, ``request``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import ssl
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError

from sidecar import __version__
from sidecar.app import StartupError, create_app
from sidecar.auth.signing import Algorithm
from sidecar.config import loader, local_credentials
from sidecar.errors import ConfigError
from sidecar.observability.logging import configure
from sidecar.server import serve
from sidecar.settings import AuthSettings, Settings, describe_settings_error

log = logging.getLogger("sidecar")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_URL = "http://127.0.0.1:7100"  # the request command's --url


def main(argv: Sequence[str] | None = None) -> int:
    parser, commands = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said with the command's own usage, not the top level's
        commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    command = {
        "serve": _serve,
        "check": _check,
        "audit": _audit,
        "request": _request,
        "cloudflare-emulator": _emulator,
    }[args.command]
    try:
        return command(args)
    except BrokenPipeError:
        # the reader went away (`| head`): say so once, and keep Python from failing again
        # when it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("dns-sidecar: output closed early (broken pipe)", file=sys.stderr)  # noqa: T201
        return EXIT_FAILED


AddCommand = Callable[..., argparse.ArgumentParser]  # a subparsers' add_parser


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="dns-sidecar",
        description="DNS provider backend for the Kubernetes DNS operator's webhook protocol.",
    )
    parser.add_argument("--version", action="version", version=f"dns-sidecar {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    return parser, {  # in the order --help lists them
        "serve": _serve_parser(commands.add_parser),
        "check": _check_parser(commands.add_parser),
        "audit": _audit_parser(commands.add_parser),
        "request": _request_parser(commands.add_parser),
        "cloudflare-emulator": _emulator_parser(commands.add_parser),
    }


def _serve_parser(add: AddCommand) -> argparse.ArgumentParser:
    run = add("serve", help="run the service")
    run.add_argument("--config", type=Path, help="routing table YAML (env DNS_SIDECAR_CONFIG)")
    run.add_argument("--host", help="protocol listen address (default 127.0.0.1)")
    run.add_argument("--port", type=int, help="protocol port (default 7100)")
    run.add_argument("--management-host", help="management listen address (default 127.0.0.1)")
    run.add_argument("--management-port", type=int, help="management port (default 8080)")
    run.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        default=None,
        help="accept unsigned requests on a non-loopback address (not for production)",
    )
    run.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        help="auto: JSON unless stderr is a terminal (default auto; env DNS_SIDECAR_LOG_FORMAT)",
    )
    return run


def _check_parser(add: AddCommand) -> argparse.ArgumentParser:
    check = add("check", help="validate a routing table; exit 1 on problems")
    check.add_argument("path", type=Path, metavar="PATH", help="the routing table YAML file")
    check.add_argument(
        "--strict",
        action="store_true",
        help="an unset {env} or a missing {file} credential is an error, not a warning",
    )
    return check


def _audit_parser(add: AddCommand) -> argparse.ArgumentParser:
    audit = add(
        "audit",
        help="one sweep: compare the DNSRecords with the zones and print the plan; changes "
        "nothing (exit 0 nothing to do, 1 something to do, 2 could not look)",
    )
    audit.add_argument("--config", type=Path, help="routing table YAML (env DNS_SIDECAR_CONFIG)")
    audit.add_argument("--json", action="store_true", help="print the plan as JSON")
    return audit


def _request_parser(add: AddCommand) -> argparse.ArgumentParser:
    request = add("request", help="send one signed request and print the reply")
    request.add_argument("method", help="GET, POST or DELETE")
    request.add_argument("path", help="starting with /, for example /records/A/example.com/www")
    request.add_argument("--data", help="JSON body (POST /records)")
    request.add_argument(
        "--url",
        default=DEFAULT_URL,
        help=f"the sidecar's base URL, with http:// or https:// (default {DEFAULT_URL})",
    )
    request.add_argument(
        "--secret", help="HMAC secret (default: env HMAC_SECRET or DNS_SIDECAR_HMAC_SECRET)"
    )
    request.add_argument(
        "--algorithm", help="SHA256 or SHA512 (default: env HMAC_ALGORITHM, else SHA256)"
    )
    request.add_argument(
        "--cacert",
        type=Path,
        help="PEM CA bundle to verify an https:// server with (default: the system's roots, "
        "or SSL_CERT_FILE)",
    )
    request.add_argument(
        "--server-name",
        help="the name an https:// server's certificate is verified for (and the SNI), when the "
        "URL's host is another, such as 127.0.0.1 through kubectl port-forward",
    )
    return request


def _emulator_parser(add: AddCommand) -> argparse.ArgumentParser:
    emulator = add(
        "cloudflare-emulator", help="run the stateful Cloudflare API emulator (development)"
    )
    emulator.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    emulator.add_argument("--port", type=int, default=8787, help="listen port (default 8787)")
    emulator.add_argument(
        "--zone",
        action="append",
        default=[],
        help="a zone to create, stored in IDNA form (repeat; default example.com)",
    )
    emulator.add_argument(
        "--token",
        action="append",
        default=[],
        help="an accepted API token (repeat; default emulator-token)",
    )
    emulator.add_argument("--api-key", help="an accepted global API key (with --email)")
    emulator.add_argument("--email", help="the email that goes with --api-key")
    emulator.add_argument(
        "--shutdown-timeout",
        type=float,
        default=5.0,
        help="seconds SIGTERM waits for requests in progress, then cuts them off (default 5)",
    )
    return emulator


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env(
            server={
                "host": args.host,
                "port": args.port,
                "management_host": args.management_host,
                "management_port": args.management_port,
                "allow_unauthenticated": args.allow_unauthenticated,
            },
            table={"config": args.config},
            log={"format": args.log_format},
        )
    except ValidationError as err:
        for line in describe_settings_error(err):
            print(f"dns-sidecar: {line}", file=sys.stderr)  # noqa: T201
        return EXIT_USAGE
    configure(settings.log)
    try:
        app = create_app(settings)
    except ConfigError as err:
        log.error("invalid routing table, not starting: %s", err)
        return EXIT_USAGE
    except (StartupError, ValueError) as err:
        log.error("not starting: %s", err)
        return EXIT_USAGE
    try:
        asyncio.run(serve(app, settings))
    except OSError as err:
        log.error("cannot listen: %s", err)
        return EXIT_FAILED
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    try:
        spec = loader.read(args.path).spec
    except ConfigError as err:
        print(err, file=sys.stderr)  # noqa: T201
        return EXIT_FAILED
    missing = local_credentials.unresolved(spec)
    if missing and args.strict:
        print(f"{args.path}: {len(missing)} problem(s) (--strict)", file=sys.stderr)  # noqa: T201
        for line in missing:
            print(f"  - {line}", file=sys.stderr)  # noqa: T201
        return EXIT_FAILED
    for line in missing:
        print(  # noqa: T201
            f"{args.path}: warning: {line} Requests that need it fail (503) unless it is given "
            "where the sidecar runs; --strict makes this an error.",
            file=sys.stderr,
        )
    print(  # noqa: T201
        f"{args.path}: OK ({len(spec.zones)} zone(s), {len(spec.accounts)} account(s), "
        f"{len(spec.clients)} client(s){f', {len(missing)} warning(s)' if missing else ''})"
    )
    return EXIT_OK


def _audit(args: argparse.Namespace) -> int:
    from sidecar import audit  # noqa: PLC0415 - only this command runs a sweep
    from sidecar.sweeps import report  # noqa: PLC0415

    try:
        settings = Settings.from_env(table={"config": args.config}, log={"format": "console"})
    except ValidationError as err:
        for line in describe_settings_error(err):
            print(f"dns-sidecar: {line}", file=sys.stderr)  # noqa: T201
        return EXIT_USAGE
    logging.basicConfig(level=logging.WARNING, format="dns-sidecar audit: %(message)s")
    try:
        done = audit.run(settings, as_json=args.json)
    except ConfigError as err:
        print(f"dns-sidecar: invalid routing table: {err}", file=sys.stderr)  # noqa: T201
        return report.COULD_NOT_LOOK
    except ValueError as err:
        print(f"dns-sidecar: cannot audit: {err}", file=sys.stderr)  # noqa: T201
        return report.COULD_NOT_LOOK
    sys.stdout.write(done.output)
    return done.exit_code


def _request(args: argparse.Namespace) -> int:
    from sidecar.client import send  # noqa: PLC0415 - only this command needs the HTTP client

    env = AuthSettings()  # the server's variables, so both sides read the same names
    secret = args.secret or (env.hmac_secret.get_secret_value() if env.hmac_secret else None)
    try:
        algorithm = Algorithm.parse(args.algorithm or env.hmac_algorithm)
    except ValueError as err:
        print(f"dns-sidecar: {err}", file=sys.stderr)  # noqa: T201
        return EXIT_USAGE
    if not args.path.startswith("/"):
        print(  # noqa: T201
            f"dns-sidecar: the path must start with '/', for example /{args.path}", file=sys.stderr
        )
        return EXIT_USAGE
    url = urlsplit(args.url)
    if url.scheme not in ("http", "https") or not url.netloc:
        print(  # noqa: T201
            f"dns-sidecar: --url {args.url!r} is not an http:// or https:// URL "
            f"(for example {DEFAULT_URL})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.cacert is not None and not args.cacert.is_file():
        print(  # noqa: T201
            f"dns-sidecar: --cacert {args.cacert}: no such file (give the CA's PEM file)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    data = args.data.encode() if args.data else b""
    try:
        reply = asyncio.run(
            send(
                args.method,
                args.path,
                url=args.url,
                data=data,
                secret=secret.encode() if secret else None,
                algorithm=algorithm,
                cacert=args.cacert,
                server_name=args.server_name,
            )
        )
    except ssl.SSLError as err:  # a file that is not a PEM CA bundle
        print(f"dns-sidecar: --cacert {args.cacert}: {err}", file=sys.stderr)  # noqa: T201
        return EXIT_USAGE
    except (OSError, TimeoutError) as err:
        print(f"dns-sidecar: cannot reach {args.url}: {err}", file=sys.stderr)  # noqa: T201
        return EXIT_FAILED
    print(f"HTTP {reply.status}")  # noqa: T201
    body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body, indent=2)
    print(body)  # noqa: T201
    return EXIT_OK if 200 <= reply.status < 300 else EXIT_FAILED


def _emulator(args: argparse.Namespace) -> int:
    from sidecar.emulator.app import Emulator, run  # noqa: PLC0415 - a development tool

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    emulator = Emulator()
    tokens = args.token or ["emulator-token"]
    for token in tokens:
        emulator.add_token(token)
    if args.api_key and args.email:
        emulator.add_key(args.email, args.api_key)
    for name in args.zone or ["example.com"]:
        zone = emulator.state.add_zone(name)
        log.info("zone %s id %s", zone.name, zone.id)

    def listening() -> None:  # said once the port is open: scripts and tests wait for it
        log.info(
            "Cloudflare API emulator on http://%s:%d/client/v4 (tokens: %s); "
            "request counts at /__emulator/stats",
            args.host,
            args.port,
            ", ".join(tokens),
        )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(
            emulator,
            args.host,
            args.port,
            stop,
            shutdown_timeout=args.shutdown_timeout,
            listening=listening,
        )

    asyncio.run(main())
    return EXIT_OK
