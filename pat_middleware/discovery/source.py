"""The refresh runner every key source shares: due documents fetched at once, each within
one deadline, one fetch per document at a time.

:class:`RefreshingSource` holds the :class:`~.resource.ResourceState` of each fetched
document (issuer directories in :class:`~.key_source.KeySource`, PST record-key JWK Sets in
:class:`~.record_keys.RecordKeySource`) and runs their refreshes through a
:data:`~.fetch.Fetcher`, a coroutine: each document's refresh is a task of its own, cut by
cancellation at ``directory_timeout``, so no issuer waits for another. The HTTP fetcher and
the background thread live in :mod:`pat_middleware.discovery.refresher` and work with any
source.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import Generic, TypeVar

from ..errors import ConfigurationError
from ..settings import DiscoveryOptions
from .fetch import (
    DirectoryFetchError,
    Fetcher,
    Refresh,
    RefreshHooks,
    RefreshResult,
    run_in_own_loop,
    shown_url,
)
from .resource import ResourceState

logger = logging.getLogger("pat_middleware")

_NEVER = math.inf
_S = TypeVar("_S", bound=ResourceState)


class RefreshingSource(Generic[_S]):
    """Documents kept fresh, by name. Thread-safe. ``version`` moves whenever keys change.

    Refreshes run through ``fetcher`` (set by :mod:`pat_middleware.discovery.refresher`);
    ``hooks`` lets that module start its thread lazily and be woken. Each document's refresh
    (its URLs in turn, after a 404) must end within ``directory_timeout``: past it, it is
    cancelled and counts as a failed fetch of that document alone. A document is fetched by
    one refresh at a time (:meth:`claim_due` marks it), whoever asks.
    """

    def __init__(
        self,
        states: Sequence[_S],
        options: DiscoveryOptions,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options
        self.clock = clock
        self.version = 0
        self.fetcher: Fetcher | None = None
        self.hooks: RefreshHooks | None = None
        self._states: dict[str, _S] = {state.name: state for state in states}
        self._lock = threading.Lock()  # guards the states and _fetching
        self._fetching: set[str] = set()  # documents whose refresh is under way
        #: Documents an unknown key asked to refresh while one was under way: once more after.
        self._again: set[str] = set()

    @property
    def discovers(self) -> bool:
        """True when some keys come from a fetched document."""
        return bool(self._states)

    @property
    def states(self) -> tuple[_S, ...]:
        return tuple(self._states.values())

    def reset_locks(self) -> None:
        """Fresh locks, for a child process: a lock held by a parent thread at fork time
        would stay held forever."""
        self._lock = threading.Lock()
        self._fetching = set()  # the parent's fetches do not go on in this process
        self._again = set()
        self.version += 1  # readers rebuild their snapshots, which restarts the refresher

    def refresh(self, *, force: bool = False) -> float:
        """Fetch every document that is due (every one with ``force``), all at once, and
        wait until each has answered or met its deadline. Returns the seconds until the next
        one is due. Runs its own event loop, in a helper thread (the caller may be inside
        one already). A document the background refresher is fetching is left to it."""
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

    def claim_due(self, *, force: bool = False) -> list[_S]:
        """The documents due now (every one with ``force``) that no refresh is fetching,
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
        """Seconds until the next document that no refresh is fetching is due."""
        with self._lock:
            idle = [s.next_refresh for s in self._states.values() if s.name not in self._fetching]
            return min(idle, default=_NEVER) - self.clock()

    async def refresh_claimed(self, state: _S, fetch: Fetcher) -> None:
        """Refresh one document from :meth:`claim_due`, within ``directory_timeout``."""
        try:
            await self._refresh_one(state, fetch)
        finally:
            with self._lock:
                self._fetching.discard(state.name)
                if state.name in self._again:
                    self._again.discard(state.name)
                    state.next_refresh = min(state.next_refresh, self.clock())

    async def _refresh_one(self, state: _S, fetch: Fetcher) -> None:
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
        except Exception as e:  # a fetcher's bug fails this document alone, and is retried
            first_line = (str(e).splitlines() or [""])[0][:200]
            with self._lock:
                result = state.fail(f"unexpected {type(e).__name__}: {first_line}", self.clock())
        with self._lock:
            if result.outcome is Refresh.CHANGED:
                self.version += 1
            _log_refresh(state, url, result, self.clock())

    def key_missing(self, now: float, names: Collection[str] | None = None) -> None:
        """A key id nobody knows was seen: ask for a refresh of every document (only those
        of ``names`` when given), each at most once per ``directory_unknown_key_refresh``
        seconds. Never blocks on the network."""
        if not self._states:
            return
        with self._lock:
            wanted = (
                self.states
                if names is None
                else [self._states[n] for n in names if n in self._states]
            )
            requested = [state for state in wanted if state.request_refresh(now)]
            # A fetch under way may have read the document before it listed the key.
            self._again.update(s.name for s in requested if s.name in self._fetching)
        if requested and self.hooks is not None:
            self.hooks.wake()

    def check_start_up(self) -> None:
        """Raise :class:`ConfigurationError` for a document that gave no key, unless
        ``directory_require_keys`` is false (then log one warning per document)."""
        for state in self.states:
            if state.has_keys:
                continue
            problem = (
                f"no {state.key_noun} could be fetched from {shown_url(state.url)} "
                f"({state.last_error})"
            )
            if self.options.require_keys:
                raise ConfigurationError(
                    state.setting,
                    f"{problem}; set directory_require_keys = false to start without keys "
                    f"({state.without_keys})",
                )
            logger.warning("issuer %s: %s; starting without its keys", state.name, problem)

    def ensure_running(self) -> None:
        if self.hooks is not None:
            self.hooks.ensure_running()

    def close(self) -> None:
        if self.hooks is not None:
            self.hooks.close()


def _log_refresh(state: ResourceState, url: str, result: RefreshResult, now: float) -> None:
    if result.outcome is Refresh.FAILED:
        logger.warning(
            "issuer %s: %s refresh from %s failed: %s; keeping %d key(s), next try in %d s",
            state.name,
            state.noun,
            shown_url(url),
            result.detail,
            state.key_count(),
            max(0, round(state.next_refresh - now)),
        )
    elif result.outcome is Refresh.CHANGED:
        logger.info("issuer %s: %s", state.name, state.describe(now))


__all__ = ["RefreshingSource"]
