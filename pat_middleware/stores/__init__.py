"""Replay (double-spend) stores behind one small interface, opened from a URL.

A store remembers spent keys (token nonces) for a TTL: ``spend(key, ttl)`` (and
``spend_async``) records a key and returns True exactly once per key within its TTL, so of
several concurrent callers one wins. Stores raise :class:`StoreUnavailable` when they
cannot answer; callers fail closed.

:func:`open_replay_store` builds one from its URL with the factory registered for the
URL's scheme (:func:`register_store`); built in: ``memory://``, ``redis://``,
``rediss://``, ``unix://``, ``redis+cluster://``, ``redis+sentinel://`` and
``django-cache://``, each imported only when a URL of its scheme is opened.
"""

from __future__ import annotations

from .base import PerProcessStore, ReplayStore, StoreUnavailable
from .memory import MemoryReplayStore
from .registry import (
    StoreFactory,
    check_store_url,
    open_replay_store,
    register_store,
    registered_schemes,
)

__all__ = [
    "MemoryReplayStore",
    "PerProcessStore",
    "ReplayStore",
    "StoreFactory",
    "StoreUnavailable",
    "check_store_url",
    "open_replay_store",
    "register_store",
    "registered_schemes",
]
