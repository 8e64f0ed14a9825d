"""The Cloudflare API as this provider uses it, on the official SDK's async client.

One place for the SDK's pitfalls:

- **Credentials.** ``AsyncCloudflare`` fills every credential it was not given from
  ``CLOUDFLARE_*`` variables, and its auth header picks ``X-Auth-Email`` over a token: with a
  token given and ``CLOUDFLARE_EMAIL`` in the environment it sends no ``Authorization`` at all.
  Each client here holds exactly its account's credentials and nothing from the environment.
- **Retries.** The SDK retries 409, 429 and 5xx twice by default, sleeping in between; here
  ``max_retries=0``: a 429 blocks the account's budget and fails fast, anything else is
  answered at once and the operator's reconcile loop retries.
- **Pagination.** The SDK's auto-pager asks for one page past the end every time; here the
  ``result_info`` of each page says whether another follows (``total_pages``, else the echoed
  ``per_page`` with ``total_count`` or ``count``), so one page costs one call. Cloudflare may cap
  ``per_page`` below what was asked (zones: 50), so a page shorter than the request is not
  proof of the last one. Without ``result_info``, pages are read until an empty one.

Every call spends the account's budget, counts as a provider call in the request's log line,
and has a timeout; every failure is classified into the sidecar's error tree in ``_classify``.
Two answers the provider recovers from get their own classes: :class:`ZoneGone` (the zone id is
unknown: the zone was deleted, perhaps re-created under a new id) and :class:`RecordGone` (a
record the batch names was removed since it was read).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import cloudflare
import httpx

from sidecar.coordination.base import RequestBudget
from sidecar.errors import (
    InvalidRecord,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RecordConflict,
    SidecarError,
)
from sidecar.observability.context import count_provider_call
from sidecar.providers.cloudflare.auth import Auth
from sidecar.providers.cloudflare.payloads import (
    ApiRecord,
    ApiZone,
    Envelope,
    RecordBody,
    RecordId,
    RecordPatch,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
LIST_PAGE = 5000  # records per page when reading a name or a whole zone
ZONES_PAGE = 50  # Cloudflare's largest page of zones
AUTH_CODES = frozenset({6003, 6111, 9103, 9106, 9109, 10000, 10001})
RECORD_CODES = frozenset({1004, 9000, 9004, 9005, 9006, 9007, 9021, 9101, 9207})
CONFLICT_CODES = frozenset({81053, 81054, 81057, 81058})
UNKNOWN_ZONE = 7003  # "Could not route to /zones/...": no zone has that id
RECORD_MISSING = 81044  # "Record does not exist."
BATCH = "apply the DNS record batch"


class ZoneGone(ProviderError):
    """Cloudflare knows no zone by the id used (7003 / 404): it was deleted, perhaps re-created
    under a new id. The provider looks the id up again once."""


class RecordGone(ProviderUnavailable):
    """A record the batch names no longer exists (81044): someone removed it between our read
    and our batch. The provider reads again and retries once; if it recurs, the operator's
    retry of this 503 will."""


class CloudflareApi:
    """The calls the provider makes, for one account."""

    def __init__(
        self,
        account: str,
        credentials: Callable[[], Auth],
        budget: RequestBudget,
        *,
        base_url: str | None = None,
        timeout: float = 10.0,
        list_page: int = LIST_PAGE,
    ) -> None:
        self.account = account
        self.list_page = list_page
        self.budget = budget
        self._credentials = credentials
        self._base_url = base_url or DEFAULT_BASE_URL
        self.timeout = timeout
        self._clients: dict[Auth, cloudflare.AsyncCloudflare] = {}

    def client(self) -> cloudflare.AsyncCloudflare:
        """The SDK client for the credentials in force now.

        A rotated credential gets a new client; the old ones stay open (requests may still be
        using them) until the provider closes. Rotations are rare, so they stay few.
        """
        auth = self._credentials()
        client = self._clients.get(auth)
        if client is None:
            client = self._clients[auth] = _make_client(auth, self._base_url, self.timeout)
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def _call(
        self, what: str, call: Callable[[cloudflare.AsyncCloudflare], Awaitable[Any]]
    ) -> Envelope:
        """One API call; the envelope as plain JSON (the SDK's raw response: no model parsing,
        which would cost more than the call itself for unions of record types)."""
        client = self.client()
        await self.budget.spend()
        count_provider_call()
        try:
            # the SDK's timeout is per phase (connect, each read): this one bounds the call as
            # a whole, so a write never outlives the lock lease that was checked before it
            async with asyncio.timeout(self.timeout):
                response = await call(client)
                raw: bytes = await response.read()
        except TimeoutError as err:
            raise self._too_late(what) from err
        except cloudflare.APIError as err:
            if isinstance(err, cloudflare.APIStatusError) and err.status_code == 429:
                wait = await self.budget.block(_retry_after(err.response))
                raise RateLimited(
                    f"Cloudflare account {self.account!r} is rate-limited by Cloudflare; retry "
                    f"after {wait:.0f} s.",
                    retry_after=wait,
                    details={"account": self.account},
                ) from err
            raise self._classify(err, what) from err
        try:
            body: object = json.loads(raw)
        except ValueError as err:  # only the parse: a ValueError of the SDK is a bug, not this
            raise ProviderError(
                f"Cloudflare account {self.account!r}: the answer when asked to {what} was not "
                "JSON."
            ) from err
        return cast("Envelope", body) if isinstance(body, dict) else Envelope()

    # --- the calls --------------------------------------------------------------------------

    async def verify_token(self) -> str:
        body = await self._call(
            "verify the token", lambda c: c.user.tokens.with_raw_response.verify()
        )
        return str((body.get("result") or {}).get("status", "active"))

    async def list_zones(self, name: str | None = None) -> list[ApiZone]:
        return await self._paged(
            "list zones",
            lambda page, c: c.zones.with_raw_response.list(
                name=name or cloudflare.omit, page=page, per_page=ZONES_PAGE
            ),
        )

    async def list_records(
        self, zone_id: str, *, name: str | None = None, kind: str | None = None
    ) -> list[ApiRecord]:
        """Every record matching the filters (a name exactly, a type), one call per page."""
        filters: dict[str, Any] = {}
        if name is not None:
            filters["name"] = {"exact": name}
        if kind is not None:
            filters["type"] = kind
        return await self._paged(
            "list DNS records",
            lambda page, c: c.dns.records.with_raw_response.list(
                zone_id=zone_id, page=page, per_page=self.list_page, **filters
            ),
        )

    async def _paged(
        self,
        what: str,
        fetch: Callable[[int, cloudflare.AsyncCloudflare], Awaitable[Any]],
    ) -> list[Any]:
        """Every page's ``result`` items, as ``result_info`` tells: no call for the empty page
        past the end. The callers say what the items are."""
        found: list[Any] = []
        for page in itertools.count(1):
            body = await self._call(what, functools.partial(fetch, page))
            items = body.get("result") or []
            found += items
            if not _more_pages(body.get("result_info"), page, len(items), len(found)):
                break
        return found

    async def batch(
        self,
        zone_id: str,
        *,
        deletes: list[RecordId],
        patches: list[RecordPatch],
        posts: list[RecordBody],
    ) -> None:
        # The body goes as extra_body: the SDK's own transform of the typed batch parameters
        # (unions of ~20 record TypedDicts) costs milliseconds per call, and we send plain JSON.
        body = {"deletes": deletes, "patches": patches, "posts": posts}
        await self._call(
            BATCH,
            lambda c: c.dns.records.with_raw_response.batch(
                zone_id=zone_id, extra_body={k: v for k, v in body.items() if v}
            ),
        )

    # --- errors -----------------------------------------------------------------------------

    def _too_late(self, what: str) -> ProviderUnavailable:
        maybe = (
            " The batch may still have been applied: a GET shows what is there now, and "
            "the operator's retry of the upsert converges either way."
            if what == BATCH
            else ""
        )
        return ProviderUnavailable(
            f"Cloudflare account {self.account!r} did not answer within {self.timeout:g} s "
            f"when asked to {what}.{maybe}"
        )

    def _classify(self, err: cloudflare.APIError, what: str) -> SidecarError:
        """Every SDK failure becomes one of the sidecar's errors, here and nowhere else."""
        where = f"Cloudflare account {self.account!r}"
        refused = _connect_failure(err)
        if refused is not None:  # the SDK calls a failed connect a timeout, however quick
            return ProviderUnavailable(
                f"{where} could not be reached at {self._base_url} to {what}: {refused}."
            )
        if isinstance(err, cloudflare.APITimeoutError):
            return self._too_late(what)
        if isinstance(err, cloudflare.APIConnectionError):
            return ProviderUnavailable(f"{where} could not be reached to {what}: {err}.")
        if not isinstance(err, cloudflare.APIStatusError):
            return ProviderError(f"{where} failed to {what}: {err}.")
        status = err.status_code
        codes, shown, message = _errors_of(err)
        said = f"{message} (code {', '.join(shown)})" if shown else message
        if status >= 500:
            return ProviderUnavailable(f"{where}: Cloudflare failed to {what} (HTTP {status}).")
        if RECORD_MISSING in codes:
            return RecordGone(
                f"{where}: a record to change was removed at Cloudflare while the change was "
                f"being made ({said}); retry the request (it reads the name again)."
            )
        if UNKNOWN_ZONE in codes or status == 404:
            return ZoneGone(
                f"{where}: Cloudflare knows no zone by the id used ({said}); if the zone was "
                "re-created, check or remove its zoneId in the routing table."
            )
        if codes & CONFLICT_CODES:
            return RecordConflict(f"Cloudflare refused the change: {said}.")
        if codes & RECORD_CODES:
            return InvalidRecord(f"Cloudflare rejected the record: {said}.")
        if codes & AUTH_CODES or status in (401, 403):
            return ProviderError(
                f"{where}: Cloudflare refused the credentials or their permissions when asked "
                f"to {what}: {said}."
            )
        return ProviderError(f"{where}: Cloudflare failed to {what}: {said} (HTTP {status}).")


def _make_client(auth: Auth, base_url: str, timeout: float) -> cloudflare.AsyncCloudflare:
    limit = httpx.Timeout(timeout, connect=min(timeout, 5.0))
    client = cloudflare.AsyncCloudflare(
        api_token=auth.token or "",
        api_key=auth.key or "",
        api_email=auth.email or "",
        user_service_key="",
        base_url=base_url,
        max_retries=0,
        timeout=limit,
        # aiohttp as the transport (the SDK's `aiohttp` extra): the same client stack as the
        # server's, and several times less CPU per call than httpx's default one.
        http_client=cloudflare.DefaultAioHttpClient(timeout=limit),
    )
    # Empty strings above keep the SDK from reading CLOUDFLARE_* for what this account lacks;
    # None makes its auth headers skip them (an empty X-Auth-Email would still win over a token).
    client.api_token = auth.token
    client.api_key = auth.key
    client.api_email = auth.email
    client.user_service_key = None
    return client


def _connect_failure(err: BaseException) -> str | None:
    """What failed the connection, from the causes under the SDK's error (``None``: no
    connection error below it, or a real timeout)."""
    causes: list[BaseException] = []
    seen: BaseException | None = err
    while seen is not None and len(causes) < 16:  # a bound, should a chain ever loop
        causes.append(seen)
        seen = seen.__cause__ or seen.__context__
    if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
        return "connection refused"
    for cause in reversed(causes):  # the root cause: name not known, network unreachable, ...
        if isinstance(cause, OSError) and not isinstance(cause, TimeoutError) and cause.strerror:
            return str(cause.strerror).lower()
    return None


def _more_pages(info: Any, page: int, count: int, seen: int) -> bool:
    """Whether a page follows page ``page`` (``count`` items on it, ``seen`` so far)."""
    if count == 0:
        return False
    if not isinstance(info, dict):
        return True  # nothing says: read until an empty page
    total_pages, total, per_page = (
        _number(info.get(key)) for key in ("total_pages", "total_count", "per_page")
    )
    if total_pages is not None:
        return page < total_pages
    if total is not None:
        return seen < total
    if per_page is not None:  # the server's page size, whatever was asked for
        return count >= per_page
    return True


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _errors_of(err: cloudflare.APIStatusError) -> tuple[set[int], list[str], str]:
    """The numeric error codes of an error body (to classify it), every code as shown, and
    the messages; a code that is not a number is shown, never raised on."""
    body = err.body if isinstance(err.body, dict) else {}
    listed = body.get("errors")
    errors = [e for e in (listed if isinstance(listed, list) else []) if isinstance(e, dict)]
    shown = [str(e["code"]) for e in errors if e.get("code") not in (None, "")]
    codes = {int(code) for code in shown if code.isascii() and code.isdigit()}
    messages = [str(e.get("message")) for e in errors if e.get("message")]
    return codes, shown, "; ".join(messages) or str(err.message)


def _retry_after(response: httpx.Response) -> float:
    try:
        return float(response.headers.get("Retry-After", "60"))
    except ValueError:
        return 60.0
