"""The Redis replay store against a real redis-server: contract, races, URLs, outages, HTTP.
What depends on the server (keys and TTLs, the epoch script, store-init, async spends, an
empty server, outages) runs against a real valkey-server too."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from pat_middleware import IssuerKey
from pat_middleware.cli.demo import create_origin_app
from pat_middleware.errors import ConfigurationError
from pat_middleware.integrations.wsgi import PrivateTokenWSGIMiddleware, StartResponse, WSGIEnviron
from pat_middleware.policy import Decision, Outcome, Policy
from pat_middleware.settings import Settings
from pat_middleware.stores import (
    StoreUnavailable,
    open_replay_store,
)
from pat_middleware.stores.redis import RedisReplayStore, parse_redis_url

from ._origin import Browser, header, make_settings, redemption, spent_once_by_two
from ._origin import answer as answer_policy
from ._redis import (
    RedisServer,
    initialized,
    of_each_kind,
    sent_commands,
    store_for,
    unique_prefix,
)
from ._servers import serve_asgi
from ._wsgi_harness import Browser as HttpBrowser
from ._wsgi_harness import answer, httpx_send, pat_settings, serve_wsgi

TTL = 10.0


server_url = of_each_kind("server_url", "{kind}_url")
own_server = of_each_kind("own_server", "own_{kind}")


@pytest.fixture
def store(server_url: str) -> Iterator[RedisReplayStore]:
    with closing(store_for(server_url)) as s:
        yield s


@pytest.fixture
def raw(server_url: str) -> Iterator[redis.Redis]:
    """A plain redis-py client, to look at what the store wrote."""
    client = redis.Redis.from_url(server_url)
    yield client
    client.close()


@pytest.fixture
def raw_own(own_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(port=own_server.port)
    yield client
    client.close()


def run_async(store: RedisReplayStore, coro: Any) -> Any:
    """Run ``coro`` in a fresh loop and close the store's asyncio connections in it."""

    async def scenario() -> Any:
        try:
            return await coro
        finally:
            await store.aclose()

    return asyncio.run(scenario())


# ------------------------------------------------------- Redis keys (contract: test_store_contract)


def test_key_is_prefixed_binary_and_expires_after_its_ttl(
    store: RedisReplayStore, raw: redis.Redis
) -> None:
    key = bytes(range(256))
    assert store.spend(key, 0.3)
    stored = store.spend_key(key)
    assert stored == store.options.prefix.encode() + b"{ff}:" + key  # the last byte's shard
    assert store.epoch_key(key) == store.options.prefix.encode() + b"{ff}epoch"
    assert raw.get(stored) == b"1"
    assert 0 < raw.pttl(stored) <= 300
    assert store.spend(key, 0.3) is False
    time.sleep(0.4)
    assert raw.exists(stored) == 0
    assert store.spend(key, 0.3) is True


@pytest.mark.parametrize("ttl", [0.0, 0.0001, 0.0015, 1e-300])
def test_a_ttl_under_a_millisecond_is_rounded_up_never_to_zero(
    store: RedisReplayStore, raw: redis.Redis, ttl: float
) -> None:
    """Redis refuses PX 0: rounding down would make the store fail on short TTLs."""
    assert store.spend(b"short", ttl) is True
    assert raw.pttl(store.spend_key(b"short")) in (-2, 0, 1, 2)  # gone or going


def test_binary_keys_do_not_collide(store: RedisReplayStore) -> None:
    keys = [b"", b"\x00", b"\x00\x00", b"\r\n", b"*1\r\n$4\r\nPING\r\n", b"\xff" * 64, b" "]
    assert [store.spend(k, TTL) for k in keys] == [True] * len(keys)
    assert [store.spend(k, TTL) for k in keys] == [False] * len(keys)


def test_prefixes_isolate_stores(server_url: str) -> None:
    prefix = unique_prefix()
    a, b, same = store_for(server_url, prefix), store_for(server_url), store_for(server_url, prefix)
    assert a.spend(b"k", TTL) is True
    assert b.spend(b"k", TTL) is True, "another prefix is another namespace"
    assert same.spend(b"k", TTL) is False, "the same prefix is the same namespace"
    for s in (a, b, same):
        s.close()


def test_async_keys_are_prefixed_and_each_loop_connects(server_url: str, raw: redis.Redis) -> None:
    # The async contract itself is in test_store_contract.py, for every store. 40 connects
    # at once: a generous timeout, as in the test below (a loaded CI machine took > 0.5 s).
    store = store_for(server_url, timeout="3")

    async def scenario() -> list[Any]:
        first = await store.spend_async(b"a", TTL)
        again = await store.spend_async(b"a", TTL)
        racing = await asyncio.gather(*(store.spend_async(b"r", TTL) for _ in range(40)))
        return [first, again, racing.count(True)]

    assert run_async(store, scenario()) == [True, False, 1]
    assert raw.exists(store.spend_key(b"a")) == 1
    assert raw.exists(store.spend_key(b"r")) == 1
    # A new event loop gets working connections of its own.
    assert run_async(store, store.spend_async(b"b", TTL)) is True
    assert store.spend(b"b", TTL) is False, "the sync and async forms share the keys"
    store.close()


def test_event_loops_running_at_once_in_threads_each_get_their_own_client(
    redis_url: str,
) -> None:
    """Several threads each running an event loop (Django async views under a threaded WSGI
    server do): a loop must never be handed another loop's connections, and a healthy Redis
    must never look unavailable. A generous timeout: 400 connects at once on a loaded CI
    machine can take longer than the default 0.5 s, while a loop handed another loop's
    connections hangs whatever the timeout."""
    store = store_for(redis_url, timeout="3")
    threads, calls = 4, 100
    barrier = threading.Barrier(threads)
    outcomes: list[object] = []
    lock = threading.Lock()

    async def one(key: bytes) -> object:
        try:
            return await store.spend_async(key, TTL)
        except StoreUnavailable as e:
            return str(e)

    async def loop_body(index: int) -> list[object]:
        barrier.wait()
        try:
            return await asyncio.gather(*(one(b"%d-%d" % (index, i)) for i in range(calls)))
        finally:
            await store.aclose()

    def worker(index: int) -> None:
        results = asyncio.run(loop_body(index))
        with lock:
            outcomes.extend(results)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(30)
    store.close()
    assert outcomes == [True] * (threads * calls), sorted(set(map(str, outcomes)))


@pytest.mark.parametrize("form", ["sync", "async"])
def test_an_accept_is_one_round_trip(
    own_server: RedisServer, issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey, form: str
) -> None:
    """Policy.evaluate on a fresh token sends exactly one command, EVALSHA, one spend:
    the epoch check and the SET NX PX run inside Redis, in the script."""
    url = initialized(own_server.url + "?prefix=p:")
    policy = Policy(make_settings(issuer_key, replay_store=url))
    store = policy.store
    assert isinstance(store, RedisReplayStore)

    # The first connects the pool and loads the script; the second is counted.
    warm, counted = (redemption(policy, rsa_2048, issuer_key) for _ in range(2))
    sent: list[str]
    if form == "sync":
        assert policy.evaluate(warm).outcome is Outcome.PASS
        with sent_commands(own_server.port) as sent:
            decision = policy.evaluate(counted)
    else:

        async def in_a_loop() -> tuple[Decision, list[str]]:
            assert (await policy.evaluate_async(warm)).outcome is Outcome.PASS
            with sent_commands(own_server.port) as commands:
                decision = await policy.evaluate_async(counted)
            await store.aclose()
            return decision, commands

        decision, sent = asyncio.run(in_a_loop())
    assert decision.outcome is Outcome.PASS
    assert sent == ["evalsha"]
    store.close()


# ------------------------------------------------------------------ a Redis that comes back empty


def test_a_redis_that_comes_back_empty_holds_spends_one_ttl(
    store: RedisReplayStore, raw: redis.Redis
) -> None:
    """Every key the empty Redis forgot would have expired within its TTL: spends wait that
    long (on Redis's clock), then the forgotten key may be spent again."""
    assert store.spend(b"spent", 0.4) is True
    for key in store.epoch_keys:
        raw.delete(key)
    raw.delete(store.spend_key(b"spent"))  # what an empty Redis looks like to this prefix
    with pytest.raises(StoreUnavailable, match="epoch marker of shard 74") as info:
        store.spend(b"spent", 0.4)
    assert info.value.retry_after == 1
    with pytest.raises(StoreUnavailable):
        store.spend(b"other", 0.4)  # every shard waits from the first one found missing
    assert raw.pttl(store.epoch_key(b"other")) == -1, "markers never expire"
    time.sleep(0.45)
    assert store.spend(b"spent", 0.4) is True
    assert store.spend(b"spent", 0.4) is False


def test_finding_one_marker_missing_stamps_every_shard_at_once(
    own_server: RedisServer, raw_own: redis.Redis
) -> None:
    store = store_for(own_server.url, initialize=False)
    with pytest.raises(StoreUnavailable):
        store.spend(b"k", TTL)
    stamps = [raw_own.get(key) for key in store.epoch_keys]
    assert None not in stamps  # all 256, stamped then (the others a TIME call later)
    millis = [int(stamp or b"0") for stamp in stamps]
    assert max(millis) - min(millis) < 1000
    assert abs(max(millis) / 1000 - float(raw_own.time()[0])) < 5  # Redis's clock, in ms
    # A marker that is there keeps its stamp: initialize, lose one, find it again.
    store.initialize()
    raw_own.delete(store.epoch_key(b"k"))
    with pytest.raises(StoreUnavailable):
        store.spend(b"k", TTL)
    assert raw_own.get(store.epoch_key(b"x")) == b"0"
    store.close()


def test_the_async_form_holds_too(store: RedisReplayStore, raw: redis.Redis) -> None:
    async def scenario() -> tuple[bool, str]:
        first = await store.spend_async(b"a", 0.3)
        for key in store.epoch_keys:
            raw.delete(key)
        try:
            await store.spend_async(b"a", 0.3)
        except StoreUnavailable as e:
            return first, str(e)
        return first, ""

    first, held = run_async(store, scenario())
    assert first is True and "younger than one validity period" in held
    assert all(raw.get(key) is not None for key in store.epoch_keys)


@pytest.mark.parametrize("prefix", ["pat:", "a{b}:", "{", "}{"])
def test_each_spend_key_shares_a_cluster_slot_with_its_marker(prefix: str) -> None:
    from redis.crc import key_slot

    store = open_replay_store(f"redis://127.0.0.1:1/0?prefix={prefix}")
    assert isinstance(store, RedisReplayStore)
    keys = [b"n" + bytes([i]) * 32 for i in range(256)] + [b"", b"}", b"{"]
    for key in keys:
        assert key_slot(store.spend_key(key)) == key_slot(store.epoch_key(key)), key
    if prefix == "pat:":
        assert len({key_slot(k) for k in store.epoch_keys}) == 256  # spread over 256 slots


def test_store_init_stamps_the_markers_as_old(
    server_url: str, raw: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    from pat_middleware.cli.commands import main

    url = f"{server_url}?prefix={unique_prefix()}"
    assert main(["store-init", "--replay-store", url]) == 0
    out = capsys.readouterr().out
    assert "256 epoch markers stamped as old" in out and "asserts that no token" in out
    store = open_replay_store(url)
    assert isinstance(store, RedisReplayStore)
    assert {raw.get(key) for key in store.epoch_keys} == {b"0"}
    assert store.spend(b"k", 86400) is True  # no wait, whatever the TTL
    store.close()
    assert main(["store-init", "--replay-store", "memory://"]) == 2
    assert "only a shared store" in capsys.readouterr().err
    assert main(["store-init", "--replay-store", "redis://127.0.0.1:1/0?timeout=0.2"]) == 1
    assert "Traceback" not in capsys.readouterr().err


# ------------------------------------------------------------------------------ URLs


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("redis://127.0.0.1:6379/0?colour=blue", "option 1 of the redis:// URL is unknown"),
        ("redis://127.0.0.1:6379/0?timeout=soon", "'timeout'"),
        ("redis://127.0.0.1:6379/0?timeout=0", "'timeout'"),
        ("redis://127.0.0.1:6379/0?connect_timeout=nan", "'connect_timeout'"),
        ("redis://127.0.0.1:6379/0?retry_after=-1", "'retry_after'"),
        ("redis://127.0.0.1:6379/0?max_connections=0", "'max_connections'"),
        ("redis://127.0.0.1:6379/0?max_connections=1.5", "'max_connections'"),
        ("redis://127.0.0.1:6379/0?prefix=a&prefix=b", "'prefix'"),
        ("redis://127.0.0.1:6379/0?prefix=" + "x" * 65, "'prefix'"),
        ("redis://127.0.0.1:notaport/0", "port"),
        ("redis://127.0.0.1:6379/zero", "database number"),
        ("redis://127.0.0.1:6379/0?db=1", "db="),
        ("redis://127.0.0.1:6379/0?password_env=PAT_TEST_SURELY_UNSET", "PAT_TEST_SURELY_UNSET"),
        ("redis://:pw@127.0.0.1:6379/0?password_env=HOME", "password_env"),
        ("redis://127.0.0.1:6379/0?ssl_ca_certs=/ca.pem", "rediss://"),
        ("unix://", "socket path"),
        ("redis+sentinel://127.0.0.1", "names the master after the hosts"),
        ("redis+sentinel://127.0.0.1/", "names the master after the hosts"),
        ("redis+cluster://127.0.0.1/1", "database 0 only"),
        ("redis+cluster://127.0.0.1?db=1", "database 0 only"),
        ("redis://a:1,b:2/0", "names one host"),
        ("redis+cluster://a:1,,b:2", "empty host"),
        ("redis://h/0?sentinel_password_env=X", "redis+sentinel://"),
        ("redis+sentinel://h/svc/0/1", "database number"),
        ("redis+cluster://h?ssl_ca_certs=/ca.pem", "rediss"),
        ("redis://127.0.0.1:6379/0#x", "no fragment"),
        ("redis://[::1/0", "brackets"),
        ("redis://[::g]/0", "IPv6 address"),
        ("redis://127.0.0.1:6379/0?prefix=a@b", "percent-encoded"),
        ("redis://127.0.0.1/0?password_env=A-B", "'password_env' must name an environment"),
    ],
)
def test_bad_urls_name_the_setting_and_the_option(url: str, words: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        open_replay_store(url)
    assert info.value.setting == "replay_store"
    assert words in info.value.message


def test_settings_validate_the_store_url_at_start_up(issuer_key: IssuerKey) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_settings(issuer_key, replay_store="redis://127.0.0.1:6379/0?db=0&timout=1")
    assert info.value.setting == "replay_store"
    assert "option 2 of the redis:// URL is unknown (did you mean 'timeout'?)" in str(info.value)


def test_url_forms() -> None:
    o = parse_redis_url(
        "rediss://user:pw@cache.example:6380/3?prefix=app:&timeout=0.25&max_connections=7"
        "&retry_after=2.5&ssl_ca_certs=/etc/ca.pem"
    )
    assert (o.scheme, o.host, o.port, o.db, o.username, o.password) == (
        "rediss", "cache.example", 6380, 3, "user", "pw"
    )  # fmt: skip
    assert (o.prefix, o.timeout, o.connect_timeout, o.max_connections, o.retry_after) == (
        "app:", 0.25, 0.25, 7, 2.5
    )  # fmt: skip
    assert o.ssl_ca_certs == "/etc/ca.pem"
    u = parse_redis_url("unix:///run/redis/redis.sock?db=2&connect_timeout=1")
    assert (u.path, u.db, u.timeout, u.connect_timeout) == ("/run/redis/redis.sock", 2, 0.5, 1.0)
    d = parse_redis_url("redis://")
    assert (d.host, d.port, d.db, d.prefix) == ("localhost", 6379, 0, "pat:")
    v6 = parse_redis_url("redis://[::1]:6390/1")
    assert v6.address == "[::1]:6390/1"


def test_rediss_always_verifies_the_certificate_and_the_host_name() -> None:
    """redis-py 5 (which the extra allows) skips the host-name check unless asked: any
    CA-signed certificate would do, and a man in the middle could answer SET with OK."""
    store = open_replay_store("rediss://cache.example:6380/0?ssl_ca_certs=/etc/ca.pem")
    assert isinstance(store, RedisReplayStore)
    kwargs = store._sync_client()[0].connection_pool.connection_kwargs
    assert (kwargs["ssl_check_hostname"], kwargs["ssl_cert_reqs"]) == (True, "required")
    assert kwargs["ssl_ca_certs"] == "/etc/ca.pem"
    assert "ssl_check_hostname" not in parse_redis_url("redis://h/0").pool_kwargs()


def test_repr_and_errors_hide_the_password(own_redis: RedisServer) -> None:
    secret = "s3cr3t-Passw0rd"
    store = open_replay_store(f"redis://admin:{secret}@127.0.0.1:{own_redis.port}/4?prefix=shown:")
    text = repr(store)
    assert secret not in text
    assert f"127.0.0.1:{own_redis.port}/4" in text and "shown:" in text
    assert secret not in repr(parse_redis_url(f"redis://:{secret}@h/0"))
    with pytest.raises(StoreUnavailable) as info:  # no such user on this server
        store.spend(b"k", TTL)
    assert secret not in str(info.value)


def _pieces(secret: str) -> set[str]:
    """Every substring of ``secret`` of three characters or more."""
    return {secret[i:j] for i in range(len(secret)) for j in range(i + 3, len(secret) + 1)}


def _leaks(secret: str, *texts: str) -> list[str]:
    return sorted(p for p in _pieces(secret) for text in texts if p in text)


@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("redis://:pa?s5w0rd@host/0", "pa?s5w0rd"),  # urlsplit: option "s5w0rd@host/0"
        ("redis://:p#s5w0rd@host", "p#s5w0rd"),  # urlsplit: fragment, port "p"
        ("redis://:1234#hunter2@127.0.0.1/0", "1234#hunter2"),  # urlsplit: localhost:1234
        ("redis://admin:6380/hunter2@127.0.0.1/0", "6380/hunter2"),  # urlsplit: admin:6380
        ("rediss://:x?prefix=y@h", "x?prefix=y"),  # urlsplit: prefix 'y@h'
        ("redis:admin:hunter2@127.0.0.1/0", "hunter2"),  # no '//': all of it is the path
        ("unix://:pa/s5w0rd@/run/redis.sock", "pa/s5w0rd"),
    ],
)
def test_a_password_split_by_an_unencoded_delimiter_is_refused_unquoted(
    url: str, password: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        open_replay_store(url)
    assert info.value.setting == "replay_store"
    assert _leaks(password, str(info.value), repr(info.value)) == []
    assert info.value.__cause__ is None and info.value.__context__ is None


@pytest.mark.parametrize(
    ("url", "password", "address"),
    [
        ("redis://user:a@bc@host", "a@bc", "host:6379/0"),  # the last '@' ends the user info
        ("redis://:hun[t3r]2@127.0.0.1/0", "hun[t3r]2", "127.0.0.1:6379/0"),  # urlsplit raised
        ("redis://:pa%3Fss%23w%40rd%2F@[::1]:6390/1", "pa?ss#w@rd/", "[::1]:6390/1"),
        ("unix://:pw%40x@/run/user%401000/redis.sock", "pw@x", "unix:/run/user@1000/redis.sock/0"),
    ],
)
def test_a_password_that_parses_one_way_only_is_taken_and_never_shown(
    url: str, password: str, address: str
) -> None:
    store = open_replay_store(url)
    assert isinstance(store, RedisReplayStore)
    assert (store.options.password, store.options.address) == (password, address)
    assert _leaks(password, repr(store), repr(store.options)) == []


_PASSWORD_CHARS = "QZJqzj?#@/:[]"


@given(
    user=st.sampled_from(["", "admin"]),
    password=st.text(alphabet=_PASSWORD_CHARS, min_size=3, max_size=12),
)
def test_any_password_is_read_exactly_or_refused_without_a_trace(user: str, password: str) -> None:
    url = f"redis://{user}:{password}@127.0.0.1:6390/2?prefix=p:"
    try:
        options = parse_redis_url(url)
    except ConfigurationError as e:
        assert any(char in password for char in "#/?"), str(e)
        assert _leaks(password, str(e)) == []
    else:
        assert (options.password, options.username or "") == (password, user)
        assert (options.host, options.port, options.db, options.prefix) == (
            "127.0.0.1",
            6390,
            2,
            "p:",
        )
        assert _leaks(password, repr(options)) == []


def test_missing_redis_py_says_how_to_install_it() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from pat_middleware.stores import open_replay_store\n"
        "from pat_middleware.errors import ConfigurationError\n"
        "try:\n"
        "    open_replay_store('redis://127.0.0.1:6379/0')\n"
        "except ConfigurationError as e:\n"
        "    print(e.setting, '|', e.message)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == (
        "replay_store | redis:// replay stores need redis-py: pip install 'pat-middleware[redis]'"
    )


# ------------------------------------------------------------------------------ passwords


@pytest.fixture
def locked_redis() -> Iterator[RedisServer]:
    with RedisServer("--requirepass", "hunter2-but-longer") as server:
        yield server


def test_password_from_password_env(
    locked_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAT_TEST_REDIS_PASSWORD", "hunter2-but-longer")
    store = store_for(locked_redis.url, password_env="PAT_TEST_REDIS_PASSWORD")
    assert store.spend(b"k", TTL) is True
    assert store.spend(b"k", TTL) is False
    assert "hunter2" not in repr(store)
    store.close()


def test_inline_password_and_wrong_password(locked_redis: RedisServer) -> None:
    url = f"redis://:hunter2-but-longer@127.0.0.1:{locked_redis.port}/0"
    good = store_for(url)
    assert good.spend(b"k", TTL) is True
    good.close()
    for bad_url in (locked_redis.url, f"redis://:wrong@127.0.0.1:{locked_redis.port}/0"):
        bad = store_for(bad_url, initialize=False)
        with pytest.raises(StoreUnavailable) as info:
            bad.spend(b"k2", TTL)
        assert "hunter2" not in str(info.value)


# ------------------------------------------------------------------------------ outages


def test_outage_fails_fast_then_recovers_by_itself(own_server: RedisServer) -> None:
    store = store_for(own_server.url, timeout="0.3", retry_after="0.5")
    assert store.spend(b"before", TTL)

    own_server.pause()  # connections hang: the socket timeout bounds the wait
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as info:
        store.spend(b"k", TTL)
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 1.0, elapsed
    assert info.value.retry_after == 1

    # The breaker: no network, no wait, for retry_after seconds.
    started = time.monotonic()
    for _ in range(20):
        with pytest.raises(StoreUnavailable, match="backing off"):
            store.spend(b"k", TTL)
    assert time.monotonic() - started < 0.05

    own_server.stop()  # down: connection refused
    time.sleep(0.55)
    with pytest.raises(StoreUnavailable):
        store.spend(b"k", TTL)

    own_server.start()  # same port, empty: the store finds it again after the back-off...
    time.sleep(0.55)
    # ...and finds it empty: a shard's spends wait one TTL (here 0.3 s) from then on.
    with pytest.raises(StoreUnavailable, match="epoch marker"):
        store.spend(b"k", 0.3)
    time.sleep(0.35)
    assert store.spend(b"k", 0.3) is True
    assert store.spend(b"k", 0.3) is False
    store.close()


def test_async_outage_is_bounded_by_the_timeout(own_server: RedisServer) -> None:
    store = store_for(own_server.url, timeout="0.3", retry_after="0.5")

    async def scenario() -> tuple[float, bool, bool]:
        assert await store.spend_async(b"before", TTL)
        own_server.pause()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.spend_async(b"k", TTL)
        elapsed = time.monotonic() - started
        own_server.resume()
        await asyncio.sleep(0.55)
        return elapsed, await store.spend_async(b"k", TTL), await store.spend_async(b"n", TTL)

    elapsed, timed_out_key, new_key = run_async(store, scenario())
    assert 0.25 <= elapsed < 1.0, elapsed
    # The SET that timed out reached the server and ran once it resumed: that key is spent
    # (its token is refused as replayed: closed, never accepted twice). New keys work again.
    assert timed_out_key is False
    assert new_key is True


def _outage_policy(url: str, key: IssuerKey, **overrides: Any) -> Policy:
    store = initialized(f"{url}?timeout=0.3&retry_after=0.5")
    return Policy(make_settings(key, replay_store=store, **overrides))


@pytest.mark.parametrize("status", [503, 429])
def test_policy_never_accepts_a_token_the_store_could_not_record(
    own_redis: RedisServer,
    issuer_key: IssuerKey,
    rsa_2048: rsa.RSAPrivateKey,
    caplog: pytest.LogCaptureFixture,
    status: int,
) -> None:
    overrides = {} if status == 503 else {"store_unavailable_status": status}
    policy = _outage_policy(own_redis.url, issuer_key, **overrides)
    browser = Browser(policy)
    token = answer_policy(browser.challenge(), rsa_2048, issuer_key)
    own_redis.stop()
    with caplog.at_level(logging.WARNING, logger="pat_middleware"):
        decision = browser.get(token=token)
    assert decision.outcome is Outcome.UNAVAILABLE
    assert decision.status == status
    assert decision.token is None and not decision.allowed
    assert header(decision.headers, "Retry-After") == "1"
    assert header(decision.headers, "Set-Cookie") is None, "no verified-session cookie"
    failures = [r for r in caplog.records if getattr(r, "pat_outcome", None) == "unavailable"]
    assert len(failures) == 1
    assert "\n" not in failures[0].getMessage() and failures[0].exc_info is None
    # Fails fast while backing off, whatever the status.
    assert browser.get(token=token).outcome is Outcome.UNAVAILABLE

    own_redis.start()  # without persistence: empty
    time.sleep(0.55)
    held = browser.get(token=token)  # it cannot tell this token from one spent before
    assert (held.outcome, held.status) == (Outcome.UNAVAILABLE, status)
    assert int(header(held.headers, "Retry-After") or 0) > 60  # one validity period
    initialized(own_redis.url)  # the operator knows this Redis held nothing worth keeping
    accepted = browser.get(token=token)
    assert accepted.outcome is Outcome.PASS
    replayed = browser.get(token=token)
    assert replayed.outcome is Outcome.REJECT
    assert replayed.reason is not None and replayed.reason.value == "replayed"


@pytest.mark.parametrize("value", [200, 401, 428, 499, 600, "503", True])
def test_store_unavailable_status_is_validated(issuer_key: IssuerKey, value: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_settings(issuer_key, store_unavailable_status=value)
    assert info.value.setting == "store_unavailable_status"


def test_store_unavailable_status_default(issuer_key: IssuerKey) -> None:
    assert make_settings(issuer_key).store_unavailable_status == 503
    assert make_settings(issuer_key, store_unavailable_status=599).store_unavailable_status == 599


# ------------------------------------------------------------------------------ over HTTP


def _redeem_over_http(
    base_url: str, key: IssuerKey, private_key: rsa.RSAPrivateKey, path: str
) -> tuple[int, int, int]:
    """(status with a fresh token, status of its replay, status with cookies only)."""
    with httpx.Client(base_url=base_url, timeout=10) as http:
        browser = HttpBrowser(httpx_send(http))
        challenge = browser.get(path)
        assert challenge.status == 401
        authorization = answer(challenge, private_key, key)
        first = browser.get(path, authorization=authorization)
        replay = browser.get(path, authorization=authorization)
        session = browser.get(path)
    return first.status, replay.status, session.status


def _http_settings(key: IssuerKey, url: str, **extra: Any) -> Settings:
    data = pat_settings(
        key, secret="redis-http-test-secret-0123456789abcdef", replay_store=url, **extra
    )
    data["protect"] = ["/protected"]
    return Settings.from_mapping(data)


def test_asgi_middleware_with_redis_under_uvicorn(
    own_redis: RedisServer, issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey
) -> None:
    url = initialized(f"{own_redis.url}?prefix={unique_prefix()}&timeout=0.3&retry_after=0.5")
    policy = Policy(_http_settings(issuer_key, url))
    assert isinstance(policy.store, RedisReplayStore)
    with serve_asgi(create_origin_app(policy)) as base:
        assert _redeem_over_http(base, issuer_key, rsa_2048, "/protected") == (200, 401, 200)
        own_redis.stop()
        with httpx.Client(base_url=base, timeout=10) as http:
            browser = HttpBrowser(httpx_send(http))
            authorization = answer(browser.get("/protected"), rsa_2048, issuer_key)
            down = browser.get("/protected", authorization=authorization)
            assert down.status == 503
            assert down.header("retry-after") == "1"
            assert b"Traceback" not in down.body
            own_redis.start()  # empty: its epoch markers are gone too
            time.sleep(0.55)
            held = browser.get("/protected", authorization=authorization)
            assert held.status == 503 and int(held.header("retry-after") or 0) > 60
            initialized(url)  # nothing was spent before: the operator says so
            assert browser.get("/protected", authorization=authorization).status == 200
            assert browser.get("/protected", authorization=authorization).status == 401


def test_wsgi_middleware_with_redis(
    redis_url: str, issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey
) -> None:
    def app(environ: WSGIEnviron, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    url = initialized(f"{redis_url}?prefix={unique_prefix()}")
    policy = Policy(_http_settings(issuer_key, url))
    with serve_wsgi(PrivateTokenWSGIMiddleware(app, policy=policy)) as base:
        assert _redeem_over_http(base, issuer_key, rsa_2048, "/protected") == (200, 401, 200)
    assert isinstance(policy.store, RedisReplayStore)
    policy.store.close()


def test_two_policies_share_one_redis(
    redis_url: str, issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey
) -> None:
    """Two processes' worth of policies (same secret, same store): a token is spent once."""
    url = initialized(f"{redis_url}?prefix={unique_prefix()}")
    for policy in spent_once_by_two(url, rsa_2048, issuer_key):
        assert isinstance(policy.store, RedisReplayStore)
        policy.store.close()
