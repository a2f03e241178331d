"""Replay (double-spend) stores behind one small interface.

A store remembers spent keys (token nonces) for a TTL. The contract:

* ``reserve(key, ttl)`` atomically claims ``key``; it returns False when the key is already
  reserved or committed, so exactly one of several concurrent callers wins.
* ``commit(key)`` makes a reservation final; ``release(key)`` gives it back (the token was
  not accepted after all, so its nonce is not burnt).

Stores raise :class:`StoreUnavailable` when they cannot answer; callers fail closed.
"""

from __future__ import annotations

from .base import (
    AsyncReplayStore,
    ReplayStore,
    StoreUnavailable,
    open_replay_store,
)
from .memory import MemoryReplayStore

__all__ = [
    "AsyncReplayStore",
    "MemoryReplayStore",
    "ReplayStore",
    "StoreUnavailable",
    "open_replay_store",
]
