"""Every configured issuer's token keys, and the refreshes that keep them (RFC 9578 §4).

:class:`KeySource` holds every configured issuer (static keys, and a
:class:`~pat_middleware.discovery.directory_state.DirectoryState` each) and runs refreshes
through a :data:`~pat_middleware.discovery.fetch.Fetcher`, a coroutine: each issuer's refresh
is a task of its own, cut by cancellation at ``directory_timeout``, so no issuer waits for
another. The HTTP fetcher and the background thread live in
:mod:`pat_middleware.discovery.refresher`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import ConfigurationError
from ..settings import DiscoveryOptions, IssuerConfig
from .directory_state import DirectoryState, IssuerKeys
from .fetch import (
    DirectoryFetchError,
    Fetcher,
    Refresh,
    RefreshHooks,
    RefreshResult,
    run_in_own_loop,
    shown_url,
)

logger = logging.getLogger("pat_middleware")

_NEVER = math.inf


@dataclass(frozen=True, slots=True)
class KeySelection:
    """Every issuer's keys, valid until ``valid_until`` or until the source's version moves."""

    issuers: tuple[IssuerKeys, ...]
    version: int
    valid_until: float


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
                    out.append(IssuerKeys(issuer.name, key, issuer.keys))
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
        run_in_own_loop(lambda: self.refresh_async(force=force))
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


__all__ = ["KeySelection", "KeySource"]
