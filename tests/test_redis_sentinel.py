"""The Redis store through Redis Sentinel (redis+sentinel://), against a real master, its
replica and a Sentinel started on loopback: one round trip per accepted token, a failover,
the sentinels down, passwords. The round trip, sync and async and the failover run on
Valkey's too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import closing

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pat_middleware import IssuerKey
from pat_middleware.errors import ConfigurationError
from pat_middleware.policy import Outcome, Policy
from pat_middleware.stores import StoreUnavailable, open_replay_store
from pat_middleware.stores.redis import RedisReplayStore

from ._origin import make_settings, redemption
from ._redis import (
    SERVER_KINDS,
    initialized,
    of_each_kind,
    sent_commands,
    server_binary,
    store_for,
    unique_prefix,
)
from ._store_servers import SentinelServers

TTL = 10.0


sentinel = of_each_kind("sentinel", "{kind}_sentinel")


@pytest.fixture
def store(sentinel: SentinelServers) -> Iterator[RedisReplayStore]:
    with closing(store_for(sentinel.url)) as s:
        yield s


def test_an_accept_is_one_round_trip_to_the_master(
    sentinel: SentinelServers, issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey
) -> None:
    url = f"{sentinel.url}?prefix={unique_prefix()}"
    initialized(url)
    policy = Policy(make_settings(issuer_key, replay_store=url))

    warm, counted = (redemption(policy, rsa_2048, issuer_key) for _ in range(2))
    assert policy.evaluate(warm).outcome is Outcome.PASS  # asks the Sentinel, connects
    with sent_commands(sentinel.master_port()) as sent:
        assert policy.evaluate(counted).outcome is Outcome.PASS
    assert sent == ["evalsha"]
    policy.store.close()


def test_sync_and_async_share_the_master(store: RedisReplayStore) -> None:
    async def scenario() -> list[bool]:
        try:
            return [await store.spend_async(b"a", TTL), await store.spend_async(b"b", TTL)]
        finally:
            await store.aclose()

    assert store.spend(b"a", TTL) is True
    assert asyncio.run(scenario()) == [False, True]


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_a_failover_keeps_what_was_spent_and_the_store_follows_it(
    kind: str, issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey
) -> None:
    with SentinelServers(binary=server_binary(kind)) as servers:
        store = store_for(servers.url, timeout="0.3", retry_after="0.2")
        before = [b"before-%d" % i for i in range(20)]
        assert [store.spend(k, 60) for k in before] == [True] * 20
        old = servers.master_port()
        started = time.monotonic()
        new = servers.failover()
        assert new != old
        outcomes: list[object] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                outcomes.append(store.spend(b"after", 60))
                break
            except StoreUnavailable as e:
                outcomes.append(type(e).__name__)
                time.sleep(0.1)
        assert outcomes[-1] is True, outcomes  # the new master took the spend
        assert time.monotonic() - started < 10
        # Replicated before the failover: still spent on the promoted replica.
        assert [store.spend(k, 60) for k in before] == [False] * 20
        assert store.spend(b"after", 60) is False
        store.close()


def test_the_sentinels_down_fail_closed_fast() -> None:
    with SentinelServers() as servers:
        store = store_for(servers.url, timeout="0.3", retry_after="0.5")
        assert store.spend(b"k", TTL) is True
        store.close()  # the next spend asks the sentinels again
        assert servers.proc is not None
        servers.proc.terminate()
        servers.proc.wait(5)
        servers.master.stop()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.spend(b"k2", TTL)
        assert time.monotonic() - started < 2.0

        async def scenario() -> None:
            await asyncio.sleep(0.55)
            try:
                with pytest.raises(StoreUnavailable):
                    await store.spend_async(b"k3", TTL)
            finally:
                await store.aclose()

        asyncio.run(scenario())


def test_url_forms_and_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAT_TEST_SENTINEL_PW", "sentinel-secret")
    store = open_replay_store(
        "redis+sentinel://:master-secret@s1.example,s2.example:5000/mymaster/3"
        "?sentinel_password_env=PAT_TEST_SENTINEL_PW&prefix=x:"
    )
    assert isinstance(store, RedisReplayStore)
    o = store.options
    assert (o.nodes, o.service, o.db) == (
        (("s1.example", 26379), ("s2.example", 5000)), "mymaster", 3
    )  # fmt: skip
    assert (o.password, o.sentinel_password) == ("master-secret", "sentinel-secret")
    assert repr(store) == (
        "RedisReplayStore(redis+sentinel://s1.example:26379,s2.example:5000/mymaster/3, "
        "prefix='x:')"
    )
    assert "secret" not in repr(o)
    for bad in (
        "redis+sentinel://h",
        "redis+sentinel://h/",
        "redis+sentinel://h/a b",
        "redis+sentinel://h/svc/x",
        "redis+sentinel://h/svc?sentinel_password_env=PAT_TEST_SURELY_UNSET",
    ):
        with pytest.raises(ConfigurationError) as info:
            open_replay_store(bad)
        assert info.value.setting == "replay_store"


def test_passwords_appear_in_no_repr_or_error(redis_sentinel: SentinelServers) -> None:
    secret = "S3ntinelMaster-pw"
    where = redis_sentinel.url.removeprefix("redis+sentinel://")
    store = open_replay_store(f"redis+sentinel://admin:{secret}@{where}?prefix=p:")
    assert isinstance(store, RedisReplayStore)
    assert secret not in repr(store)
    with pytest.raises(StoreUnavailable) as info:  # no such user on the master
        store.spend(b"k", TTL)
    assert secret not in str(info.value)
    store.close()
