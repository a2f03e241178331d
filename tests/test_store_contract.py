"""The reserve / commit / release contract, for every replay store: the memory store and
the Redis store against a real redis-server, through the sync and the async forms."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

from pat_middleware.stores import (
    AsyncReplayStore,
    MemoryReplayStore,
    ReplayStore,
    open_replay_store,
)

from ._redis import initialized, unique_prefix

TTL = 10.0


@pytest.fixture(params=["memory", "redis"])
def any_store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryReplayStore()
        return
    pytest.importorskip("redis")
    url = request.getfixturevalue("redis_url")
    store = open_replay_store(initialized(f"{url}?prefix={unique_prefix()}"))
    yield store
    store.close()  # type: ignore[attr-defined]


def run(store: Any, coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` in a fresh event loop; a Redis store's connections for that loop are
    closed in it."""

    async def scenario() -> Any:
        try:
            return await coro
        finally:
            if hasattr(store, "aclose"):
                await store.aclose()

    return asyncio.run(scenario())


def test_implements_both_interfaces(any_store: Any) -> None:
    assert isinstance(any_store, ReplayStore)
    assert isinstance(any_store, AsyncReplayStore)


def test_reserve_once_commit_keeps_it_spent(any_store: Any) -> None:
    assert any_store.reserve(b"nonce-1", TTL) is True
    assert any_store.reserve(b"nonce-1", TTL) is False
    any_store.commit(b"nonce-1")
    assert any_store.reserve(b"nonce-1", TTL) is False
    assert any_store.reserve(b"nonce-2", TTL) is True


def test_release_lets_the_key_be_reserved_again(any_store: Any) -> None:
    assert any_store.reserve(b"k", TTL)
    any_store.release(b"k")
    assert any_store.reserve(b"k", TTL) is True
    assert any_store.reserve(b"k", TTL) is False
    any_store.release(b"never-reserved")  # harmless


def test_threads_racing_on_one_key_exactly_one_wins(any_store: Any) -> None:
    n = 24
    barrier = threading.Barrier(n)
    results: list[bool] = []
    lock = threading.Lock()

    def race() -> None:
        barrier.wait()
        fresh = any_store.reserve(b"raced", TTL)
        with lock:
            results.append(fresh)

    threads = [threading.Thread(target=race) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == n
    assert results.count(True) == 1


def test_async_forms_and_a_race(any_store: Any) -> None:
    async def scenario() -> list[Any]:
        first = await any_store.reserve_async(b"k", TTL)
        second = await any_store.reserve_async(b"k", TTL)
        await any_store.commit_async(b"k")
        third = await any_store.reserve_async(b"k", TTL)
        await any_store.release_async(b"k")
        fourth = await any_store.reserve_async(b"k", TTL)
        racing = await asyncio.gather(*(any_store.reserve_async(b"r", TTL) for _ in range(40)))
        return [first, second, third, fourth, racing.count(True)]

    assert run(any_store, scenario()) == [True, False, False, True, 1]
    # The sync and async forms share the keys.
    assert any_store.reserve(b"r", TTL) is False
    assert run(any_store, any_store.reserve_async(b"s", TTL)) is True
    assert any_store.reserve(b"s", TTL) is False
