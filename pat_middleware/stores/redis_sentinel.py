"""``redis+sentinel://``: the Redis store on a master that Redis Sentinel watches.

redis-py's ``Sentinel`` (sync and asyncio) asks the sentinels where the master named in the
URL is before it connects, and again after a connection is lost or the server it reached
answers as a replica (``READONLY``). Spends go to the master only, as the one script call
per accepted token they are on a single server.

During a failover spends fail closed (:class:`~pat_middleware.stores.StoreUnavailable`, the
breaker's back-off), and the first spend after the back-off that finds the sentinels
agreeing on a new master connects to it. The new master was a replica: it holds the epoch
markers, and every spend replicated to it before the old master went away; spends the old
master acknowledged in its last moments (up to the replication lag) may be missing, so
their tokens can be redeemed once more within their validity period (see docs/stores.md on
persistence and replication). A replica promoted empty has no markers, and is noticed.

Bounded: socket and connect timeouts for the sentinels and the master, no retries, and at
most ``max_connections`` connections to the master per client (past that a spend fails
closed at once instead of waiting).
"""

from __future__ import annotations

from typing import Any

from .redis import SingleServer
from .redis_url import RedisOptions


def _sentinel_kwargs(r: Any, options: RedisOptions) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_timeout": options.timeout,
        "socket_connect_timeout": options.connect_timeout,
        # redis-py's default retries with back-off (seconds) on every sentinel asked.
        "retry": r.retry.Retry(r.backoff.NoBackoff(), 0),
    }
    if options.sentinel_password is not None:
        kwargs["password"] = options.sentinel_password
    return kwargs


class SentinelTopology(SingleServer):
    """How the store reaches a master through its sentinels (the URL's hosts)."""

    def _master_kwargs(self, r: Any, options: RedisOptions) -> dict[str, Any]:
        kwargs = options.connection_kwargs()
        kwargs["db"] = options.db
        kwargs["max_connections"] = options.max_connections
        kwargs["retry"] = r.retry.Retry(r.backoff.NoBackoff(), 0)
        return kwargs

    def sync_client(self, r: Any, options: RedisOptions) -> Any:
        return self._client(r.sentinel.Sentinel, r, options)

    def async_client(self, r: Any, options: RedisOptions) -> Any:
        return self._client(r.asyncio.sentinel.Sentinel, r, options)

    def _client(self, sentinel_class: Any, r: Any, options: RedisOptions) -> Any:
        if options.service is None:
            raise ValueError("a redis+sentinel:// store needs the master's name")
        sentinel = sentinel_class(list(options.nodes), sentinel_kwargs=_sentinel_kwargs(r, options))
        return sentinel.master_for(options.service, **self._master_kwargs(r, options))

    def close(self, client: Any) -> None:
        super().close(client)
        for sentinel in client.connection_pool.sentinel_manager.sentinels:
            sentinel.connection_pool.disconnect()

    async def aclose(self, client: Any) -> None:
        await super().aclose(client)
        for sentinel in client.connection_pool.sentinel_manager.sentinels:
            await sentinel.connection_pool.disconnect()


__all__ = ["SentinelTopology"]
