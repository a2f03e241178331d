"""The Redis store on a real three-node Redis Cluster started on loopback (redis+cluster://):
one round trip per accepted token, hash-tagged keys, two policies, outages, passwords. The
keys, the round trip and a cluster that lost its data run on a Valkey Cluster too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing

import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import rsa

from pat_middleware import IssuerKey
from pat_middleware.core.headers import build_authorization
from pat_middleware.errors import ConfigurationError
from pat_middleware.policy import Decision, Outcome, Policy, RequestInfo
from pat_middleware.stores import StoreUnavailable, open_replay_store
from pat_middleware.stores.redis import RedisReplayStore

from ._origin import Browser, answer, header, make_settings, redemption, spent_once_by_two
from ._redis import initialized, of_each_kind, sent_commands, store_for, unique_prefix
from ._store_servers import RedisClusterServers

TTL = 10.0


cluster = of_each_kind("cluster", "{kind}_cluster")


@pytest.fixture
def store(cluster: RedisClusterServers) -> Iterator[RedisReplayStore]:
    with closing(store_for(cluster.url)) as s:
        yield s


def test_spends_spread_over_the_nodes_each_with_its_marker(
    store: RedisReplayStore, cluster: RedisClusterServers
) -> None:
    keys = [b"n" + bytes([i]) * 32 for i in range(256)]
    assert [store.spend(k, TTL) for k in keys] == [True] * 256
    assert [store.spend(k, TTL) for k in keys] == [False] * 256
    per_node = []
    for node in cluster.nodes:
        client = redis.Redis(port=node.port)
        held = {k for k in client.keys(store.options.prefix + "*")}
        client.close()
        per_node.append(held)
        for key in keys:  # a spend key and its marker are on one node, or neither is
            assert (store.spend_key(key) in held) == (store.epoch_key(key) in held)
    assert all(len(held) > 50 for held in per_node), [len(h) for h in per_node]


@pytest.mark.parametrize("form", ["sync", "async"])
def test_an_accept_is_one_round_trip_on_the_cluster(
    cluster: RedisClusterServers,
    issuer_key: IssuerKey,
    rsa_2048: rsa.RSAPrivateKey,
    form: str,
) -> None:
    """One EVALSHA, to the node holding the key's slot, and nothing to the others."""
    url = f"{cluster.url}?prefix={unique_prefix()}"
    initialized(url)
    policy = Policy(make_settings(issuer_key, replay_store=url))
    store = policy.store

    warm, counted = (redemption(policy, rsa_2048, issuer_key) for _ in range(2))
    sent: list[list[str]] = []
    if form == "sync":
        assert policy.evaluate(warm).outcome is Outcome.PASS  # connects, loads the script
        with ExitStack() as stack:
            sent = [stack.enter_context(sent_commands(n.port)) for n in cluster.nodes]
            decision = policy.evaluate(counted)
    else:

        async def in_a_loop() -> Decision:
            assert (await policy.evaluate_async(warm)).outcome is Outcome.PASS
            with ExitStack() as stack:
                sent.extend(stack.enter_context(sent_commands(n.port)) for n in cluster.nodes)
                decision = await policy.evaluate_async(counted)
            await store.aclose()
            return decision

        decision = asyncio.run(in_a_loop())
    assert decision.outcome is Outcome.PASS
    assert [name for each in sent for name in each] == ["evalsha"]
    store.close()


def test_two_policies_accept_a_token_once(
    redis_cluster: RedisClusterServers, issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey
) -> None:
    url = initialized(f"{redis_cluster.url}?prefix={unique_prefix()}")
    for policy in spent_once_by_two(url, rsa_2048, issuer_key):
        policy.store.close()


def test_a_cluster_that_lost_its_data_holds_spends_one_ttl(store: RedisReplayStore) -> None:
    assert store.spend(b"spent", 0.4) is True
    host, port = store.options.nodes[0]
    client = redis.cluster.RedisCluster(host=host, port=port)
    client.delete(*store.epoch_keys[:1])
    client.delete(store.spend_key(b"spent"))  # on the marker's node: what a wiped node is
    for marker in store.epoch_keys:
        client.delete(marker)
    client.close()
    with pytest.raises(StoreUnavailable, match="epoch marker"):
        store.spend(b"spent", 0.4)
    time.sleep(0.45)
    assert store.spend(b"spent", 0.4) is True


def test_a_cluster_that_is_down_fails_closed_fast(
    issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey
) -> None:
    with RedisClusterServers() as cluster:
        url = f"{cluster.url}?prefix=p:&timeout=0.3&retry_after=0.5"
        initialized(url)
        policy = Policy(make_settings(issuer_key, replay_store=url))
        browser = Browser(policy)
        assert browser.get(token=answer(browser.challenge(), rsa_2048, issuer_key)).allowed
        browser.cookies.clear()
        token = answer(browser.challenge(), rsa_2048, issuer_key)
        for node in cluster.nodes:
            node.pause()  # connections hang: the timeouts bound the wait
        started = time.monotonic()
        decision = browser.get(token=token)
        elapsed = time.monotonic() - started
        assert (decision.outcome, decision.status) == (Outcome.UNAVAILABLE, 503)
        assert header(decision.headers, "Retry-After") == "1"
        assert elapsed < 3.0, elapsed
        started = time.monotonic()
        assert browser.get(token=token).outcome is Outcome.UNAVAILABLE  # backing off
        assert time.monotonic() - started < 0.1
        for node in cluster.nodes:
            node.resume()
        cluster.stop()  # down: connection refused
        time.sleep(0.55)
        assert browser.get(token=token).outcome is Outcome.UNAVAILABLE

        async def in_a_loop() -> Decision:
            await asyncio.sleep(0.55)
            request = RequestInfo(
                "GET", "/protected", authorization=build_authorization(token),
                cookie=browser.cookie_header(),
            )  # fmt: skip
            return await policy.evaluate_async(request)

        assert asyncio.run(in_a_loop()).outcome is Outcome.UNAVAILABLE
        policy.store.close()


def test_a_failover_keeps_what_was_spent_and_the_store_follows_it() -> None:
    """A replica promoted (CLUSTER FAILOVER): redis-py follows the MOVED replies, and every
    spend made before is still spent on the new primary. (~8 s: a node joining a cluster
    waits for its gossip.)"""
    with RedisClusterServers() as cluster:
        replica = cluster.add_replica(of=0)
        try:
            store = store_for(cluster.url, timeout="0.5", retry_after="0.2")
            keys = [b"n" + bytes([i]) * 32 for i in range(256)]  # every shard: every node
            assert [store.spend(k, 60) for k in keys] == [True] * 256
            promoted = redis.Redis(port=replica.port)
            promoted.execute_command("CLUSTER", "FAILOVER")  # type: ignore[no-untyped-call]
            deadline = time.monotonic() + 10
            while promoted.info("replication")["role"] != "master":
                assert time.monotonic() < deadline, "the replica was not promoted"
                time.sleep(0.05)
            promoted.close()
            again: list[object] = []
            for key in keys:
                for _ in range(50):  # a spend may fail closed while the layout moves
                    try:
                        again.append(store.spend(key, 60))
                        break
                    except StoreUnavailable:
                        time.sleep(0.1)
            assert again == [False] * 256
            assert store.spend(b"fresh", 60) is True
            store.close()
        finally:
            replica.__exit__()


def test_url_forms_and_refusals() -> None:
    store = open_replay_store("redis+cluster://a.example:7000,[::1],b.example?prefix=x:")
    assert isinstance(store, RedisReplayStore)
    assert store.options.nodes == (("a.example", 7000), ("::1", 6379), ("b.example", 6379))
    assert repr(store) == (
        "RedisReplayStore(redis+cluster://a.example:7000,[::1]:6379,b.example:6379, prefix='x:')"
    )
    tls = open_replay_store("rediss+cluster://a.example:7000?ssl_ca_certs=/etc/ca.pem")
    assert isinstance(tls, RedisReplayStore) and tls.options.tls
    kwargs = tls.options.connection_kwargs()
    assert (kwargs["ssl_check_hostname"], kwargs["ssl_cert_reqs"]) == (True, "required")
    for bad in ("redis+cluster://h/1", "redis+cluster://h?db=2", "redis+cluster://h,"):
        with pytest.raises(ConfigurationError) as info:
            open_replay_store(bad)
        assert info.value.setting == "replay_store"


def test_passwords_appear_in_no_repr_or_error(redis_cluster: RedisClusterServers) -> None:
    secret = "Cl0sterS3cret-pw"
    hosts = redis_cluster.url.removeprefix("redis+cluster://")
    store = open_replay_store(f"redis+cluster://admin:{secret}@{hosts}?prefix=p:")
    assert isinstance(store, RedisReplayStore)
    assert secret not in repr(store) and secret not in repr(store.options)
    with pytest.raises(StoreUnavailable) as info:  # no such user on these nodes
        store.spend(b"k", TTL)
    assert secret not in str(info.value)
    with pytest.raises(ConfigurationError) as bad:
        open_replay_store(f"redis+cluster://:{secret}?x@{hosts}")
    assert "3cret" not in str(bad.value)
    store.close()
