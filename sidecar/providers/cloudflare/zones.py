"""Zone ids: from the routing table, else looked up once by name and cached (until Cloudflare
says it knows no zone by that id: :meth:`ZoneDirectory.forget`, then looked up again).

With a zone named ``.`` (seed-compatible mode: one account serving every zone it can see) the
account's zones are listed, cached for a while, and a name goes to the longest matching one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.clock import Clock
from sidecar.errors import DomainNotAllowed, ProviderError, SidecarError
from sidecar.providers.base import ROOT, ZonePolicy
from sidecar.providers.cloudflare.client import CloudflareApi
from sidecar.records.names import is_within
from sidecar.tasks import SingleFlight

LISTING_TTL = 300.0


@dataclass(frozen=True, slots=True)
class CloudflareZone:
    id: str
    name: str


class ZoneDirectory:
    def __init__(self, api: CloudflareApi, clock: Clock) -> None:
        self._api = api
        self._clock = clock
        self._by_name: dict[str, CloudflareZone] = {}
        self._listing: list[CloudflareZone] | None = None
        self._listed_at = float("-inf")
        self._lookups: SingleFlight[str, CloudflareZone] = SingleFlight()
        self._listings: SingleFlight[str, list[CloudflareZone]] = SingleFlight()

    async def zone_for(self, policy: ZonePolicy, fqdn: str) -> CloudflareZone:
        if policy.zone_id:
            return CloudflareZone(policy.zone_id, policy.name)
        if policy.name != ROOT:
            return await self._shared(policy.name)
        zones = await self._all()
        matching = [zone for zone in zones if is_within(fqdn, zone.name)]
        if not matching:
            raise DomainNotAllowed(
                f"Cloudflare account {self._api.account!r} has no zone covering {fqdn}.",
                details={"fqdn": fqdn},
            )
        return max(matching, key=lambda zone: len(zone.name))

    async def every_zone(self) -> list[CloudflareZone]:
        """Every zone the account holds (listed at most every few minutes)."""
        return list(await self._all())

    def forget(self, policy: ZonePolicy, zone: CloudflareZone) -> bool:
        """Drop ``zone``'s id, which Cloudflare no longer knows (the zone was deleted, perhaps
        re-created under a new id): the next request looks it up again. False when the id comes
        from the routing table (nothing to look up)."""
        if policy.zone_id:
            return False
        if policy.name != ROOT:
            if self._by_name.get(policy.name) == zone:
                del self._by_name[policy.name]
        elif self._listing is not None and zone in self._listing:
            self._listing = None
        return True

    async def _shared(self, name: str) -> CloudflareZone:
        """Looked up once and kept; concurrent first requests share one lookup, and a failed
        one is not kept (the next request asks again)."""
        found = self._by_name.get(name)
        if found is None:
            found = self._by_name[name] = await self._lookups.run(name, lambda: self._lookup(name))
        return found

    async def _lookup(self, name: str) -> CloudflareZone:
        try:
            zones = await self._api.list_zones(name)
        except ProviderError as err:
            if not await self._token_verifies():
                raise  # a wrong token or key: the hint below would send people astray
            raise ProviderError(
                f"{err.message} The token verifies but cannot look zones up, as with a "
                f"zone-scoped token: set zoneId for {name} in the routing table.",
                details={"zone": name},
            ) from err
        for zone in zones:
            if str(zone.get("name", "")).lower() == name:
                return CloudflareZone(str(zone["id"]), name)
        raise ProviderError(
            f"Cloudflare account {self._api.account!r} has no zone {name!r} (or its token may "
            "not read zones; set zoneId in the routing table for zone-scoped tokens).",
            details={"zone": name},
        )

    async def _token_verifies(self) -> bool:
        """Whether the account signs in with a token that Cloudflare calls active (one more
        call, made only after a zone lookup failed)."""
        if self._api.client().api_token is None:
            return False
        try:
            return await self._api.verify_token() == "active"
        except SidecarError:
            return False

    async def _all(self) -> list[CloudflareZone]:
        fresh = self._clock.monotonic() - self._listed_at < LISTING_TTL
        if self._listing is None or not fresh:
            self._listing = await self._listings.run(ROOT, self._list_all)
        return self._listing

    async def _list_all(self) -> list[CloudflareZone]:
        zones = [
            CloudflareZone(str(z["id"]), str(z["name"]).lower())
            for z in await self._api.list_zones()
        ]
        self._listed_at = self._clock.monotonic()
        return zones

    async def aclose(self) -> None:
        await self._lookups.aclose()
        await self._listings.aclose()
