"""In-process replay store: thread- and task-safe, expiring, bounded, fail-closed when full."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qs

from ..errors import ConfigurationError
from . import process as _process
from .base import StoreUnavailable

DEFAULT_MAX_ENTRIES = 1_000_000


class MemoryReplayStore:
    """Spent keys in a dict, oldest first, swept as they expire.

    Only one process sees it: use a shared store (Redis) when several workers or hosts accept
    the same tokens (a :class:`~pat_middleware.policy.Policy` refuses to accept tokens with
    it where it can tell that several processes serve). When ``max_entries`` live keys are
    held, new spends raise :class:`StoreUnavailable` instead of growing or forgetting
    (fail closed).
    """

    __slots__ = (
        "_born",
        "_clock",
        "_epoch",
        "_epoch_mark",
        "_expiry",
        "_full_sweep_at",
        "_lock",
        "_max_entries",
        "_sweep_at",
    )
    #: What it records is seen by this process only.
    per_process = True

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._clock = clock
        # key -> expiry time. Insertion order ~ expiry order, since TTLs are near-constant.
        self._expiry: dict[bytes, float] = {}
        self._lock = threading.Lock()
        self._sweep_at = 0.0
        self._full_sweep_at = 0.0
        self._born = self._epoch_mark = _process.current()
        self._epoch = secrets.token_bytes(16)

    @property
    def epoch(self) -> bytes:
        """16 random bytes naming what this store remembers: new for each store, and new in
        a forked child (whose copy records spends apart from the parent's). The policy
        derives its challenges' contexts with it, so a challenge is redeemable only where
        its spend would be recorded: never after a restart, in another worker, or here
        for a challenge from another process."""
        mark = _process.current()
        if self._epoch_mark is not mark:
            with self._lock:
                if self._epoch_mark is not mark:
                    self._epoch = secrets.token_bytes(16)
                    self._epoch_mark = mark
        return self._epoch

    @property
    def forked(self) -> bool:
        """True in a process forked from the one that made this store: the two copies
        record spends apart from then on."""
        return self._born is not _process.current()

    def __len__(self) -> int:
        return len(self._expiry)

    def __repr__(self) -> str:
        return f"MemoryReplayStore({len(self._expiry)}/{self._max_entries} entries)"

    def _sweep(self, now: float, *, full: bool = False) -> None:
        expiry = self._expiry
        if full:
            for key in [k for k, t in expiry.items() if t <= now]:
                del expiry[key]
            return
        while expiry:
            key = next(iter(expiry))
            if expiry[key] > now:
                break
            del expiry[key]

    def spend(self, key: bytes, ttl: float) -> bool:
        now = self._clock()
        with self._lock:
            if now >= self._sweep_at:
                self._sweep(now)
                self._sweep_at = now + 1.0
            expires = self._expiry.get(key)
            if expires is not None:
                if expires > now:
                    return False
                del self._expiry[key]
            if len(self._expiry) >= self._max_entries:
                # A full scan is O(n) under the lock: at most once a second while full.
                if now >= self._full_sweep_at:
                    self._sweep(now, full=True)
                    self._full_sweep_at = now + 1.0
                if len(self._expiry) >= self._max_entries:
                    raise StoreUnavailable("replay store is full", retry_after=int(ttl) or 1)
            self._expiry[key] = now + ttl
            return True

    async def spend_async(self, key: bytes, ttl: float) -> bool:
        # A dict update under a lock held for microseconds: never suspends, never blocks.
        return self.spend(key, ttl)

    def clear(self) -> None:
        """Forget every spend (benchmarks and tests reuse one store; never while serving:
        every token spent within its TTL would be accepted again)."""
        with self._lock:
            self._expiry.clear()

    def close(self) -> None:
        """Nothing to give back: the spends stay, and so does the store."""

    async def aclose(self) -> None:
        """Nothing to give back (see :meth:`close`)."""


def open_memory_store(
    url: str, *, setting: str, clock: Callable[[], float] = time.monotonic
) -> MemoryReplayStore:
    """The ``memory://`` factory: ``memory://`` or ``memory://?max_entries=N``."""
    query = parse_qs(url.partition("?")[2])
    if set(query) - {"max_entries"}:
        raise ConfigurationError(setting, "unknown memory:// option; the one known is max_entries")
    max_entries = DEFAULT_MAX_ENTRIES
    if "max_entries" in query:
        try:
            max_entries = int(query["max_entries"][-1])
        except ValueError as e:
            raise ConfigurationError(setting, "max_entries must be an integer") from e
        if max_entries < 1:
            raise ConfigurationError(setting, "max_entries must be at least 1")
    return MemoryReplayStore(max_entries=max_entries, clock=clock)


__all__ = ["DEFAULT_MAX_ENTRIES", "MemoryReplayStore", "open_memory_store"]
