"""Store URLs to stores: one factory per URL scheme, built-in ones imported only when used.

A factory takes the whole URL and builds the store without I/O (it connects on the first
spend), raising :class:`~pat_middleware.errors.ConfigurationError` naming ``setting`` for a
URL it refuses. Third parties add a scheme with :func:`register_store`, as a callable or as
``"package.module:function"`` (imported on the first URL with that scheme)::

    register_store("dynamodb", "my_package.replay:open_dynamodb_store")

Nothing here imports a store client: ``memory://`` is a dict, and the clients of the others
(redis-py, Django) are imported by their modules when a URL of theirs is opened.
"""

from __future__ import annotations

import importlib
import re
import threading
import time
from collections.abc import Callable
from typing import Protocol

from ..errors import ConfigurationError
from .base import ReplayStore

#: A URL scheme: RFC 3986's characters, at most 32 of them.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}")
_REDIS = "pat_middleware.stores.redis:open_redis_store"
#: The built-in schemes and where their factories are, imported on first use.
BUILTIN_STORES = {
    "memory": "pat_middleware.stores.memory:open_memory_store",
    "redis": _REDIS,
    "rediss": _REDIS,
    "unix": _REDIS,
    "redis+cluster": _REDIS,
    "rediss+cluster": _REDIS,
    "redis+sentinel": _REDIS,
    # A store, but Django's: it lives with the Django integration and imports Django lazily.
    "django-cache": "pat_middleware.integrations.django.store:open_django_cache_store",
}


class StoreFactory(Protocol):
    """Builds a store from its URL, without I/O. ``clock`` is the policy's (seconds); a store
    that expires keys on a server's clock ignores it."""

    def __call__(self, url: str, *, setting: str, clock: Callable[[], float]) -> ReplayStore: ...


_factories: dict[str, StoreFactory | str] = dict(BUILTIN_STORES)
_lock = threading.Lock()


def register_store(scheme: str, factory: StoreFactory | str, *, replace: bool = False) -> None:
    """Make ``scheme://`` URLs open with ``factory`` (a callable, or ``"module:function"``
    to import on first use). A scheme already registered (built-in ones included) is
    refused with :class:`ValueError` unless ``replace`` is true."""
    if not _SCHEME.fullmatch(scheme):
        raise ValueError(f"not a URL scheme: {scheme!r}")
    if isinstance(factory, str):
        module, colon, name = factory.partition(":")
        if not (module and colon and name):
            raise ValueError(f"a factory path is 'package.module:function', not {factory!r}")
    elif not callable(factory):
        raise TypeError("factory must be a callable or a 'package.module:function' path")
    key = scheme.lower()
    with _lock:
        if key in _factories and not replace:
            raise ValueError(f"{key}:// is registered already; pass replace=True to replace it")
        _factories[key] = factory


def registered_schemes() -> tuple[str, ...]:
    """The schemes store URLs may have, sorted."""
    with _lock:
        return tuple(sorted(_factories))


def url_scheme(url: str) -> str:
    """The URL's scheme, lower case; "" when it has none that could be one (then nothing of
    the URL is safe to quote)."""
    head, colon, _ = url.partition(":")
    return head.lower() if colon and _SCHEME.fullmatch(head) else ""


def _factory(scheme: str, setting: str) -> StoreFactory:
    with _lock:
        entry = _factories.get(scheme) if scheme else None
    if entry is None:
        # Not quoted: a URL without a known scheme may be a password pasted in whole.
        known = ", ".join(f"{s}://" for s in registered_schemes())
        raise ConfigurationError(
            setting, f"unknown store URL scheme: a store URL starts with one of {known}"
        )
    if not isinstance(entry, str):
        return entry
    module_name, _, name = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigurationError(
            setting, f"the {scheme}:// replay store cannot be loaded ({type(e).__name__}: {e})"
        ) from e
    loaded: StoreFactory = getattr(module, name)
    return loaded


def open_replay_store(
    url: str,
    *,
    setting: str = "replay_store",
    clock: Callable[[], float] = time.monotonic,
) -> ReplayStore:
    """Build the store ``url`` names with the factory registered for its scheme.

    Built in: ``memory://`` (``?max_entries=N``); Redis: ``redis://``, ``rediss://``,
    ``unix://``, ``redis+cluster://``, ``redis+sentinel://`` (the ``redis`` extra);
    ``django-cache://ALIAS`` (a Django cache whose ``add`` is atomic across processes).
    Errors name ``setting`` and quote no part of the URL but its scheme and known option
    names: a URL may hold a password. ``clock`` is what a memory store expires its entries
    on (the policy passes the one its challenge windows are judged on)."""
    return _factory(url_scheme(url), setting)(url, setting=setting, clock=clock)


def check_store_url(url: str, *, setting: str = "replay_store") -> str:
    """Refuse at start-up a URL no store would open (unknown scheme, bad option, missing
    client library); returns its scheme. Builds the store and closes it: no I/O."""
    open_replay_store(url, setting=setting).close()
    return url_scheme(url)


__all__ = [
    "BUILTIN_STORES",
    "StoreFactory",
    "check_store_url",
    "open_replay_store",
    "register_store",
    "registered_schemes",
    "url_scheme",
]
