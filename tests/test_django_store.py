"""django-cache:// against real servers the tests start: memcached (Django's
PyMemcacheCache, pymemcache) and Redis (Django's RedisCache); the refusal of caches whose
``add`` is not atomic across processes, at start-up and as system check E004."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.cache import close_caches
from django.test import override_settings

from pat_middleware import ConfigurationError, IssuerKey, Reason
from pat_middleware.integrations.django.checks import check_settings
from pat_middleware.integrations.django.store import (
    DjangoCacheReplayStore,
    UnsuitableCache,
)
from pat_middleware.policy import Outcome, Policy
from pat_middleware.stores import ReplayStore, StoreUnavailable, open_replay_store

from . import test_django  # Django is configured there, once per process
from ._origin import Browser, answer, header, make_settings
from ._store_servers import MemcachedServer

pytest.importorskip("pymemcache")
TTL = 10.0
ALIAS = "replay"
MEMCACHED = "django.core.cache.backends.memcached.PyMemcacheCache"
REDIS = "django.core.cache.backends.redis.RedisCache"
TIMEOUTS = {MEMCACHED: {"timeout": 0.5, "connect_timeout": 0.5}}
TIMEOUTS[REDIS] = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}


def caches(backend: str, location: str, **options: Any) -> dict[str, Any]:
    """CACHES with the default cache and ``ALIAS`` on ``backend``."""
    return {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        ALIAS: {
            "BACKEND": backend,
            "LOCATION": location,
            "OPTIONS": {**TIMEOUTS.get(backend, {}), **options},
            "KEY_PREFIX": uuid.uuid4().hex[:8],  # a namespace per test on shared servers
        },
    }


@pytest.fixture(params=["memcached", "redis"])
def cache_settings(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    if request.param == "memcached":
        value = caches(MEMCACHED, request.getfixturevalue("memcached").location)
    else:
        pytest.importorskip("redis")
        value = caches(REDIS, request.getfixturevalue("redis_url"))
    with override_settings(CACHES=value):
        yield value


@pytest.fixture(autouse=True)
def _closing_caches() -> Iterator[None]:
    """Close this thread's cache connections after each test, as Django does after each
    request."""
    yield
    close_caches()


@pytest.fixture
def store(cache_settings: dict[str, Any]) -> ReplayStore:
    return open_replay_store(f"django-cache://{ALIAS}?prefix=t:")


# ------------------------------------------------------------------------------ the contract


def test_spend_once_per_key(store: ReplayStore) -> None:
    assert isinstance(store, DjangoCacheReplayStore) and isinstance(store, ReplayStore)
    assert store.spend(b"\x00nonce", TTL) is True
    assert store.spend(b"\x00nonce", TTL) is False
    assert store.spend(b"\x00other", TTL) is True
    assert repr(store) == "DjangoCacheReplayStore(django-cache://replay, prefix='t:')"


def test_threads_racing_on_one_key_exactly_one_wins(store: ReplayStore) -> None:
    n = 16
    barrier = threading.Barrier(n)
    results: list[bool] = []
    lock = threading.Lock()

    def race() -> None:
        barrier.wait()
        try:
            won = store.spend(b"raced", TTL)
        finally:
            close_caches()  # this thread's connections
        with lock:
            results.append(won)

    threads = [threading.Thread(target=race) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [False] * (n - 1) + [True]


def test_async_form_shares_the_keys(store: ReplayStore) -> None:
    async def spend(key: bytes) -> bool:
        # Each task has a context, so a cache (and connection) of its own, as each request
        # does; Django closes a request's when it finishes.
        try:
            return await store.spend_async(key, TTL)
        finally:
            close_caches()

    async def scenario() -> list[object]:
        racing = await asyncio.gather(*(spend(b"a") for _ in range(10)))
        return [racing.count(True), await spend(b"b")]

    assert asyncio.run(scenario()) == [1, True]
    assert store.spend(b"b", TTL) is False


def test_keys_expire_after_their_ttl_rounded_up_to_a_second(store: ReplayStore) -> None:
    assert store.spend(b"short", 0.2) is True  # held one second, never less than asked
    assert store.spend(b"short", 0.2) is False
    time.sleep(2.1)  # memcached expires on whole seconds
    assert store.spend(b"short", 0.2) is True


def test_two_policies_accept_a_token_once(
    cache_settings: dict[str, Any], issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey
) -> None:
    url = f"django-cache://{ALIAS}"
    first, second = (Policy(make_settings(issuer_key, replay_store=url)) for _ in range(2))
    browser = Browser(first)
    token = answer(browser.challenge(), rsa_2048, issuer_key)
    assert browser.get(token=token).outcome is Outcome.PASS
    browser.policy = second
    replay = browser.get(
        token=token, cookie=f"__Host-pat_session={browser.cookies['__Host-pat_session']}"
    )
    assert replay.reason is not None and replay.reason.value == "replayed"


def _memcached_stats(server: MemcachedServer) -> dict[str, int]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as s:
        s.sendall(b"stats\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            data += s.recv(65536)
    stats = {}
    for line in data.decode().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "STAT" and parts[2].isdigit():
            stats[parts[1]] = int(parts[2])
    return stats


def test_an_accept_is_one_add_on_memcached(
    memcached: MemcachedServer, issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey
) -> None:
    with override_settings(CACHES=caches(MEMCACHED, memcached.location)):
        policy = Policy(make_settings(issuer_key, replay_store=f"django-cache://{ALIAS}"))
        browser = Browser(policy)
        warm = answer(browser.challenge(), rsa_2048, issuer_key)
        assert browser.get(token=warm).outcome is Outcome.PASS  # connects
        browser.cookies.clear()
        token = answer(browser.challenge(), rsa_2048, issuer_key)
        before = _memcached_stats(memcached)
        assert browser.get(token=token).outcome is Outcome.PASS
        after = _memcached_stats(memcached)
    counted = ("cmd_get", "cmd_set", "cmd_touch", "cmd_flush", "delete_hits", "delete_misses")
    assert {name: after[name] - before[name] for name in counted} == {
        "cmd_get": 0, "cmd_set": 1, "cmd_touch": 0, "cmd_flush": 0,
        "delete_hits": 0, "delete_misses": 0,
    }  # fmt: skip


# ------------------------------------------------------------------------------ outages


def test_memcached_down_fails_closed_fast_and_recovers(
    issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey
) -> None:
    with MemcachedServer() as server, override_settings(CACHES=caches(MEMCACHED, server.location)):
        url = f"django-cache://{ALIAS}?retry_after=0.5"
        policy = Policy(make_settings(issuer_key, replay_store=url))
        browser = Browser(policy)
        token = answer(browser.challenge(), rsa_2048, issuer_key)
        server.stop()
        started = time.monotonic()
        down = browser.get(token=token)
        assert time.monotonic() - started < 2.0
        assert (down.outcome, down.status) == (Outcome.UNAVAILABLE, 503)
        assert header(down.headers, "Retry-After") == "1"
        assert browser.get(token=token).outcome is Outcome.UNAVAILABLE  # backing off
        server.start()  # same port, empty
        time.sleep(0.6)
        deadline = time.monotonic() + 5
        decision = browser.get(token=token)
        while decision.outcome is not Outcome.PASS and time.monotonic() < deadline:
            # Between its retries of a failed server, pymemcache's HashClient answers
            # add with False unasked: refused as replayed (closed, a fresh challenge).
            assert (decision.outcome, decision.reason) in {
                (Outcome.UNAVAILABLE, None), (Outcome.REJECT, Reason.REPLAYED)
            }, decision  # fmt: skip
            time.sleep(0.3)
            decision = browser.get(token=token)
        assert decision.outcome is Outcome.PASS, decision
        assert browser.get(token=token).outcome is not Outcome.PASS


def test_redis_password_appears_in_no_error(redis_url: str) -> None:
    pytest.importorskip("redis")
    secret = "Dj4ngoRedis-pw"
    port = redis_url.rsplit(":", 1)[1].split("/")[0]
    location = f"redis://admin:{secret}@127.0.0.1:{port}/0"
    with override_settings(CACHES=caches(REDIS, location)):
        store = open_replay_store(f"django-cache://{ALIAS}")
        assert secret not in repr(store)
        with pytest.raises(StoreUnavailable) as info:  # no such user on this server
            store.spend(b"k", TTL)
        assert secret not in str(info.value)
        assert isinstance(store, DjangoCacheReplayStore)
        assert store._breaker._secrets == (secret, "admin")  # kept out of any client error


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    "backend",
    [
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.cache.backends.filebased.FileBasedCache",
        "django.core.cache.backends.db.DatabaseCache",
        "django.core.cache.backends.dummy.DummyCache",
    ],
)
def test_caches_without_an_atomic_add_are_refused(
    backend: str, issuer_key: IssuerKey, tmp_path: Any
) -> None:
    with override_settings(CACHES=caches(backend, str(tmp_path))):
        with pytest.raises(UnsuitableCache) as info:
            open_replay_store(f"django-cache://{ALIAS}")
        assert info.value.setting == "replay_store"
        assert backend in info.value.message and "atomic" in info.value.message
        with pytest.raises(ConfigurationError) as loading:
            make_settings(issuer_key, replay_store=f"django-cache://{ALIAS}")
        assert loading.value.setting == "replay_store"
        pat = test_django.pat_settings(issuer_key, replay_store=f"django-cache://{ALIAS}")
        with override_settings(PAT_MIDDLEWARE=pat):
            (message,) = check_settings()
        assert message.id == "pat_middleware.E004"
        assert "replay_store" in message.msg and backend in message.msg


@pytest.mark.parametrize(
    ("backend", "options", "words"),
    [
        (MEMCACHED, {"timeout": None}, "connect_timeout"),  # replaced below: no timeouts
        (MEMCACHED, {"default_noreply": True}, "default_noreply"),
        (MEMCACHED, {"ignore_exc": True}, "ignore_exc"),
        (REDIS, {}, "socket_timeout"),
    ],
)
def test_unbounded_or_blind_clients_are_refused(
    backend: str, options: dict[str, Any], words: str
) -> None:
    value = caches(backend, "127.0.0.1:1", **options)
    if words in ("connect_timeout", "socket_timeout"):
        value[ALIAS]["OPTIONS"] = {}
    with override_settings(CACHES=value), pytest.raises(UnsuitableCache) as info:
        open_replay_store(f"django-cache://{ALIAS}")
    assert words in info.value.message


def test_several_memcached_servers_are_refused() -> None:
    for location in ("127.0.0.1:1;127.0.0.1:2", ["127.0.0.1:1", "127.0.0.1:2"]):
        value = caches(MEMCACHED, "")
        value[ALIAS]["LOCATION"] = location
        with override_settings(CACHES=value), pytest.raises(UnsuitableCache) as info:
            open_replay_store(f"django-cache://{ALIAS}")
        assert "one" in info.value.message and "several memcached servers" in info.value.message


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("django-cache://", "names a cache alias"),
        ("django-cache://a b", "names a cache alias"),
        ("django-cache://:hunter2@host", "names a cache alias"),
        ("django-cache://nosuchalias", "not in CACHES"),
        ("django-cache://replay?colour=blue", "options are prefix and retry_after"),
        ("django-cache://replay?prefix=a&prefix=b", "each at most once"),
        ("django-cache://replay?prefix=a b", "'prefix'"),
        ("django-cache://replay?retry_after=0", "'retry_after'"),
    ],
)
def test_bad_urls_name_the_setting(url: str, words: str, memcached: MemcachedServer) -> None:
    cache = caches(MEMCACHED, memcached.location)
    with override_settings(CACHES=cache), pytest.raises(ConfigurationError) as info:
        open_replay_store(url, setting="PAT_REPLAY_STORE")
    assert info.value.setting == "PAT_REPLAY_STORE"
    assert words in info.value.message
    assert "hunter2" not in str(info.value) and "nosuchalias" not in str(info.value)
