"""The replay-store interface: what the policy needs of a store, and nothing more."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..errors import StoreUnavailable


@runtime_checkable
class ReplayStore(Protocol):
    """Remembers spent keys (token nonces) for a TTL, atomically.

    * ``spend(key, ttl)`` records ``key`` for ``ttl`` seconds and returns True, exactly once
      per key within its TTL: of several concurrent callers (threads, tasks, processes and
      hosts sharing the store) one gets True, the others False. Synchronous: WSGI servers
      and :meth:`Policy.evaluate` call it.
    * ``spend_async(key, ttl)``, the same for :meth:`Policy.evaluate_async` (ASGI). A store
      whose spend does not wait on I/O (the memory store) may answer without suspending.
    * ``close()`` / ``aclose()`` give back connections (``aclose`` those of the running
      event loop). The store stays usable: a later spend connects again.

    A store that cannot answer raises :class:`StoreUnavailable`; callers fail closed (the
    token is not accepted). A store is built from its URL by a factory registered for the
    URL's scheme (:func:`~pat_middleware.stores.register_store`); the factory does no I/O,
    so URLs can be checked at start-up without reaching the store.
    """

    def spend(self, key: bytes, ttl: float) -> bool: ...
    async def spend_async(self, key: bytes, ttl: float) -> bool: ...
    def close(self) -> None: ...
    async def aclose(self) -> None: ...

@runtime_checkable
class PerProcessStore(ReplayStore, Protocol):
    """A store only this process sees (``memory://``): sound only while this process is the
    only one accepting the tokens (see :mod:`pat_middleware.policy.guard`)."""

    #: Names what this store remembers; new per store and in a forked child.
    @property
    def epoch(self) -> bytes: ...

    #: True in a process forked from the one that made the store.
    @property
    def forked(self) -> bool: ...


__all__ = [
    "PerProcessStore","ReplayStore", "StoreUnavailable"]
