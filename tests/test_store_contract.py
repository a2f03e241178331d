"""The spend contract, for every replay store through its URL, against real servers started
on loopback: memory, and the Redis store on one server, a cluster and through Sentinel, each
of Redis and of Valkey; sync and async."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

from pat_middleware.stores import ReplayStore, open_replay_store

from ._redis import SERVER_KINDS, initialized, unique_prefix

TTL = 10.0


def _redis_url(request: pytest.FixtureRequest) -> str:
    """The URL for a parameter naming the server and, after a ``+``, how it is deployed:
    ``valkey+cluster`` is the ``valkey_cluster`` fixture (its URL is redis+cluster://)."""
    pytest.importorskip("redis")
    kind, _, topology = request.param.partition("+")
    if not topology:
        url: str = request.getfixturevalue(f"{kind}_url")
    else:
        url = request.getfixturevalue(f"{kind}_{topology}").url
    # A generous timeout: races open dozens of connections at once on a loaded machine.
    return initialized(f"{url}?prefix={unique_prefix()}&timeout=3")


SHARED = [
    f"{kind}{topology}" for kind in SERVER_KINDS for topology in ("", "+cluster", "+sentinel")
]


@pytest.fixture(params=["memory", *SHARED])
def any_store(request: pytest.FixtureRequest) -> Iterator[ReplayStore]:
    if request.param == "memory":
        store = open_replay_store("memory://")
    else:
        store = open_replay_store(_redis_url(request))
    yield store
    store.close()


def run(store: ReplayStore, coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` in a fresh event loop; the store's connections for that loop are
    closed in it."""

    async def scenario() -> Any:
        try:
            return await coro
        finally:
            await store.aclose()

    return asyncio.run(scenario())


def test_implements_the_protocol(any_store: ReplayStore) -> None:
    assert isinstance(any_store, ReplayStore)


def test_spend_once_per_key(any_store: ReplayStore) -> None:
    assert any_store.spend(b"nonce-1", TTL) is True
    assert any_store.spend(b"nonce-1", TTL) is False
    assert any_store.spend(b"nonce-1", TTL) is False
    assert any_store.spend(b"nonce-2", TTL) is True


def test_threads_racing_on_one_key_exactly_one_wins(any_store: ReplayStore) -> None:
    n = 24
    barrier = threading.Barrier(n)
    results: list[bool] = []
    lock = threading.Lock()

    def race() -> None:
        barrier.wait()
        fresh = any_store.spend(b"raced", TTL)
        with lock:
            results.append(fresh)

    threads = [threading.Thread(target=race) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == n
    assert results.count(True) == 1


def test_async_form_and_a_race(any_store: ReplayStore) -> None:
    async def scenario() -> list[Any]:
        first = await any_store.spend_async(b"k", TTL)
        second = await any_store.spend_async(b"k", TTL)
        racing = await asyncio.gather(*(any_store.spend_async(b"r", TTL) for _ in range(40)))
        return [first, second, racing.count(True)]

    assert run(any_store, scenario()) == [True, False, 1]
    # The sync and async forms share the keys.
    assert any_store.spend(b"r", TTL) is False
    assert run(any_store, any_store.spend_async(b"s", TTL)) is True
    assert any_store.spend(b"s", TTL) is False


def test_a_closed_store_is_still_usable(any_store: ReplayStore) -> None:
    assert any_store.spend(b"before", TTL) is True
    any_store.close()
    assert any_store.spend(b"before", TTL) is False
    assert any_store.spend(b"after", TTL) is True
