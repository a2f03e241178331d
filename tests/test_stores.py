"""Replay stores: the reserve / commit / release contract, expiry, bounds, races, URLs."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from pat_middleware.errors import ConfigurationError
from pat_middleware.stores import (
    MemoryReplayStore,
    StoreUnavailable,
    open_replay_store,
)

from ._origin import FakeClock

TTL = 10.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def store(clock: FakeClock) -> MemoryReplayStore:
    return MemoryReplayStore(clock=clock)


def test_len_counts_the_reserved_keys(store: MemoryReplayStore) -> None:
    # The contract itself is in test_store_contract.py, for every store.
    assert store.reserve(b"nonce-1", TTL) is True
    assert store.reserve(b"nonce-1", TTL) is False
    assert store.reserve(b"nonce-2", TTL) is True
    assert len(store) == 2


def test_keys_expire_after_their_ttl(store: MemoryReplayStore, clock: FakeClock) -> None:
    assert store.reserve(b"k", TTL)
    clock.advance(TTL - 0.01)
    assert store.reserve(b"k", TTL) is False
    clock.advance(0.02)
    assert store.reserve(b"k", TTL) is True
    clock.advance(TTL - 0.01)
    assert store.reserve(b"k", TTL) is False, "the new reservation has a TTL of its own"


def test_expired_keys_are_swept(store: MemoryReplayStore, clock: FakeClock) -> None:
    for i in range(50):
        assert store.reserve(b"k%d" % i, TTL)
    clock.advance(TTL + 2)
    assert store.reserve(b"fresh", TTL)
    assert len(store) == 1


def test_full_store_fails_closed_and_recovers(clock: FakeClock) -> None:
    store = MemoryReplayStore(max_entries=3, clock=clock)
    for key in (b"a", b"b", b"c"):
        assert store.reserve(key, TTL)

    with pytest.raises(StoreUnavailable) as info:
        store.reserve(b"d", TTL)
    assert info.value.retry_after >= 1
    # A spent key is still refused (not an error) while the store is full.
    assert store.reserve(b"a", TTL) is False
    assert len(store) == 3

    clock.advance(TTL + 0.5)
    assert store.reserve(b"d", TTL) is True
    assert store.reserve(b"d", TTL) is False


def test_full_store_recovers_as_soon_as_one_entry_expires(clock: FakeClock) -> None:
    store = MemoryReplayStore(max_entries=2, clock=clock)
    assert store.reserve(b"long", 100.0)
    assert store.reserve(b"short", 1.0)
    with pytest.raises(StoreUnavailable):
        store.reserve(b"new", TTL)
    clock.advance(1.5)  # only "short" has expired; it sits behind a live key
    assert store.reserve(b"new", TTL) is True
    assert store.reserve(b"long", TTL) is False


def test_release_frees_room_in_a_full_store(clock: FakeClock) -> None:
    store = MemoryReplayStore(max_entries=1, clock=clock)
    assert store.reserve(b"a", TTL)
    with pytest.raises(StoreUnavailable):
        store.reserve(b"b", TTL)
    store.release(b"a")
    assert store.reserve(b"b", TTL) is True


def test_max_entries_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryReplayStore(max_entries=0)


class _SlowKey(bytes):
    """A key whose hashing yields the GIL, so an unlocked check-then-set would interleave."""

    def __hash__(self) -> int:
        time.sleep(0.0005)
        return bytes.__hash__(self)


@pytest.mark.parametrize("round_", range(3))
def test_threads_racing_on_one_key_exactly_one_wins(round_: int) -> None:
    store = MemoryReplayStore()
    threads = 16
    barrier = threading.Barrier(threads)
    results: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        won = store.reserve(_SlowKey(b"contested-%d" % round_), TTL)
        with lock:
            results.append(won)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(10)
    assert len(results) == threads
    assert results.count(True) == 1


def test_threads_racing_on_many_keys_each_key_won_once() -> None:
    store = MemoryReplayStore(max_entries=10_000)
    keys = [b"key-%d" % i for i in range(200)]
    wins: list[bytes] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for key in keys:
            if store.reserve(key, TTL):
                with lock:
                    wins.append(key)

    pool = [threading.Thread(target=worker) for _ in range(8)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(10)
    assert sorted(wins) == sorted(keys)


def test_async_full_store_raises(clock: FakeClock) -> None:
    store = MemoryReplayStore(max_entries=1, clock=clock)

    async def scenario() -> None:
        assert await store.reserve_async(b"a", TTL)
        await store.reserve_async(b"b", TTL)

    with pytest.raises(StoreUnavailable):
        asyncio.run(scenario())


# ---------------------------------------------------------------------- store URLs


def test_open_memory_store() -> None:
    store = open_replay_store("memory://")
    assert isinstance(store, MemoryReplayStore)
    assert store.reserve(b"k", TTL) and not store.reserve(b"k", TTL)


def test_open_memory_store_with_max_entries() -> None:
    store = open_replay_store("memory://?max_entries=2")
    assert store.reserve(b"a", TTL) and store.reserve(b"b", TTL)
    with pytest.raises(StoreUnavailable):
        store.reserve(b"c", TTL)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memory://?max_entries=abc", "integer"),
        ("memory://?max_entries=1.5", "integer"),
        ("memory://?max_entries=0", "at least 1"),
        ("memory://?max_entries=-5", "at least 1"),
        ("postgres://db/replay", "scheme"),
        ("", "scheme"),
        ("memory", "scheme"),
    ],
)
def test_bad_store_urls_name_the_setting(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        open_replay_store(url)
    assert info.value.setting == "replay_store"
    assert message in info.value.message
    assert str(info.value).startswith("replay_store: ")


def test_store_url_errors_name_the_given_setting() -> None:
    with pytest.raises(ConfigurationError) as info:
        open_replay_store("memory://?max_entries=x", setting="PAT_REPLAY_STORE")
    assert info.value.setting == "PAT_REPLAY_STORE"


def test_each_store_has_an_epoch_of_its_own_and_a_forked_copy_gets_a_new_one() -> None:
    import os
    import warnings

    first, second = MemoryReplayStore(), MemoryReplayStore()
    assert len(first.epoch) == 16 and first.epoch != second.epoch
    assert first.epoch is first.epoch  # stable within the process
    assert not first.forked
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads about
        pid = os.fork()
    if pid == 0:
        try:
            os.write(write_end, first.epoch + bytes([first.forked]))
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as reader:
        child = reader.read()
    assert len(child) == 17 and child[:16] != first.epoch and child[16] == 1
    assert not first.forked
