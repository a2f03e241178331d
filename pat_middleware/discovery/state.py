"""Issuer key discovery without I/O: directory answers in, trusted keys out (RFC 9578 §4).

:class:`DirectoryState` is the state machine of one issuer's directory. Give it each HTTP
answer (:meth:`~DirectoryState.receive`) or transport failure (:meth:`~DirectoryState.fail`)
with the time; it keeps the last good keys, the ETag and the time of the next refresh.
:meth:`~DirectoryState.select` says which keys verify tokens at a given moment and which one
challenges advertise. :class:`KeySource` holds every configured issuer (static keys plus
directory states) and runs refreshes through a :data:`Fetcher`, a coroutine: each issuer's
refresh is a task of its own, cut by cancellation at ``directory_timeout``, so no issuer
waits for another. The HTTP fetcher and the background thread live in
:mod:`pat_middleware.discovery.refresher`.

The rules, and why:

* Challenges advertise the first listed key whose ``not-before`` has passed: the key clients
  pick from the same directory (RFC 9578 §4), so issuance under it succeeds. A key whose
  not-before is ahead is never advertised. A static key is advertised only when the
  directory offers no current key.
* Tokens verify under every listed key, current or not yet current. A token can only exist
  under a key the issuer signs with, and the issuer lists it; RFC 9578 §4 lets origins try
  any listed key, which covers clients whose clocks run ahead and pick the next key early.
* A key that leaves the directory stays trusted for ``max(freshness, directory_key_grace)``:
  clients may hold the old directory that long (its max-age) and tokens minted under the key
  are then still being redeemed. Static keys are always trusted.
* A failed fetch, an error status, a Content-Type other than the directory's media type or
  JSON, or a document without one usable key keeps the last good keys; retries back off
  from ``directory_refresh_min`` to ``directory_refresh_max``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import re
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..core.directory import (
    ISSUER_DIRECTORY_MEDIA_TYPE,
    DirectoryKey,
    parse_directory,
)
from ..core.keys import TokenKey
from ..errors import ConfigurationError, DecodeError, PrivateTokenError
from ..settings import DiscoveryOptions, IssuerConfig
from ..settings.model import DEFAULT_TOKEN_TYPES
from ..tokens.registry import default_registry

logger = logging.getLogger("pat_middleware")

#: Keys taken from one directory, most preferred first; the rest are ignored. Bounds the
#: key ring, which every token lookup walks in constant time.
MAX_LISTED_KEYS = 16
#: Keys kept past their removal from the directory, at most (the soonest to expire go first).
MAX_RETIRED_KEYS = 16
#: Refresh this share of the freshness lifetime early, but at most REFRESH_AHEAD_MAX seconds.
REFRESH_AHEAD_FRACTION = 0.1
REFRESH_AHEAD_MAX = 300
_MAX_ETAG_LENGTH = 256
_ETAG = re.compile(r'(W/)?"[\x21\x23-\x7e]*"')
_MAX_AGE = re.compile(r'\s*max-age\s*=\s*"?(\d{1,10})"?\s*', re.IGNORECASE)
_ACCEPT = f"{ISSUER_DIRECTORY_MEDIA_TYPE}, application/json;q=0.5"
_JSON_MEDIA_TYPE = re.compile(r"application/(?:[a-z0-9!#$&^_.-][a-z0-9!#$&^_.+-]*\+)?json")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
_MAX_SHOWN_CONTENT_TYPE = 64
_NEVER = math.inf
_T = TypeVar("_T")


class DirectoryFetchError(PrivateTokenError):
    """A directory could not be fetched (transport failure); the message is one line."""


@dataclass(frozen=True, slots=True)
class DirectoryRequest:
    """What to GET next: the URL and the request headers (Accept, If-None-Match)."""

    url: str
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class DirectoryResponse:
    """An HTTP answer to a :class:`DirectoryRequest`. Header names in any case."""

    status: int
    headers: Mapping[str, str]
    body: bytes = field(default=b"", repr=False)


#: Performs a :class:`DirectoryRequest`; raises :class:`DirectoryFetchError` when no answer
#: arrives. The body need only be read for status 200. A coroutine: :class:`KeySource`
#: cancels it at the deadline, so it must give up its connection when cancelled.
Fetcher = Callable[[DirectoryRequest], Awaitable[DirectoryResponse]]


class Refresh(enum.Enum):
    """What one directory answer did to the state."""

    CHANGED = "changed"  # new keys or not-before values: rebuild what depends on them
    UNCHANGED = "unchanged"  # a 200 with the same keys
    NOT_MODIFIED = "not_modified"  # a 304: keys kept, freshness renewed
    RETRY = "retry"  # 404 at a URL with a fallback: request again now, at the next URL
    FAILED = "failed"  # last good keys kept; detail says why


@dataclass(frozen=True, slots=True)
class RefreshResult:
    outcome: Refresh
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ListedKey:
    """A key as the directory lists it, parsed once."""

    key: TokenKey
    not_before: int | None = None

    def is_current(self, now: float) -> bool:
        return self.not_before is None or self.not_before <= now


@dataclass(frozen=True, slots=True)
class IssuerKeys:
    """One issuer's keys at a moment: the one to advertise (None: do not challenge for this
    issuer) and every key a token may be signed under. ``advertised`` holds the key to
    advertise per token type (``preferred`` is its first), for an issuer with keys of
    several types."""

    name: str
    preferred: TokenKey | None
    accepted: tuple[TokenKey, ...]
    advertised: tuple[TokenKey, ...] = ()


@dataclass(frozen=True, slots=True)
class KeySelection:
    """Every issuer's keys, valid until ``valid_until`` or until the source's version moves."""

    issuers: tuple[IssuerKeys, ...]
    version: int
    valid_until: float


class DirectoryState:
    """The directory state machine of one issuer. Not thread-safe: :class:`KeySource` locks."""

    def __init__(
        self,
        name: str,
        urls: Sequence[str],
        options: DiscoveryOptions,
        *,
        static: Sequence[TokenKey] = (),
        allow_4096: bool = False,
        setting: str = "",
        token_types: frozenset[int] = DEFAULT_TOKEN_TYPES,
    ) -> None:
        if not urls:
            raise ValueError("a directory state needs at least one URL")
        self.name = name
        self.urls = tuple(urls)
        self.options = options
        self.static = tuple(static)
        self.allow_4096 = allow_4096
        self.setting = setting
        self.token_types = token_types
        self.etag: str | None = None
        self.listed: tuple[ListedKey, ...] = ()
        #: token_key_id -> (key, trusted until): keys that left the directory.
        self.retired: dict[bytes, tuple[TokenKey, float]] = {}
        #: The freshness lifetime of the last good answer, clamped to the refresh bounds.
        self.freshness: float = 0.0
        self.next_refresh: float = -_NEVER
        self.failures = 0
        self.last_error: str | None = None
        self._url_index = 0
        self._last_forced = -_NEVER

    def __repr__(self) -> str:
        return (
            f"DirectoryState({self.name!r}, listed={len(self.listed)}, "
            f"retired={len(self.retired)}, failures={self.failures})"
        )

    @property
    def url(self) -> str:
        """The URL the next request goes to."""
        return self.urls[self._url_index]

    @property
    def has_keys(self) -> bool:
        return bool(self.static or self.listed or self.retired)

    def due(self, now: float) -> bool:
        return now >= self.next_refresh

    def request(self) -> DirectoryRequest:
        headers = [("Accept", _ACCEPT)]
        if self.etag is not None:
            headers.append(("If-None-Match", self.etag))
        return DirectoryRequest(self.url, tuple(headers))

    def request_refresh(self, now: float) -> bool:
        """Make a refresh due now (a token named an unknown key), at most once per
        ``directory_unknown_key_refresh`` seconds. True when it did."""
        if now - self._last_forced < self.options.unknown_key_refresh:
            return False
        self._last_forced = now
        self.next_refresh = min(self.next_refresh, now)
        return True

    # ---------------------------------------------------------------------- answers

    def receive(self, response: DirectoryResponse, now: float) -> RefreshResult:
        headers = {name.lower(): value for name, value in response.headers.items()}
        status = response.status
        if status == 404 and self._url_index + 1 < len(self.urls):
            self._url_index += 1
            self.etag = None  # a validator belongs to the URL that sent it
            return RefreshResult(
                Refresh.RETRY, f"HTTP 404 at {shown_url(self.urls[self._url_index - 1])}"
            )
        if status == 304:
            if self.etag is None:
                return self.fail("HTTP 304 to a request without If-None-Match", now)
            self._succeeded(headers, now)
            return RefreshResult(Refresh.NOT_MODIFIED)
        if status != 200:
            return self.fail(f"HTTP {status}", now)
        refused = _content_type_problem(headers.get("content-type"))
        if refused is not None:
            return self.fail(refused, now)
        try:
            directory = parse_directory(response.body)
        except DecodeError as e:
            return self.fail(str(e), now)
        listed = self._parse_keys(directory.token_keys)
        if not listed:
            types = " or ".join(map(str, sorted(self.token_types)))
            return self.fail(f"the directory lists no usable token type {types} key", now)
        changed = self._install(listed, now)
        self.etag = _etag(headers.get("etag"))
        self._succeeded(headers, now)
        return RefreshResult(Refresh.CHANGED if changed else Refresh.UNCHANGED)

    def fail(self, detail: str, now: float) -> RefreshResult:
        """A failed refresh: keep the keys, back off, start again from the first URL."""
        self.failures += 1
        self.last_error = detail
        backoff = self.options.refresh_min * 2 ** min(self.failures - 1, 20)
        self.next_refresh = now + min(self.options.refresh_max, backoff)
        if self._url_index:
            self._url_index = 0
            self.etag = None
        return RefreshResult(Refresh.FAILED, detail)

    def _succeeded(self, headers: Mapping[str, str], now: float) -> None:
        self.failures = 0
        self.last_error = None
        lifetime = _freshness_lifetime(headers)
        low, high = self.options.refresh_min, self.options.refresh_max
        self.freshness = _clamp(lifetime, low, high)
        early = min(lifetime * REFRESH_AHEAD_FRACTION, REFRESH_AHEAD_MAX)
        self.next_refresh = now + _clamp(lifetime - early, low, high)

    def _parse_keys(self, entries: Sequence[DirectoryKey]) -> tuple[ListedKey, ...]:
        """Keys of the accepted token types in directory order, parsed through the token
        registry (or reused when already known). A type whose tokens only the issuer's
        private key verifies is used when that key is configured (a static key) and the
        entry publishes its public half."""
        known: dict[tuple[int, bytes], TokenKey] = {
            (key.token_type, key.published): key for key in self.static
        }
        known.update(((k.key.token_type, k.key.published), k.key) for k in self.listed)
        known.update(((key.token_type, key.published), key) for key, _ in self.retired.values())
        registry = default_registry()
        out: list[ListedKey] = []
        seen: set[tuple[int, bytes]] = set()
        for entry in entries:
            found = (entry.token_type, entry.token_key)
            if entry.token_type not in self.token_types or found in seen:
                continue
            key = known.get(found)
            if key is None:
                token_type = registry.get(entry.token_type)
                if token_type is None or not token_type.publicly_verifiable:
                    continue  # unknown, or verifiable only with a secret we do not hold
                try:
                    loaded = token_type.load_public_key(entry.token_key, allow_4096=self.allow_4096)
                except DecodeError:
                    continue  # one bad entry does not spoil the others
                if not isinstance(loaded, TokenKey):
                    continue
                key = loaded
            seen.add(found)
            out.append(ListedKey(key, entry.not_before))
            if len(out) == MAX_LISTED_KEYS:
                break
        return tuple(out)

    def _install(self, listed: tuple[ListedKey, ...], now: float) -> bool:
        before = [(k.key.token_key_id, k.not_before) for k in self.listed]
        after = [(k.key.token_key_id, k.not_before) for k in listed]
        changed = before != after
        ids = {key_id for key_id, _ in after}
        grace = max(self.options.key_grace, self.freshness)
        for old in self.listed:
            if old.key.token_key_id not in ids:
                self.retired[old.key.token_key_id] = (old.key, now + grace)
        for key_id in ids:
            self.retired.pop(key_id, None)
        self._prune(now)
        self.listed = listed
        return changed

    def _prune(self, now: float) -> None:
        live = sorted(
            ((until, key_id, key) for key_id, (key, until) in self.retired.items() if until > now),
            reverse=True,
        )[:MAX_RETIRED_KEYS]
        self.retired = {key_id: (key, until) for until, key_id, key in live}

    # -------------------------------------------------------------------- selection

    def select(self, now: float) -> tuple[IssuerKeys, float]:
        """The issuer's keys at ``now`` and the moment that answer changes on its own."""
        # Per token type, the first current listed key, else the first static one.
        advertised = _first_per_type(
            [*(k.key for k in self.listed if k.is_current(now)), *self.static]
        )
        preferred = advertised[0] if advertised else None
        accepted: dict[bytes, TokenKey] = {}
        for key in self.static:
            accepted.setdefault(key.token_key_id, key)
        for listed in self.listed:
            accepted.setdefault(listed.key.token_key_id, listed.key)
        changes: list[float] = [k.not_before for k in self.listed if k.not_before is not None]
        for key_id, (key, until) in self.retired.items():
            if until > now:
                accepted.setdefault(key_id, key)
                changes.append(until)
        upcoming = [moment for moment in changes if moment > now]
        keys = IssuerKeys(self.name, preferred, tuple(accepted.values()), advertised)
        return keys, min(upcoming, default=_NEVER)


class KeySource:
    """Every configured issuer's keys: static ones, and for issuers with a directory the
    fetched ones. Thread-safe. ``version`` moves whenever fetched keys change.

    Refreshes run through ``fetcher`` (set by :mod:`pat_middleware.discovery.refresher`); ``hooks``
    lets that module start its thread lazily and be woken. Each issuer's refresh (its URLs
    in turn, after a 404) must end within ``directory_timeout``: past it, it is cancelled
    and counts as a failed fetch of that issuer alone. A directory is fetched by one
    refresh at a time (:meth:`claim_due` marks it), whoever asks.
    """

    def __init__(
        self,
        issuers: Sequence[IssuerConfig],
        options: DiscoveryOptions,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options
        self.clock = clock
        self.version = 0
        self.fetcher: Fetcher | None = None
        self.hooks: RefreshHooks | None = None
        self._issuers = tuple(issuers)
        self._states = {
            issuer.name: DirectoryState(
                issuer.name,
                issuer.directory_urls,
                options,
                static=issuer.keys,
                allow_4096=issuer.allow_4096,
                setting=issuer.directory_setting,
                token_types=issuer.token_types,
            )
            for issuer in issuers
            if issuer.directory_urls
        }
        self._lock = threading.Lock()  # guards the states and _fetching
        self._fetching: set[str] = set()  # issuers whose refresh is under way
        #: Issuers an unknown key asked to refresh while one was under way: once more after.
        self._again: set[str] = set()

    def __repr__(self) -> str:
        return f"KeySource(issuers={len(self._issuers)}, directories={len(self._states)})"

    @property
    def discovers(self) -> bool:
        """True when some issuer's keys come from a directory."""
        return bool(self._states)

    @property
    def states(self) -> tuple[DirectoryState, ...]:
        return tuple(self._states.values())

    def reset_locks(self) -> None:
        """Fresh locks, for a child process: a lock held by a parent thread at fork time
        would stay held forever."""
        self._lock = threading.Lock()
        self._fetching = set()  # the parent's fetches do not go on in this process
        self._again = set()
        self.version += 1  # the policy rebuilds its snapshot, which restarts the refresher

    def select(self, now: float) -> KeySelection:
        """Every issuer's keys at ``now``, in settings order."""
        with self._lock:
            version = self.version
            out: list[IssuerKeys] = []
            until = _NEVER
            for issuer in self._issuers:
                state = self._states.get(issuer.name)
                if state is None:
                    key = issuer.keys[0] if issuer.keys else None
                    advertised = _first_per_type(issuer.keys)
                    out.append(IssuerKeys(issuer.name, key, issuer.keys, advertised))
                    continue
                keys, changes_at = state.select(now)
                out.append(keys)
                until = min(until, changes_at)
        return KeySelection(tuple(out), version, until)

    def refresh(self, *, force: bool = False) -> float:
        """Fetch every directory that is due (every one with ``force``), all at once, and
        wait until each has answered or met its deadline. Returns the seconds until the next
        one is due. Runs its own event loop, in a helper thread (the caller may be inside
        one already). A directory the background refresher is fetching is left to it."""
        if self.fetcher is None or not self._states:
            return _NEVER
        _run_in_own_loop(lambda: self.refresh_async(force=force))
        return self.seconds_until_due()

    async def refresh_async(self, *, force: bool = False) -> None:
        """:meth:`refresh` in the running event loop."""
        fetch = self.fetcher
        if fetch is None:
            return
        claimed = self.claim_due(force=force)
        await asyncio.gather(*(self.refresh_claimed(state, fetch) for state in claimed))

    def claim_due(self, *, force: bool = False) -> list[DirectoryState]:
        """The directories due now (every one with ``force``) that no refresh is fetching,
        marked as being fetched: pass each to :meth:`refresh_claimed`."""
        with self._lock:
            now = self.clock()
            claimed = [
                state
                for state in self._states.values()
                if state.name not in self._fetching and (force or state.due(now))
            ]
            self._fetching.update(state.name for state in claimed)
        return claimed

    def seconds_until_due(self) -> float:
        """Seconds until the next directory that no refresh is fetching is due."""
        with self._lock:
            idle = [s.next_refresh for s in self._states.values() if s.name not in self._fetching]
            return min(idle, default=_NEVER) - self.clock()

    async def refresh_claimed(self, state: DirectoryState, fetch: Fetcher) -> None:
        """Refresh one directory from :meth:`claim_due`, within ``directory_timeout``."""
        try:
            await self._refresh_one(state, fetch)
        finally:
            with self._lock:
                self._fetching.discard(state.name)
                if state.name in self._again:
                    self._again.discard(state.name)
                    state.next_refresh = min(state.next_refresh, self.clock())

    async def _refresh_one(self, state: DirectoryState, fetch: Fetcher) -> None:
        result = RefreshResult(Refresh.FAILED, "no URL")
        url = state.url
        timeout = self.options.timeout
        try:
            async with asyncio.timeout(timeout):
                for _ in state.urls:  # a 404 moves on to the next URL at once
                    with self._lock:
                        request = state.request()
                    url = request.url
                    try:
                        response = await fetch(request)
                    except DirectoryFetchError as e:
                        with self._lock:
                            result = state.fail(str(e), self.clock())
                    else:
                        with self._lock:
                            result = state.receive(response, self.clock())
                    if result.outcome is not Refresh.RETRY:
                        break
        except TimeoutError:
            detail = f"no complete answer within directory_timeout ({timeout:g} s)"
            with self._lock:
                result = state.fail(detail, self.clock())
        except Exception as e:  # a fetcher's bug fails this issuer alone, and is retried
            first_line = (str(e).splitlines() or [""])[0][:200]
            with self._lock:
                result = state.fail(f"unexpected {type(e).__name__}: {first_line}", self.clock())
        with self._lock:
            if result.outcome is Refresh.CHANGED:
                self.version += 1
            _log_refresh(state, url, result, self.clock())

    def key_missing(self, now: float) -> None:
        """A token named an unknown key id: ask for a refresh of every directory, each at most
        once per ``directory_unknown_key_refresh`` seconds. Never blocks on the network."""
        if not self._states:
            return
        with self._lock:
            requested = [state for state in self._states.values() if state.request_refresh(now)]
            # A fetch under way may have read the directory before it listed the key.
            self._again.update(s.name for s in requested if s.name in self._fetching)
        if requested and self.hooks is not None:
            self.hooks.wake()

    def check_start_up(self) -> None:
        """Raise :class:`ConfigurationError` for an issuer left without any key, unless
        ``directory_require_keys`` is false (then log one warning per issuer)."""
        for state in self.states:
            if state.has_keys:
                continue
            problem = (
                f"no token key could be fetched from {shown_url(state.url)} ({state.last_error})"
            )
            if self.options.require_keys:
                raise ConfigurationError(
                    state.setting,
                    f"{problem}; set directory_require_keys = false to start without keys "
                    "(requests are then refused with 503 until keys arrive)",
                )
            logger.warning("issuer %s: %s; starting without its keys", state.name, problem)

    def ensure_running(self) -> None:
        if self.hooks is not None:
            self.hooks.ensure_running()

    def close(self) -> None:
        if self.hooks is not None:
            self.hooks.close()


class RefreshHooks:
    """What :class:`KeySource` asks of a background refresher. The default does nothing."""

    def ensure_running(self) -> None:
        """Start the refresher if this process has none (lazily, and again after a fork)."""

    def wake(self) -> None:
        """A refresh became due early."""

    def close(self) -> None:
        """Stop refreshing."""


def run_in_new_loop(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coroutine`` to its end in a new event loop, like :func:`asyncio.run`, but
    without waiting for the loop's executor threads: a host-name lookup runs in one, and
    cancelling a fetch at its deadline cannot stop the lookup (``asyncio.run`` would wait
    for it, as long as the resolver likes). The lookup finishes on its own."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        try:
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()  # shuts the default executor down without waiting


def _run_in_own_loop(make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run ``make()`` to its end in a new event loop on a helper thread, and return its
    result (or raise its error). The calling thread's event loop, running or not, is left
    alone."""
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, run_in_new_loop(make())))
        except BaseException as e:  # handed over to the caller
            outcome.append((False, e))

    thread = threading.Thread(target=run, name="pat-middleware-key-fetch", daemon=True)
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    result: _T = value
    return result


def shown_url(url: str) -> str:
    """A directory URL as logs and errors show it: no user info, query or fragment (they
    may carry credentials); the host and port as written. Never raises (it runs on error
    paths): text that does not parse, or has no ``//host``, is not shown at all."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" or "]" in the host
        return "(unparsable URL)"
    if not parts.netloc:  # "user:pw@host/dir" parses as scheme "user", path "pw@host/dir"
        return "(URL without a host)"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _log_refresh(state: DirectoryState, url: str, result: RefreshResult, now: float) -> None:
    if result.outcome is Refresh.FAILED:
        kept = len(state.static) + len(state.listed) + len(state.retired)
        logger.warning(
            "issuer %s: directory refresh from %s failed: %s; keeping %d key(s), next try in %d s",
            state.name,
            shown_url(url),
            result.detail,
            kept,
            max(0, round(state.next_refresh - now)),
        )
    elif result.outcome is Refresh.CHANGED:
        current = next((k for k in state.listed if k.is_current(now)), None)
        logger.info(
            "issuer %s: directory lists %d key(s); preferred key id %s",
            state.name,
            len(state.listed),
            current.key.token_key_id.hex()[:16] if current else "none yet",
        )


def _content_type_problem(value: str | None) -> str | None:
    """None for a directory's media type or JSON (``application/json``, ``application/*+json``;
    parameters allowed), else why not: a page that merely parses as a directory (an error
    page, a file someone uploaded) is not the issuer's directory."""
    if value is None:
        return f"the directory came without a Content-Type; expected {ISSUER_DIRECTORY_MEDIA_TYPE}"
    media_type = value.split(";", 1)[0].strip().lower()
    if media_type == ISSUER_DIRECTORY_MEDIA_TYPE or _JSON_MEDIA_TYPE.fullmatch(media_type):
        return None
    shown = _UNPRINTABLE.sub("?", value[:_MAX_SHOWN_CONTENT_TYPE])
    more = "..." if len(value) > _MAX_SHOWN_CONTENT_TYPE else ""
    return (
        f"the directory came as Content-Type {shown!r}{more}; expected "
        f"{ISSUER_DIRECTORY_MEDIA_TYPE} or JSON"
    )


def _freshness_lifetime(headers: Mapping[str, str]) -> float:
    """Seconds the answer stays fresh (RFC 9111 §4.2.1): max-age minus Age; no max-age, or
    no-cache / no-store, means none."""
    value = headers.get("cache-control", "")
    max_age: int | None = None
    for directive in value.split(","):
        name = directive.strip().lower()
        if name in ("no-cache", "no-store"):
            return 0.0
        match = _MAX_AGE.fullmatch(directive)
        if match and max_age is None:
            max_age = int(match.group(1))
    if max_age is None:
        return 0.0
    age_text = headers.get("age", "").strip()
    age = int(age_text) if age_text.isdigit() and len(age_text) <= 10 else 0
    return float(max(0, max_age - age))


def _etag(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > _MAX_ETAG_LENGTH or not _ETAG.fullmatch(value):
        return None
    return value


def _first_per_type(keys: Iterable[TokenKey]) -> tuple[TokenKey, ...]:
    """The first key of each token type, in the order the types first appear."""
    first: dict[int, TokenKey] = {}
    for key in keys:
        first.setdefault(key.token_type, key)
    return tuple(first.values())


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


__all__ = [
    "MAX_LISTED_KEYS",
    "DirectoryFetchError",
    "DirectoryRequest",
    "DirectoryResponse",
    "DirectoryState",
    "Fetcher",
    "IssuerKeys",
    "KeySelection",
    "KeySource",
    "ListedKey",
    "Refresh",
    "RefreshHooks",
    "RefreshResult",
]
