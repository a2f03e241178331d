"""Redis replay store: one atomic script call (``EVALSHA``) per accepted token.

Shared by every worker and host that points at the same Redis, so a token is accepted once
across all of them. Imports redis-py, so it is imported only when a Redis store URL is
opened: ``redis://``, ``rediss://``, ``unix://`` here, ``redis+cluster://`` (see
:mod:`.redis_cluster`) and ``redis+sentinel://`` (see :mod:`.redis_sentinel`), which reach
their servers another way and spend the same way.

A Redis that comes back empty (a restart without persistence, a failover to a replica that
never had the data) must not accept again the tokens spent before. Beside the spent keys
Redis holds 256 epoch markers without a TTL, one per shard of the keys; the script checks
the spend key's marker in the same call. A missing marker is recreated, stamped with Redis's
``TIME``, and spends in its shard are refused (:class:`StoreUnavailable`) until one TTL (the
mode's validity period) has passed since: by then every key the empty Redis forgot would
have expired anyway. :meth:`RedisReplayStore.initialize` (``pat-middleware store-init``)
stamps the markers as old, for a new Redis.

Failure is closed: any Redis error or timeout raises :class:`StoreUnavailable`. After a
failure the store answers :class:`StoreUnavailable` at once, without touching the network,
for ``retry_after`` seconds; then one request probes Redis again, and the store recovers by
itself when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import ConfigurationError
from .base import StoreUnavailable
from .breaker import Breaker
from .redis_url import OPTIONS, RedisOptions, parse_redis_url

_INSTALL_HINT = "redis:// replay stores need redis-py: pip install 'pat-middleware[redis]'"
#: Epoch markers: one per shard, the shard being a spend key's last byte (random: the
#: nonce's or challenge digest's). Each spend key and its marker carry the same hash tag
#: (``{xx}``), so on a Redis Cluster they share a slot and one script call sees both.
SHARDS = 256
_TAGS = tuple(b"{%02x}" % shard for shard in range(SHARDS))
#: KEYS[1]: the shard's epoch marker (no TTL); KEYS[2]: the spend key; ARGV[1]: the TTL (ms).
#: 1: the key was fresh and is now spent; 0: it was spent already; negative: minus the ms
#: still to wait, while the marker is younger than one TTL (it was missing, so Redis lost
#: its data or was never initialised: it is stamped now). A marker stamped 0 is old.
_SPEND_SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local ttl = tonumber(ARGV[1])
local stamp = tonumber(redis.call('GET', KEYS[1]) or '')
if stamp ~= 0 then
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  if stamp == nil then
    redis.call('SET', KEYS[1], string.format('%d', now))
    return -ttl
  end
  if now < stamp + ttl then
    return now - stamp - ttl
  end
end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ttl) then
  return 1
end
return 0
"""
#: What initialize stamps: older than any TTL.
_OLD_EPOCH = b"0"


def import_redis(setting: str = "replay_store") -> Any:
    """redis-py (with its asyncio client), or a ConfigurationError saying how to install it."""
    try:
        import redis
        import redis.asyncio
    except ImportError as e:
        raise ConfigurationError(setting, _INSTALL_HINT) from e
    return redis


class SingleServer:
    """How the store reaches one Redis server: a bounded blocking pool per client, no
    retries (a timeout is reported, not repeated)."""

    def errors(self, r: Any) -> tuple[type[BaseException], ...]:
        return (r.RedisError, OSError)

    def _connection_class(self, module: Any, options: RedisOptions) -> Any:
        if options.path is not None:
            return module.UnixDomainSocketConnection
        return module.SSLConnection if options.tls else module.Connection

    def sync_client(self, r: Any, options: RedisOptions) -> Any:
        pool = r.BlockingConnectionPool(
            connection_class=self._connection_class(r, options),
            retry=r.retry.Retry(r.backoff.NoBackoff(), 0),
            **options.pool_kwargs(),
        )
        return r.Redis(connection_pool=pool)

    def async_client(self, r: Any, options: RedisOptions) -> Any:
        ra = r.asyncio
        pool = ra.BlockingConnectionPool(
            connection_class=self._connection_class(ra, options),
            retry=ra.retry.Retry(r.backoff.NoBackoff(), 0),
            **options.pool_kwargs(),
        )
        return ra.Redis(connection_pool=pool)

    def close(self, client: Any) -> None:
        client.connection_pool.disconnect()

    async def aclose(self, client: Any) -> None:
        await client.connection_pool.disconnect()


class RedisReplayStore:
    """Replay store in Redis, with sync (``spend``) and asyncio (``spend_async``) forms.

    Each form (and each running event loop) has its own client with bounded pools and
    socket and connect timeouts, and no retries. A spend of ``key`` is held under
    ``prefix + "{xx}:" + key`` (binary-safe; ``xx`` is the key's last byte in hex), its
    shard's epoch marker under ``prefix + "{xx}epoch"``.

    ``spend`` is one round trip, atomic on the server: ``EVALSHA`` of a script that checks
    the shard's epoch marker and runs ``SET key 1 NX PX ttl_ms`` (the script is loaded by
    the first call that finds Redis without it). ``topology`` says how the servers are
    reached (:class:`SingleServer`; a cluster's or Sentinel's in their modules).
    """

    def __init__(
        self,
        options: RedisOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
        topology: SingleServer | None = None,
    ) -> None:
        self._redis = import_redis()
        self.options = options
        self._topology = topology if topology is not None else SingleServer()
        self._errors: tuple[type[BaseException], ...] = self._topology.errors(self._redis)
        self._prefix = options.prefix.encode("utf-8")
        self._spend_prefixes = tuple(self._prefix + tag + b":" for tag in _TAGS)
        #: The shards' epoch markers, in shard order.
        self.epoch_keys = tuple(self._prefix + tag + b"epoch" for tag in _TAGS)
        self._where = options.address
        self._breaker = Breaker(
            options.retry_after,
            clock,
            "redis replay store",
            secrets=(options.password, options.username, options.sentinel_password),
        )
        # (client, its script), made on first use: building a cluster client reaches it.
        self._sync: tuple[Any, Any] | None = None
        self._client_lock = threading.Lock()
        # An asyncio client works only in the loop that made it: one per running loop (a
        # threaded WSGI server running async views has one loop per thread at once). Clients
        # of closed loops are dropped when a new loop first asks, so this holds at most one
        # client per loop alive at that moment.
        self._async: dict[asyncio.AbstractEventLoop, tuple[Any, Any]] = {}

    @classmethod
    def from_url(cls, url: str, *, setting: str = "replay_store") -> RedisReplayStore:
        """Build the store from a Redis store URL (see :mod:`.redis_url`); no I/O."""
        import_redis(setting)  # a missing redis-py names the caller's setting
        options = parse_redis_url(url, setting=setting)
        if options.topology == "cluster":
            from .redis_cluster import ClusterTopology

            return cls(options, topology=ClusterTopology())
        if options.topology == "sentinel":
            from .redis_sentinel import SentinelTopology

            return cls(options, topology=SentinelTopology())
        return cls(options)

    def __repr__(self) -> str:
        o = self.options
        return f"RedisReplayStore({o.scheme}://{o.address}, prefix={o.prefix!r})"

    # ------------------------------------------------------------------------ clients

    def _sync_client(self) -> tuple[Any, Any]:
        """(client, spend script), made by the first caller."""
        made = self._sync
        if made is None:
            with self._client_lock:
                made = self._sync
                if made is None:
                    client = self._topology.sync_client(self._redis, self.options)
                    made = self._sync = (client, client.register_script(_SPEND_SCRIPT))
        return made

    def _async_client(self) -> tuple[Any, Any]:
        loop = asyncio.get_running_loop()
        made = self._async.get(loop)
        if made is not None:
            return made
        with self._client_lock:
            made = self._async.get(loop)
            if made is None:
                for closed in [other for other in self._async if other.is_closed()]:
                    del self._async[closed]
                client = self._topology.async_client(self._redis, self.options)
                made = self._async[loop] = (client, client.register_script(_SPEND_SCRIPT))
        return made

    def close(self) -> None:
        """Close the sync client's connections (the store stays usable: it reconnects)."""
        with self._client_lock:
            made, self._sync = self._sync, None
        if made is not None:
            self._topology.close(made[0])

    async def aclose(self) -> None:
        """Close the running loop's asyncio connections (other loops keep theirs)."""
        with self._client_lock:
            made = self._async.pop(asyncio.get_running_loop(), None)
        if made is not None:
            await self._topology.aclose(made[0])

    # -------------------------------------------------------------------------- sync

    def spend_key(self, key: bytes) -> bytes:
        """The Redis key a spend of ``key`` is held under."""
        return self._spend_prefixes[key[-1] if key else 0] + key

    def epoch_key(self, key: bytes) -> bytes:
        """The epoch marker a spend of ``key`` is checked against."""
        return self.epoch_keys[key[-1] if key else 0]

    def spend(self, key: bytes, ttl: float) -> bool:
        self._breaker.check(self._where)
        shard = key[-1] if key else 0
        keys = (self.epoch_keys[shard], self._spend_prefixes[shard] + key)
        ttl_ms = _ttl_ms(ttl)
        try:
            client, script = self._sync_client()
            reply = script(keys=keys, args=(ttl_ms,), client=client)
        except self._errors as e:
            raise self._breaker.failed(self._where, e) from None
        self._breaker.succeeded()
        if reply == -ttl_ms:  # this call found the marker missing: stamp the other shards too
            # (should that fail, each shard stamps itself on its first spend anyway)
            with contextlib.suppress(*self._errors):
                self._stamp_missing(client.pipeline(transaction=False), client.time())
        return self._verdict(reply, shard)

    def _stamp_missing(self, pipe: Any, time: tuple[int, int]) -> Any:
        """Queue ``SET marker now NX`` for every shard: found empty once, Redis lost (or
        never had) them all, so every shard's wait starts now rather than at its first
        spend. ``time`` is Redis's ``TIME``; markers still there keep their stamp."""
        now = str(time[0] * 1000 + time[1] // 1000).encode()
        for marker in self.epoch_keys:
            pipe.set(marker, now, nx=True)
        return pipe.execute()

    def _verdict(self, reply: object, shard: int) -> bool:
        """The script's answer: spent now, spent before, or wait (fail closed)."""
        answer = reply if isinstance(reply, int) else int(str(reply))
        if answer >= 0:
            return answer == 1
        wait = max(1, math.ceil(-answer / 1000))
        raise StoreUnavailable(
            f"redis replay store {self._where}: the epoch marker of shard {shard:02x} is "
            "younger than one validity period (it was missing: Redis came back empty, or "
            f"was never initialised), so spends there are refused for {wait} s more; if no "
            "token was spent before, pat-middleware store-init ends the wait",
            retry_after=wait,
        )

    def initialize(self) -> int:
        """Stamp every epoch marker as old, so spends are accepted at once; returns how
        many (:data:`SHARDS`). For a new Redis (or prefix), or one known to have lost
        nothing: it asserts that no token was spent under this prefix within its TTL before
        now. Run on a Redis that lost spends, it lets those tokens be accepted again."""
        try:
            pipe = self._sync_client()[0].pipeline(transaction=False)
            for key in self.epoch_keys:
                pipe.set(key, _OLD_EPOCH)
            pipe.execute()
        except self._errors as e:
            raise self._breaker.failed(self._where, e) from None
        self._breaker.succeeded()
        return len(self.epoch_keys)

    def ping(self) -> None:
        """Reach Redis without spending anything (``PING``; every node of a cluster), as
        ``pat-middleware check --connect`` does; :class:`StoreUnavailable` when it does not
        answer."""
        try:
            self._sync_client()[0].ping()
        except self._errors as e:
            raise self._breaker.failed(self._where, e) from None
        self._breaker.succeeded()

    # ------------------------------------------------------------------------- async

    async def spend_async(self, key: bytes, ttl: float) -> bool:
        self._breaker.check(self._where)
        shard = key[-1] if key else 0
        keys = (self.epoch_keys[shard], self._spend_prefixes[shard] + key)
        ttl_ms = _ttl_ms(ttl)
        try:
            client, script = self._async_client()
            reply = await script(keys=keys, args=(ttl_ms,), client=client)
        except self._errors as e:
            raise self._breaker.failed(self._where, e) from None
        self._breaker.succeeded()
        if reply == -ttl_ms:  # as in spend
            with contextlib.suppress(*self._errors):
                await self._stamp_missing(client.pipeline(transaction=False), await client.time())
        return self._verdict(reply, shard)


def _ttl_ms(ttl: float) -> int:
    return max(1, math.ceil(ttl * 1000))


def open_redis_store(
    url: str, *, setting: str, clock: Callable[[], float] = time.monotonic
) -> RedisReplayStore:
    """The factory of every Redis store URL (no I/O: the store connects on its first
    spend)."""
    return RedisReplayStore.from_url(url, setting=setting)


__all__ = [
    "OPTIONS",
    "SHARDS",
    "RedisOptions",
    "RedisReplayStore",
    "SingleServer",
    "import_redis",
    "open_redis_store",
    "parse_redis_url",
]
