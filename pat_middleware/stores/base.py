"""The replay-store interface and the URL-based factory."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qs

from ..errors import ConfigurationError, PrivateTokenError

DEFAULT_MAX_ENTRIES = 1_000_000
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}")


class StoreUnavailable(PrivateTokenError):
    """The store could not record or check a key (down, slow, or full). Fail closed."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        self.retry_after = retry_after
        super().__init__(message)


@runtime_checkable
class ReplayStore(Protocol):
    """Synchronous replay store (WSGI and the sans-IO policy use this form)."""

    def reserve(self, key: bytes, ttl: float) -> bool: ...
    def commit(self, key: bytes) -> None: ...
    def release(self, key: bytes) -> None: ...


@runtime_checkable
class AsyncReplayStore(Protocol):
    """Asynchronous replay store (ASGI uses this form when the store has it)."""

    async def reserve_async(self, key: bytes, ttl: float) -> bool: ...
    async def commit_async(self, key: bytes) -> None: ...
    async def release_async(self, key: bytes) -> None: ...


def open_replay_store(
    url: str, *, setting: str = "replay_store", clock: Callable[[], float] | None = None
) -> ReplayStore:
    """Build a store from its URL: ``memory://`` (``?max_entries=N``), or Redis
    (``redis://``, ``rediss://``, ``unix://``; needs the ``redis`` extra).

    Errors quote no part of the URL but a known scheme or option name: a Redis URL may
    hold a password, and one with an unencoded ``?``, ``#`` or ``@`` parses wrongly.

    ``clock`` is what a memory store expires its entries on (the policy passes its own,
    the one its challenge windows are judged on); Redis expires keys on its own."""
    head, colon, _ = url.partition(":")
    scheme = head.lower() if colon and _SCHEME.fullmatch(head) else ""
    if scheme == "memory":
        from .memory import MemoryReplayStore

        query = parse_qs(url.partition("?")[2])
        if set(query) - {"max_entries"}:
            raise ConfigurationError(
                setting, "unknown memory:// option; the one known is max_entries"
            )
        max_entries = DEFAULT_MAX_ENTRIES
        if "max_entries" in query:
            try:
                max_entries = int(query["max_entries"][-1])
            except ValueError as e:
                raise ConfigurationError(setting, "max_entries must be an integer") from e
            if max_entries < 1:
                raise ConfigurationError(setting, "max_entries must be at least 1")
        if clock is None:
            return MemoryReplayStore(max_entries=max_entries)
        return MemoryReplayStore(max_entries=max_entries, clock=clock)
    if scheme in ("redis", "rediss", "unix"):
        from .redis import (
            RedisReplayStore,  # imports redis-py: only when asked for
        )

        return RedisReplayStore.from_url(url, setting=setting)
    raise ConfigurationError(
        setting,
        "unknown store URL scheme: a store URL starts with memory://, redis://, rediss:// or unix://",
    )
