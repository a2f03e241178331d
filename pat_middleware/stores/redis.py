"""Redis replay store: one atomic script call (``EVALSHA``) per accepted token.

Shared by every worker and host that points at the same Redis, so a token is accepted once
across all of them. Imports redis-py, so it is imported only when a ``redis://``,
``rediss://`` or ``unix://`` store URL is opened.

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
import difflib
import ipaddress
import math
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from ..errors import ConfigurationError
from .base import StoreUnavailable

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    from redis.commands.core import AsyncScript, Script

SCHEMES = ("redis", "rediss", "unix")
DEFAULT_PORT = 6379
DEFAULT_PREFIX = "pat:"
DEFAULT_TIMEOUT = 0.5
DEFAULT_MAX_CONNECTIONS = 50
DEFAULT_RETRY_AFTER = 1.0
MAX_PREFIX_LENGTH = 64
#: Option -> (lowest, highest) for the numeric options.
_FLOAT_OPTIONS = {
    "timeout": (0.001, 60.0),
    "connect_timeout": (0.001, 60.0),
    "retry_after": (0.001, 300.0),
}
_INT_OPTIONS = {"max_connections": (1, 10_000), "db": (0, 1_000_000)}
_STR_OPTIONS = ("prefix", "password_env", "ssl_ca_certs")
OPTIONS = frozenset((*_FLOAT_OPTIONS, *_INT_OPTIONS, *_STR_OPTIONS))
_INSTALL_HINT = "redis:// replay stores need redis-py: pip install 'pat-middleware[redis]'"
#: The value stored under each key; only the key's existence matters.
_MARK = b"1"
_DIGITS = re.compile(r"[0-9]{1,10}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
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


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """A parsed store URL. The user name and password never appear in ``repr``."""

    scheme: str
    host: str = "localhost"
    port: int = DEFAULT_PORT
    path: str | None = None  # unix:// socket path
    db: int = 0
    username: str | None = field(default=None, repr=False)  # often a password, mistyped
    password: str | None = field(default=None, repr=False)
    prefix: str = DEFAULT_PREFIX
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    retry_after: float = DEFAULT_RETRY_AFTER
    ssl_ca_certs: str | None = None

    @property
    def address(self) -> str:
        """Where the server is, without credentials: ``host:port/db`` or ``unix:path/db``."""
        if self.path is not None:
            return f"unix:{self.path}/{self.db}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}/{self.db}"

    def pool_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for a redis-py (sync or asyncio) ``BlockingConnectionPool``."""
        kwargs: dict[str, Any] = {
            "db": self.db,
            "username": self.username,
            "password": self.password,
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.connect_timeout,
            "max_connections": self.max_connections,
            "timeout": self.timeout,  # wait for a free pooled connection at most this long
        }
        if self.path is not None:
            kwargs["path"] = self.path
        else:
            kwargs["host"] = self.host
            kwargs["port"] = self.port
        if self.scheme == "rediss":
            # Explicit: redis-py 5 checks the certificate but not the host name by default.
            kwargs["ssl_cert_reqs"] = "required"
            kwargs["ssl_check_hostname"] = True
        if self.ssl_ca_certs is not None:
            kwargs["ssl_ca_certs"] = self.ssl_ca_certs
        return kwargs


def parse_redis_url(url: str, *, setting: str = "replay_store") -> RedisOptions:
    """Validate a Redis store URL; every problem names ``setting`` and the option.

    No message quotes the URL or any piece of it, except known option names and the
    ``password_env`` variable name: a password holding an unencoded ``?``, ``#``, ``/`` or
    ``@`` would otherwise land (in part) in the query, fragment, path, host or port, and be
    echoed from there. Such a URL is refused with a message saying what to percent-encode.
    """

    def fail(message: str) -> ConfigurationError:
        return ConfigurationError(setting, message)

    scheme, userinfo, hostport, path, query_text = _split_redis_url(url, fail)
    query: dict[str, str] = {}
    for position, (name, value) in enumerate(parse_qsl(query_text, keep_blank_values=True), 1):
        if name not in OPTIONS:  # not quoted: it may be a piece of a password
            close = difflib.get_close_matches(name, OPTIONS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise fail(
                f"option {position} of the {scheme}:// URL is unknown{hint}; "
                f"known: {sorted(OPTIONS)}"
            )
        if name in query:
            raise fail(f"option {name!r} is given more than once")
        query[name] = value
    opts: dict[str, Any] = {}
    for name, (low, high) in _FLOAT_OPTIONS.items():
        if name in query:
            try:
                seconds = float(query[name])
            except ValueError:
                seconds = math.nan
            if not low <= seconds <= high:
                raise fail(f"option {name!r} must be a number of seconds from {low} to {high}")
            opts[name] = seconds
    for name, (ilow, ihigh) in _INT_OPTIONS.items():
        if name in query:
            text = query[name]
            if not _DIGITS.fullmatch(text) or not ilow <= int(text) <= ihigh:
                raise fail(f"option {name!r} must be an integer from {ilow} to {ihigh}")
            opts[name] = int(text)
    if "timeout" in opts and "connect_timeout" not in opts:
        opts["connect_timeout"] = opts["timeout"]
    if "prefix" in query:
        prefix = query["prefix"]
        if len(prefix.encode()) > MAX_PREFIX_LENGTH:
            raise fail(f"option 'prefix' is longer than {MAX_PREFIX_LENGTH} bytes")
        opts["prefix"] = prefix
    if "ssl_ca_certs" in query:
        if scheme != "rediss":
            raise fail("option 'ssl_ca_certs' needs a rediss:// URL")
        opts["ssl_ca_certs"] = query["ssl_ca_certs"]

    host, port = _host_and_port(hostport, fail)
    if scheme == "unix":
        if not path:
            raise fail("a unix:// URL needs the socket path, e.g. unix:///run/redis.sock")
        opts["path"] = unquote(path)
    else:
        opts["host"] = host or "localhost"
        opts["port"] = port if port is not None else DEFAULT_PORT
        db_text = path.strip("/")
        if db_text:
            if "db" in query:
                raise fail("give the database number in the path or as db=, not both")
            if not _DIGITS.fullmatch(db_text):
                raise fail("the path must be the database number, e.g. /0")
            opts["db"] = int(db_text)

    password: str | None = None
    if userinfo is not None:
        username, colon, password_text = userinfo.partition(":")
        if username:
            opts["username"] = unquote(username)
        password = unquote(password_text) if colon else None
    if "password_env" in query:
        if password is not None:
            raise fail("give the password in the URL or as password_env, not both")
        var = query["password_env"]
        if not _ENV_NAME.fullmatch(var):
            raise fail("option 'password_env' must name an environment variable")
        password = os.environ.get(var)
        if password is None:
            raise fail(f"environment variable {var!r} named by password_env is not set")
    opts["password"] = password
    return RedisOptions(scheme=scheme, **opts)


def _split_redis_url(
    url: str, fail: Callable[[str], ConfigurationError]
) -> tuple[str, str | None, str, str, str]:
    """(scheme, user info or None, host[:port], path, query) of a Redis URL.

    Split here rather than by ``urlsplit``: that ends the user info at the first ``/``, ``?``
    or ``#``, so an unencoded one in a password moves the rest of it into the path, query or
    fragment and the text before it into the host and port (``redis://:1234#pw@h`` is port
    1234 on localhost), or raises with a piece of it (``[`` and ``]``). A password can hold
    any of them only percent-encoded; then the split is unambiguous.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        raise fail("a Redis store URL starts with redis://, rediss:// or unix://")
    if "#" in rest:
        raise fail(
            "a Redis store URL has no fragment: a '#' in the user name or password must be "
            "percent-encoded as %23"
        )
    end = next((i for i, char in enumerate(rest) if char in "/?"), len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in tail:
        raise fail(
            "an '@' follows the host: the user name and password must be percent-encoded "
            "('/' as %2F, '?' as %3F, '#' as %23, '@' as %40), and so must any other '@' "
            "(in a socket path or an option)"
        )
    userinfo, at, hostport = authority.rpartition("@")
    path, _, query = tail.partition("?")
    return scheme, userinfo if at else None, hostport, path, query


def _host_and_port(
    hostport: str, fail: Callable[[str], ConfigurationError]
) -> tuple[str, int | None]:
    """The host (unquoted, lower case; "" when absent) and port (None when absent)."""
    if hostport.startswith("["):
        host, bracket, after = hostport[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise fail("an IPv6 host is written in brackets, e.g. redis://[::1]:6379/0")
        try:
            ipaddress.IPv6Address(unquote(host))
        except ValueError:
            raise fail("the host in brackets must be an IPv6 address") from None
        port_text = after[1:] if after else ""
    else:
        host, _, port_text = hostport.partition(":")
        if "[" in host or "]" in host:
            raise fail("an IPv6 host is written in brackets, e.g. redis://[::1]:6379/0")
    port: int | None = None
    if port_text:
        if not _DIGITS.fullmatch(port_text) or int(port_text) > 65535:
            raise fail("the port must be a number from 0 to 65535")
        port = int(port_text)
    return unquote(host).lower(), port


def _import_redis(setting: str = "replay_store") -> Any:
    try:
        import redis
        import redis.asyncio
    except ImportError as e:
        raise ConfigurationError(setting, _INSTALL_HINT) from e
    return redis


class _Breaker:
    """Fails fast for ``back_off`` seconds after a failure, then lets one probe through.

    Shared by the sync and async forms; its lock is never held across I/O.
    """

    __slots__ = ("_back_off", "_clock", "_down_until", "_lock", "_reason")

    def __init__(self, back_off: float, clock: Callable[[], float]) -> None:
        self._back_off = back_off
        self._clock = clock
        self._down_until = 0.0
        self._reason = ""
        self._lock = threading.Lock()

    def check(self, where: str) -> None:
        """Raise at once while backing off; past the back-off, admit this caller as the probe
        (the others keep failing fast until it answers)."""
        if not self._down_until:
            return
        with self._lock:
            now = self._clock()
            remaining = self._down_until - now
            if remaining > 0:
                raise StoreUnavailable(
                    f"redis replay store {where} unavailable ({self._reason}); "
                    f"backing off {remaining:.1f} s",
                    retry_after=max(1, math.ceil(remaining)),
                )
            if self._down_until:
                self._down_until = now + self._back_off  # this caller probes

    def failed(self, where: str, error: BaseException) -> StoreUnavailable:
        first_line = (str(error).splitlines() or [""])[0][:120]
        reason = f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__
        with self._lock:
            self._down_until = self._clock() + self._back_off
            self._reason = reason
        return StoreUnavailable(
            f"redis replay store {where} failed ({reason})",
            retry_after=max(1, math.ceil(self._back_off)),
        )

    def succeeded(self) -> None:
        if self._down_until:
            with self._lock:
                self._down_until = 0.0


class RedisReplayStore:
    """Replay store in Redis, with sync (``reserve``) and asyncio (``reserve_async``) forms.

    Each form (and each running event loop) has its own bounded connection pool
    (``max_connections``, waiting at most ``timeout`` for a free connection) with bounded
    socket and connect timeouts, and no retries: a timeout is reported, not repeated. A
    spend of ``key`` is held under ``prefix + "{xx}:" + key`` (binary-safe; ``xx`` is the
    key's last byte in hex), its shard's epoch marker under ``prefix + "{xx}epoch"``.

    ``reserve`` is one round trip, atomic on the server: ``EVALSHA`` of a script that checks
    the shard's epoch marker and runs ``SET key 1 NX PX ttl_ms`` (the script is loaded by
    the first call that finds Redis without it). ``commit`` does nothing, because the
    reservation already holds the key for its whole TTL; so an accepted token costs exactly
    one round trip. ``release`` is ``DEL``.
    """

    def __init__(
        self,
        options: RedisOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = _import_redis()
        self.options = options
        self._prefix = options.prefix.encode("utf-8")
        self._spend_prefixes = tuple(self._prefix + tag + b":" for tag in _TAGS)
        #: The shards' epoch markers, in shard order.
        self.epoch_keys = tuple(self._prefix + tag + b"epoch" for tag in _TAGS)
        self._where = options.address
        self._breaker = _Breaker(options.retry_after, clock)
        self._client: redis.Redis | None = None
        self._script: Script | None = None
        self._client_lock = threading.Lock()
        # An asyncio client works only in the loop that made it: one per running loop (a
        # threaded WSGI server running async views has one loop per thread at once). Clients
        # of closed loops are dropped when a new loop first asks, so this holds at most one
        # client per loop alive at that moment.
        self._aclients: dict[asyncio.AbstractEventLoop, redis.asyncio.Redis] = {}
        self._ascripts: dict[asyncio.AbstractEventLoop, AsyncScript] = {}

    @classmethod
    def from_url(cls, url: str, *, setting: str = "replay_store") -> RedisReplayStore:
        """Build the store from a ``redis://``, ``rediss://`` or ``unix://`` URL."""
        _import_redis(setting)  # a missing redis-py names the caller's setting
        return cls(parse_redis_url(url, setting=setting))

    def __repr__(self) -> str:
        o = self.options
        return f"RedisReplayStore({o.scheme}://{o.address}, prefix={o.prefix!r})"

    # ------------------------------------------------------------------------ clients

    def _connection_class(self, module: Any) -> Any:
        if self.options.path is not None:
            return module.UnixDomainSocketConnection
        return module.SSLConnection if self.options.scheme == "rediss" else module.Connection

    def _sync_client(self) -> redis.Redis:
        client = self._client
        if client is None:
            with self._client_lock:
                if self._client is None:
                    r = self._redis
                    pool = r.BlockingConnectionPool(
                        connection_class=self._connection_class(r),
                        retry=r.retry.Retry(r.backoff.NoBackoff(), 0),
                        **self.options.pool_kwargs(),
                    )
                    made = r.Redis(connection_pool=pool)
                    # The script first: a caller seeing the client finds its script too.
                    self._script = made.register_script(_SPEND_SCRIPT)
                    self._client = made
                client = self._client
        assert client is not None
        return client

    def _spend_script(self) -> Script:
        script = self._script
        if script is None:
            self._sync_client()
            script = self._script
        assert script is not None
        return script

    def _async_client(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is not None:
            return client
        with self._client_lock:
            client = self._aclients.get(loop)
            if client is None:
                for closed in [other for other in self._aclients if other.is_closed()]:
                    del self._aclients[closed]
                    self._ascripts.pop(closed, None)
                ra = self._redis.asyncio
                pool = ra.BlockingConnectionPool(
                    connection_class=self._connection_class(ra),
                    retry=ra.retry.Retry(self._redis.backoff.NoBackoff(), 0),
                    **self.options.pool_kwargs(),
                )
                client = self._aclients[loop] = ra.Redis(connection_pool=pool)
                self._ascripts[loop] = client.register_script(_SPEND_SCRIPT)
        return client

    def close(self) -> None:
        """Close the sync pool's connections (the store stays usable: it reconnects)."""
        client = self._client
        if client is not None:
            client.connection_pool.disconnect()

    async def aclose(self) -> None:
        """Close the running loop's asyncio connections (other loops keep theirs)."""
        with self._client_lock:
            loop = asyncio.get_running_loop()
            client = self._aclients.pop(loop, None)
            self._ascripts.pop(loop, None)
        if client is not None:
            await client.connection_pool.disconnect()

    # -------------------------------------------------------------------------- sync

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (self._redis.RedisError, OSError)

    def spend_key(self, key: bytes) -> bytes:
        """The Redis key a spend of ``key`` is held under."""
        return self._spend_prefixes[key[-1] if key else 0] + key

    def epoch_key(self, key: bytes) -> bytes:
        """The epoch marker a spend of ``key`` is checked against."""
        return self.epoch_keys[key[-1] if key else 0]

    def reserve(self, key: bytes, ttl: float) -> bool:
        self._breaker.check(self._where)
        shard = key[-1] if key else 0
        keys = (self.epoch_keys[shard], self._spend_prefixes[shard] + key)
        ttl_ms = _ttl_ms(ttl)
        try:
            reply = self._spend_script()(keys=keys, args=(ttl_ms,))
        except self._errors() as e:
            raise self._breaker.failed(self._where, e) from None
        self._breaker.succeeded()
        if reply == -ttl_ms:  # this call found the marker missing: stamp the other shards too
            try:
                client = self._sync_client()
                self._stamp_missing(client.pipeline(transaction=False), client.time())
            except self._errors():
                pass  # each shard stamps itself on its first spend anyway
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
        pipe = self._sync_client().pipeline(transaction=False)
        for key in self.epoch_keys:
            pipe.set(key, _OLD_EPOCH)
        try:
            pipe.execute()
        except self._errors() as e:
            raise self._breaker.failed(self._where, e) from None
        self._breaker.succeeded()
        return len(self.epoch_keys)

    def commit(self, key: bytes) -> None:
        # The reservation already holds the key for its TTL: an accept is one round trip.
        return None

    def release(self, key: bytes) -> None:
        self._breaker.check(self._where)
        try:
            self._sync_client().delete(self.spend_key(key))
        except self._errors() as e:
            raise self._breaker.failed(self._where, e) from None
        self._breaker.succeeded()

    # ------------------------------------------------------------------------- async

    async def reserve_async(self, key: bytes, ttl: float) -> bool:
        self._breaker.check(self._where)
        shard = key[-1] if key else 0
        keys = (self.epoch_keys[shard], self._spend_prefixes[shard] + key)
        ttl_ms = _ttl_ms(ttl)
        try:
            client = self._async_client()
            script = self._ascripts[asyncio.get_running_loop()]
            reply = await script(keys=keys, args=(ttl_ms,), client=client)
        except self._errors() as e:
            raise self._breaker.failed(self._where, e) from None
        self._breaker.succeeded()
        if reply == -ttl_ms:  # as in reserve
            try:
                await self._stamp_missing(client.pipeline(transaction=False), await client.time())
            except self._errors():
                pass
        return self._verdict(reply, shard)

    async def commit_async(self, key: bytes) -> None:
        return None

    async def release_async(self, key: bytes) -> None:
        self._breaker.check(self._where)
        try:
            await self._async_client().delete(self.spend_key(key))
        except self._errors() as e:
            raise self._breaker.failed(self._where, e) from None
        self._breaker.succeeded()


def _ttl_ms(ttl: float) -> int:
    return max(1, math.ceil(ttl * 1000))


__all__ = ["OPTIONS", "SHARDS", "RedisOptions", "RedisReplayStore", "parse_redis_url"]
