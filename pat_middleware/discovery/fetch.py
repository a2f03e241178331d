"""What a fetch is and how one runs, for every document discovery keeps fresh.

A fetch is a :class:`DirectoryRequest` (a URL and request headers) answered by a
:class:`DirectoryResponse` or a :class:`DirectoryFetchError`; a :data:`Fetcher` performs it as
a coroutine. :class:`RefreshResult` says what an answer did to the state that asked for it;
:class:`RefreshHooks` is what a key source asks of a background refresher. The helpers run a
refresh in an event loop of its own and show a URL without its secrets.
"""

from __future__ import annotations

import asyncio
import enum
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..core.directory import MAX_DIRECTORY_SIZE
from ..errors import DirectoryFetchError

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class DirectoryRequest:
    """What to GET next: the URL and the request headers (Accept, If-None-Match), the most
    body bytes to read, and what the document is called in errors."""

    url: str
    headers: tuple[tuple[str, str], ...]
    max_size: int = MAX_DIRECTORY_SIZE
    noun: str = "directory"


@dataclass(frozen=True, slots=True)
class DirectoryResponse:
    """An HTTP answer to a :class:`DirectoryRequest`. Header names in any case."""

    status: int
    headers: Mapping[str, str]
    body: bytes = field(default=b"", repr=False)


#: Performs a :class:`DirectoryRequest`; raises :class:`DirectoryFetchError` when no answer
#: arrives. The body need only be read for status 200, at most ``max_size`` bytes of it. A
#: coroutine: the key source cancels it at the deadline, so it must give up its connection
#: when cancelled.
Fetcher = Callable[[DirectoryRequest], Awaitable[DirectoryResponse]]


class Refresh(enum.Enum):
    """What one answer did to the state."""

    CHANGED = "changed"  # new keys or not-before values: rebuild what depends on them
    UNCHANGED = "unchanged"  # a 200 with the same keys
    NOT_MODIFIED = "not_modified"  # a 304: keys kept, freshness renewed
    RETRY = "retry"  # 404 at a URL with a fallback: request again now, at the next URL
    FAILED = "failed"  # last good keys kept; detail says why


@dataclass(frozen=True, slots=True)
class RefreshResult:
    outcome: Refresh
    detail: str = ""


class RefreshHooks:
    """What a key source asks of a background refresher. The default does nothing."""

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


def run_in_own_loop(make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
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


__all__ = [
    "DirectoryFetchError",
    "DirectoryRequest",
    "DirectoryResponse",
    "Fetcher",
    "Refresh",
    "RefreshHooks",
    "RefreshResult",
    "run_in_new_loop",
    "run_in_own_loop",
    "shown_url",
]
