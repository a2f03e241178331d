"""The memory store: expiry, bounds, races, epochs; memory:// URLs and the scheme registry."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pat_middleware.errors import ConfigurationError
from pat_middleware.stores import (
    MemoryReplayStore,
    ReplayStore,
    StoreUnavailable,
    check_store_url,
    open_replay_store,
    register_store,
    registered_schemes,
)

from ._origin import FakeClock

TTL = 10.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def store(clock: FakeClock) -> MemoryReplayStore:
    return MemoryReplayStore(clock=clock)


def test_len_counts_the_spent_keys(store: MemoryReplayStore) -> None:
    # The contract itself is in test_store_contract.py, for every store.
    assert store.spend(b"nonce-1", TTL) is True
    assert store.spend(b"nonce-1", TTL) is False
    assert store.spend(b"nonce-2", TTL) is True
    assert len(store) == 2


def test_keys_expire_after_their_ttl(store: MemoryReplayStore, clock: FakeClock) -> None:
    assert store.spend(b"k", TTL)
    clock.advance(TTL - 0.01)
    assert store.spend(b"k", TTL) is False
    clock.advance(0.02)
    assert store.spend(b"k", TTL) is True
    clock.advance(TTL - 0.01)
    assert store.spend(b"k", TTL) is False, "the new spend has a TTL of its own"


def test_expired_keys_are_swept(store: MemoryReplayStore, clock: FakeClock) -> None:
    for i in range(50):
        assert store.spend(b"k%d" % i, TTL)
    clock.advance(TTL + 2)
    assert store.spend(b"fresh", TTL)
    assert len(store) == 1


def test_full_store_fails_closed_and_recovers(clock: FakeClock) -> None:
    store = MemoryReplayStore(max_entries=3, clock=clock)
    for key in (b"a", b"b", b"c"):
        assert store.spend(key, TTL)

    with pytest.raises(StoreUnavailable) as info:
        store.spend(b"d", TTL)
    assert info.value.retry_after >= 1
    # A spent key is still refused (not an error) while the store is full.
    assert store.spend(b"a", TTL) is False
    assert len(store) == 3

    clock.advance(TTL + 0.5)
    assert store.spend(b"d", TTL) is True
    assert store.spend(b"d", TTL) is False


def test_full_store_recovers_as_soon_as_one_entry_expires(clock: FakeClock) -> None:
    store = MemoryReplayStore(max_entries=2, clock=clock)
    assert store.spend(b"long", 100.0)
    assert store.spend(b"short", 1.0)
    with pytest.raises(StoreUnavailable):
        store.spend(b"new", TTL)
    clock.advance(1.5)  # only "short" has expired; it sits behind a live key
    assert store.spend(b"new", TTL) is True
    assert store.spend(b"long", TTL) is False


def test_clear_forgets_every_spend(clock: FakeClock) -> None:
    store = MemoryReplayStore(max_entries=1, clock=clock)
    assert store.spend(b"a", TTL)
    with pytest.raises(StoreUnavailable):
        store.spend(b"b", TTL)
    store.clear()
    assert len(store) == 0
    assert store.spend(b"b", TTL) is True


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
        won = store.spend(_SlowKey(b"contested-%d" % round_), TTL)
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
            if store.spend(key, TTL):
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
        assert await store.spend_async(b"a", TTL)
        await store.spend_async(b"b", TTL)

    with pytest.raises(StoreUnavailable):
        asyncio.run(scenario())


# ---------------------------------------------------------------------- store URLs


def test_open_memory_store() -> None:
    store = open_replay_store("memory://")
    assert isinstance(store, MemoryReplayStore)
    assert store.spend(b"k", TTL) and not store.spend(b"k", TTL)


def test_open_memory_store_with_max_entries() -> None:
    store = open_replay_store("memory://?max_entries=2")
    assert store.spend(b"a", TTL) and store.spend(b"b", TTL)
    with pytest.raises(StoreUnavailable):
        store.spend(b"c", TTL)


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


# ---------------------------------------------------------------------- the scheme registry


class _Recording:
    """A third-party store: what its factory was given, and a dict of spends."""

    def __init__(self, url: str, setting: str) -> None:
        self.url, self.setting = url, setting
        self.spent: set[bytes] = set()
        self.closed = 0

    def spend(self, key: bytes, ttl: float) -> bool:
        fresh = key not in self.spent
        self.spent.add(key)
        return fresh

    async def spend_async(self, key: bytes, ttl: float) -> bool:
        return self.spend(key, ttl)

    def close(self) -> None:
        self.closed += 1

    async def aclose(self) -> None:
        self.closed += 1


def _open_recording(url: str, *, setting: str, clock: Callable[[], float]) -> _Recording:
    return _Recording(url, setting)


@pytest.fixture
def registry() -> Iterator[None]:
    """Leaves the registry as it found it."""
    from pat_middleware.stores import registry as module

    saved = dict(module._factories)
    yield
    module._factories.clear()
    module._factories.update(saved)


def test_a_registered_scheme_opens_with_its_factory(registry: None) -> None:
    register_store("Test-Store", _open_recording)
    store = open_replay_store("test-store://anything?x=1", setting="PAT_STORE")
    assert isinstance(store, _Recording) and isinstance(store, ReplayStore)
    assert (store.url, store.setting) == ("test-store://anything?x=1", "PAT_STORE")
    assert "test-store" in registered_schemes()
    assert check_store_url("TEST-STORE://x") == "test-store"


def test_a_factory_path_is_imported_on_first_use(registry: None) -> None:
    register_store("lazy", "tests.test_stores:_open_recording")
    assert isinstance(open_replay_store("lazy://"), _Recording)
    register_store("broken", "tests.no_such_module:factory")
    with pytest.raises(ConfigurationError) as info:
        open_replay_store("broken://secret@host")
    assert info.value.setting == "replay_store"
    assert "broken:// replay store cannot be loaded" in info.value.message
    assert "secret" not in str(info.value)


def test_registering_a_taken_scheme_needs_replace(registry: None) -> None:
    with pytest.raises(ValueError, match="registered already"):
        register_store("redis", _open_recording)
    register_store("redis", _open_recording, replace=True)
    assert isinstance(open_replay_store("redis://h/0"), _Recording)


@pytest.mark.parametrize(
    ("scheme", "factory"),
    [("no scheme", _open_recording), ("1abc", _open_recording), ("ok", "no-colon")],
)
def test_bad_registrations_are_refused(registry: None, scheme: str, factory: Any) -> None:
    with pytest.raises(ValueError):
        register_store(scheme, factory)


def test_unknown_schemes_name_the_setting_and_quote_nothing_of_the_url() -> None:
    for url in ("postgres://user:hunter2@db/replay", "hunter2@valkyrie", "s3cr3t:pw@host"):
        with pytest.raises(ConfigurationError) as info:
            open_replay_store(url, setting="PAT_REPLAY_STORE")
        assert info.value.setting == "PAT_REPLAY_STORE"
        message = str(info.value)
        assert "unknown store URL scheme" in message and "redis+sentinel://" in message
        for piece in ("postgres", "hunter2", "s3cr3t", "user:", "valkyrie"):
            assert piece not in message


def test_importing_the_package_and_opening_memory_imports_no_store_client() -> None:
    code = (
        "import sys, pat_middleware, pat_middleware.stores\n"
        "from pat_middleware.stores import open_replay_store, check_store_url\n"
        "open_replay_store('memory://')\n"
        "check_store_url('memory://?max_entries=5')\n"
        "names = [m for m in sys.modules if m.split('.')[0] in "
        "('redis', 'django', 'pymemcache', 'pylibmc')\n"
        "    or m.startswith(('pat_middleware.stores.redis', 'pat_middleware.integrations'))]\n"
        "print(','.join(sorted(names)))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == ""


def test_settings_check_the_store_url_through_the_registry(registry: None) -> None:
    from pat_middleware.stores import registry as module

    opened: list[_Recording] = []

    def factory(url: str, *, setting: str, clock: Callable[[], float]) -> _Recording:
        opened.append(_Recording(url, setting))
        return opened[-1]

    register_store("checked", factory)
    assert check_store_url("checked://x") == "checked"
    assert [s.closed for s in opened] == [1], "checked: built and closed, nothing left open"
    assert module.url_scheme("CHECKED://x") == "checked"


def test_the_breaker_never_repeats_a_secret_from_a_client_error() -> None:
    from pat_middleware.stores.breaker import Breaker

    breaker = Breaker(1.0, time.monotonic, "a store", secrets=("hunter2-long", None, ""))
    error = ConnectionError("Connection(password=hunter2-long,host=h) refused " + "x" * 200)
    failed = breaker.failed("h:1", error)
    assert "hunter2" not in str(failed) and "<redacted>" in str(failed)
    assert failed.retry_after == 1
    with pytest.raises(StoreUnavailable) as info:
        breaker.check("h:1")
    assert "hunter2" not in str(info.value) and "backing off" in str(info.value)
