"""``redis+cluster://`` (and ``rediss+cluster://``): the Redis store on a Redis Cluster.

redis-py's ``RedisCluster`` (sync and asyncio) routes each spend to the node holding its
slot. The spend script touches two keys, the spend key and its shard's epoch marker; both
carry the shard's hash tag (``{xx}``), so they share a slot and the script runs on one node,
atomically, as on a single server: still one round trip per accepted token. The 256 shards
spread over 256 slots, so the spends spread over the nodes.

Bounded as the single-server form is: socket and connect timeouts per node, at most
``max_connections`` connections per node (past that a spend fails closed at once instead
of waiting), and no retries, so a node that is down costs one timeout, then the breaker's
back-off. redis-py refreshes the cluster's layout after a connection error or a ``MOVED``
reply, so a failover is found by the first spend after the back-off.
"""

from __future__ import annotations

from typing import Any

from .redis import SingleServer
from .redis_url import RedisOptions


class ClusterTopology(SingleServer):
    """How the store reaches a Redis Cluster: the URL's hosts are the seed nodes."""

    def errors(self, r: Any) -> tuple[type[BaseException], ...]:
        # Raised when no seed node answers, or a slot has no node: not a RedisError.
        return (*super().errors(r), r.exceptions.RedisClusterException)

    def sync_client(self, r: Any, options: RedisOptions) -> Any:
        return self._client(r.cluster, r, options)

    def async_client(self, r: Any, options: RedisOptions) -> Any:
        return self._client(r.asyncio.cluster, r, options)

    def _client(self, module: Any, r: Any, options: RedisOptions) -> Any:
        return module.RedisCluster(
            startup_nodes=[module.ClusterNode(host, port) for host, port in options.nodes],
            retry=r.retry.Retry(r.backoff.NoBackoff(), 0),
            max_connections=options.max_connections,
            ssl=options.tls,
            **options.connection_kwargs(),
        )

    def close(self, client: Any) -> None:
        client.close()

    async def aclose(self, client: Any) -> None:
        await client.aclose()


__all__ = ["ClusterTopology"]
