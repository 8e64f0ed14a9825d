"""The no-Redis path: the in-process request budget and per-key write locks, and the one place
that chooses it."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from sidecar.clock import FrozenClock
from sidecar.config.accounts import build_accounts, cloudflare_provider
from sidecar.config.reload import Reloader
from sidecar.config.runtime import build, without_table
from sidecar.coordination.base import BudgetState
from sidecar.coordination.budget import Budget
from sidecar.coordination.locks import KeyedLocks
from sidecar.errors import RateLimited
from sidecar.providers.cloudflare.provider import CloudflareProvider
from sidecar.providers.cloudflare.readcache import ZoneReadCache


async def test_budget_spends_a_sliding_window_then_fails_fast() -> None:
    """Three calls per 10 s: the fourth is refused with the wait until the first one expires."""
    clock = FrozenClock()
    budget = Budget("acct", 3, 10, clock)
    for _ in range(3):
        await budget.spend()
        clock.advance(1)
    with pytest.raises(RateLimited) as caught:
        await budget.spend()
    assert (caught.value.retry_after, caught.value.details) == (
        7,
        {"account": "acct", "retryAfter": 7},
    )
    assert budget.state() == BudgetState(3, 10, 0, 0.0)
    clock.advance(7)  # the first call leaves the window
    await budget.spend()
    assert budget.remaining == 0


async def test_a_429_blocks_the_account_for_its_retry_after() -> None:
    """After Cloudflare's 429 nothing is sent until Retry-After has passed (at least 1 s)."""
    clock = FrozenClock()
    budget = Budget("acct", 100, 300, clock)
    assert (await budget.block(30), await budget.block(0.2)) == (30.0, 1.0)
    clock.advance(10)
    with pytest.raises(RateLimited, match="Cloudflare rate-limited account 'acct'") as caught:
        await budget.spend()
    assert (caught.value.retry_after, budget.blocked_for()) == (20.0, 20.0)
    clock.advance(20)
    await budget.spend()
    assert budget.state() == BudgetState(100, 300, 99, 0.0)


async def test_locks_serialise_one_key_and_leave_others_free() -> None:
    """Holders of one key take turns in order; another key is not held up; idle keys are dropped."""
    locks = KeyedLocks()
    order: list[str] = []
    release = asyncio.Event()

    async def write(key: str, name: str) -> None:
        async with locks.hold(key):
            order.append(f"{name} in")
            order.append(f"{name} out")

    entered = asyncio.Event()

    async def first_writer() -> None:
        async with locks.hold("www"):
            order.append("first in")
            entered.set()
            await release.wait()
            order.append("first out")

    first = asyncio.create_task(first_writer())
    await entered.wait()
    second = asyncio.create_task(write("www", "second"))
    await write("mail", "other")
    assert (order, len(locks)) == (["first in", "other in", "other out"], 1)
    release.set()
    await asyncio.gather(first, second)
    assert order[3:] == ["first out", "second in", "second out"]
    assert len(locks) == 0


def test_the_coordination_is_decided_in_one_place() -> None:
    """From the app down to the read cache, every layer takes the coordination (or its locks
    and versions) as a required argument: none builds an in-process one of its own."""
    takes: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
        "build": (build, ("coordination",)),
        "without_table": (without_table, ("coordination",)),
        "Reloader": (Reloader, ("coordination",)),
        "build_accounts": (build_accounts, ("coordination",)),
        "cloudflare_provider": (cloudflare_provider, ("coordination",)),
        "CloudflareProvider": (CloudflareProvider, ("locks", "versions")),
        "ZoneReadCache": (ZoneReadCache, ("versions",)),
    }
    defaults = {
        (where, name): inspect.signature(function).parameters[name].default
        for where, (function, names) in takes.items()
        for name in names
    }
    assert defaults == dict.fromkeys(defaults, inspect.Parameter.empty)
