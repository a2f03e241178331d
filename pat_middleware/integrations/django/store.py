"""``django-cache://ALIAS``: spent tokens in one of Django's caches, through its ``add``.

``add`` stores a key only when it is absent, and says whether it did: a spend. It is atomic
across processes only where the server does the check: Redis (``SET NX``) and memcached
(``add``). Django's local-memory, file and database caches check and write in two steps (or
in one process), so two workers can both spend one token: they are refused at start-up
(:class:`UnsuitableCache`, naming ``replay_store``; the Django system check
``pat_middleware.E004`` reports the same). So are clients configured to hide errors or
replies (``ignore_exc``, ``default_noreply``), and caches without the client's timeouts
in ``OPTIONS``: a cache that hangs would hang every redemption. memcached is accepted with
one server only: pymemcache's and libmemcached's clients move keys off a server they find
down, so with several a token spent on one could be accepted on another.

One spend is one ``add``: one round trip. Failure is closed: any error of the cache client
raises :class:`~pat_middleware.stores.StoreUnavailable`, and the store fails fast for
``retry_after`` seconds after one (the Redis store's breaker). Options:
``django-cache://ALIAS?prefix=pat:&retry_after=1``.

What this store does not do that the ``redis://`` store does: notice a server that came
back empty. memcached keeps nothing across a restart, and there is no script to check an
epoch marker in the same call; see docs/stores.md ("The Django cache store").

Imports Django only when a store is opened or used.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote

from ...errors import ConfigurationError
from ...stores.breaker import Breaker

SCHEME = "django-cache"
DEFAULT_PREFIX = "pat:"
DEFAULT_RETRY_AFTER = 1.0
#: Backends whose ``add`` the server makes atomic, and the OPTIONS that bound their waits.
ATOMIC_BACKENDS: Mapping[str, tuple[str, ...]] = {
    "django.core.cache.backends.redis.RedisCache": ("socket_timeout", "socket_connect_timeout"),
    "django.core.cache.backends.memcached.PyMemcacheCache": ("timeout", "connect_timeout"),
    # libmemcached bounds its waits itself (seconds by default).
    "django.core.cache.backends.memcached.PyLibMCCache": (),
}
#: Client options that make ``add`` answer without the server's verdict.
_BLINDING_OPTIONS = ("default_noreply", "noreply", "ignore_exc")
_ALIAS = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{0,64}")


class UnsuitableCache(ConfigurationError):
    """The cache a ``django-cache://`` URL names cannot hold spent tokens safely."""


def cache_problem(alias: str) -> str | None:
    """Why Django's cache ``alias`` cannot be a replay store, or None when it can."""
    from django.conf import settings

    if not settings.configured:
        return f"{SCHEME}:// needs Django's settings configured"
    caches: Mapping[str, Mapping[str, Any]] = settings.CACHES
    if alias not in caches:  # not quoted: only a real alias is
        return f"the alias in the {SCHEME}:// URL is not in CACHES (aliases: {sorted(caches)})"
    backend = str(caches[alias].get("BACKEND", ""))
    if backend not in ATOMIC_BACKENDS:
        return (
            f"{SCHEME}://{alias}: {backend} has no add that is atomic across processes, so "
            "two workers could both accept one token; use a cache on Redis or memcached: "
            + ", ".join(sorted(ATOMIC_BACKENDS))
        )
    location = caches[alias].get("LOCATION", "")
    servers = location.replace(",", ";").split(";") if isinstance(location, str) else location
    if "memcached" in backend and len([s for s in servers if s]) > 1:
        return (
            f"{SCHEME}://{alias}: several memcached servers: the client moves keys off a server "
            "it finds down, so a token spent there could be accepted on another; give one"
        )
    options: Mapping[str, Any] = caches[alias].get("OPTIONS") or {}
    blinding = [name for name in _BLINDING_OPTIONS if options.get(name)]
    if blinding:
        return (
            f"{SCHEME}://{alias}: OPTIONS {blinding} make add answer without the server's "
            "verdict (a spend would look fresh, or an outage like a replay); remove them"
        )
    missing = [name for name in ATOMIC_BACKENDS[backend] if name not in options]
    if missing:
        return (
            f"{SCHEME}://{alias}: set OPTIONS {missing} (seconds, e.g. 0.5): without them a "
            "cache server that hangs makes every redemption wait"
        )
    return None


class DjangoCacheReplayStore:
    """Spends as ``cache.add(prefix + key.hex(), 1, timeout=ceil(ttl))`` in Django's cache
    ``alias`` (``aadd`` for the async form)."""

    def __init__(
        self,
        alias: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        retry_after: float = DEFAULT_RETRY_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.alias = alias
        self.prefix = prefix
        self._where = f"{SCHEME}://{alias}"
        self._breaker = Breaker(retry_after, clock, "replay store", secrets=_secrets(alias))

    def __repr__(self) -> str:
        return f"DjangoCacheReplayStore({self._where}, prefix={self.prefix!r})"

    def cache_key(self, key: bytes) -> str:
        """The cache key a spend of ``key`` is held under (before Django's KEY_PREFIX)."""
        return self.prefix + key.hex()

    def _cache(self) -> Any:
        from django.core.cache import caches

        return caches[self.alias]

    def spend(self, key: bytes, ttl: float) -> bool:
        self._breaker.check(self._where)
        try:
            added = self._cache().add(self.cache_key(key), 1, timeout=_seconds(ttl))
        except Exception as e:  # any client error: closed, never a silent accept
            raise self._breaker.failed(self._where, e) from None
        self._breaker.succeeded()
        return bool(added)

    async def spend_async(self, key: bytes, ttl: float) -> bool:
        self._breaker.check(self._where)
        try:
            added = await self._cache().aadd(self.cache_key(key), 1, timeout=_seconds(ttl))
        except Exception as e:
            raise self._breaker.failed(self._where, e) from None
        self._breaker.succeeded()
        return bool(added)

    def close(self) -> None:
        """Nothing: Django owns the cache's connections (and closes them after requests)."""

    async def aclose(self) -> None:
        """Nothing (see :meth:`close`)."""


def _secrets(alias: str) -> list[str | None]:
    """The user names and passwords in the cache's LOCATION URLs: never in an error."""
    from django.conf import settings

    location = settings.CACHES.get(alias, {}).get("LOCATION", "")
    found: list[str | None] = []
    for server in [location] if isinstance(location, str) else list(location):
        for url in re.split("[;,]", str(server)):
            userinfo = url.partition("://")[2].rpartition("@")[0]
            if userinfo:
                user, _, password = userinfo.partition(":")
                found += [unquote(user), unquote(password)]
    return found


def _seconds(ttl: float) -> int:
    """Whole seconds, rounded up (a key must outlive its TTL), at least one."""
    return max(1, math.ceil(ttl))


def open_django_cache_store(
    url: str, *, setting: str, clock: Callable[[], float] = time.monotonic
) -> DjangoCacheReplayStore:
    """The ``django-cache://ALIAS[?prefix=...&retry_after=S]`` factory; no I/O."""
    rest = url.split("://", 1)[1] if "://" in url else ""
    alias, _, query = rest.partition("?")
    if not _ALIAS.fullmatch(alias):  # not quoted: it may be anything pasted there
        raise ConfigurationError(
            setting, f"a {SCHEME}:// URL names a cache alias of CACHES: {SCHEME}://ALIAS"
        )
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - {"prefix", "retry_after"})
    if unknown or len(options) != len(parse_qsl(query, keep_blank_values=True)):
        raise ConfigurationError(
            setting, f"{SCHEME}:// options are prefix and retry_after, each at most once"
        )
    prefix = options.get("prefix", DEFAULT_PREFIX)
    if not _PREFIX.fullmatch(prefix):
        raise ConfigurationError(
            setting, "option 'prefix': up to 64 letters, digits and _ . : - (a memcached key)"
        )
    retry_after = DEFAULT_RETRY_AFTER
    if "retry_after" in options:
        try:
            retry_after = float(options["retry_after"])
        except ValueError:
            retry_after = math.nan
        if not 0.001 <= retry_after <= 300:
            raise ConfigurationError(setting, "option 'retry_after' must be 0.001 to 300 seconds")
    problem = cache_problem(alias)
    if problem is not None:
        raise UnsuitableCache(setting, problem)
    # The breaker backs off on the monotonic clock, whatever the policy judges windows on.
    return DjangoCacheReplayStore(alias, prefix=prefix, retry_after=retry_after)


__all__ = [
    "ATOMIC_BACKENDS",
    "DjangoCacheReplayStore",
    "UnsuitableCache",
    "cache_problem",
    "open_django_cache_store",
]
