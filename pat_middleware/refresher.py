"""Issuer directories over HTTP: an httpx fetcher and a background refresh thread.

:func:`attach` gives a :class:`~pat_middleware.discovery.KeySource` its fetcher, fetches
every directory once (so start-up knows whether keys exist) and, unless told otherwise,
starts a daemon thread that refreshes each directory when it is due or when a token named
an unknown key. The thread holds the source only weakly: it ends when the source (its
policy) is garbage-collected or closed. After a fork the child starts its own thread and
its own HTTP connection pool on its next request; nothing is shared with the parent.

This module imports httpx; :mod:`pat_middleware.policy` imports it only when some issuer
is configured with a directory.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator

import httpx

from . import __version__
from .discovery import (
    DirectoryFetchError,
    DirectoryRequest,
    DirectoryResponse,
    KeySource,
    RefreshHooks,
)
from .errors import IssuanceError
from .issuer.client import read_bounded
from .issuer.protocol import MAX_DIRECTORY_SIZE

logger = logging.getLogger("pat_middleware")

#: The thread sleeps at most this long between looks at the schedule.
MAX_SLEEP = 30.0
_MIN_SLEEP = 0.01
_HTTPX_ERRORS = (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError)
#: Sent with every directory request, so issuers can tell origins' refreshes apart.
USER_AGENT = f"pat-middleware/{__version__} (issuer key refresh)"
#: Live refreshers, so a forked child can reset them (see _after_fork_in_child).
_LIVE: weakref.WeakSet[_Refresher] = weakref.WeakSet()


class HttpFetcher:
    """GET a directory with httpx: redirects not followed, no content-coding, body at most
    64 KiB, each phase (connect, each read) within ``timeout``, and the body done within
    ``timeout`` of the start.

    One connection pool per process: a child after fork makes its own.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = httpx.Timeout(timeout)
        self._total = timeout
        self._client: httpx.Client | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HttpFetcher(timeout={self.timeout.read})"

    def _client_here(self) -> httpx.Client:
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                self._client = httpx.Client(
                    timeout=self.timeout,
                    follow_redirects=False,
                    # A compressed body is inflated before any size check could see it.
                    headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
                )
                self._pid = os.getpid()
            return self._client

    def __call__(self, request: DirectoryRequest) -> DirectoryResponse:
        client = self._client_here()
        deadline = time.monotonic() + self._total
        try:
            with client.stream("GET", request.url, headers=dict(request.headers)) as response:
                body = b""
                if response.status_code == httpx.codes.OK:
                    coding = response.headers.get("content-encoding", "").strip().lower()
                    if coding not in ("", "identity"):
                        raise DirectoryFetchError(
                            f"the directory came with Content-Encoding {coding[:32]!r}; "
                            "only identity is accepted"
                        )
                    # Raw bytes: nothing is inflated, so the size bound is the memory bound.
                    chunks = self._before(deadline, response.iter_raw())
                    body = read_bounded(chunks, MAX_DIRECTORY_SIZE, response)
                return DirectoryResponse(response.status_code, dict(response.headers), body)
        except _HTTPX_ERRORS as e:
            raise DirectoryFetchError(f"{type(e).__name__}: {e}") from e
        except IssuanceError as e:  # the body was over the bound
            raise DirectoryFetchError(str(e)) from e

    def _before(self, deadline: float, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """``chunks``, until ``deadline``: each read is bounded by the timeout, but a body
        trickling in would otherwise hold the refresh (and start-up) for as long as it lasts."""
        for chunk in chunks:
            if time.monotonic() > deadline:
                raise DirectoryFetchError(f"the directory took longer than {self._total:g} s")
            yield chunk

    def after_fork_in_child(self) -> None:
        """A fresh lock: a parent thread may have held this one at fork time."""
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._client is not None and self._pid == os.getpid():
                self._client.close()
            self._client = None


class _Refresher(RefreshHooks):
    """The background thread of one :class:`KeySource`."""

    def __init__(self, source: KeySource, fetcher: HttpFetcher, *, background: bool) -> None:
        self._source = weakref.ref(source)
        self._fetcher = fetcher
        self._background = background
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        weakref.finalize(source, self._stop_now, self._wake, self._stop)
        _LIVE.add(self)

    def ensure_running(self) -> None:
        if not self._background or self._stop.is_set():
            return
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(
                target=_run,
                args=(self._source, self._wake, self._stop),
                name="pat-middleware-key-refresh",
                daemon=True,
            )
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self._stop_now(self._wake, self._stop)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._fetcher.timeout.read or 5.0)
        self._fetcher.close()

    @staticmethod
    def _stop_now(wake: threading.Event, stop: threading.Event) -> None:
        stop.set()
        wake.set()

    def _after_fork_in_child(self) -> None:
        stopped = self._stop.is_set()  # a closed refresher stays closed in the child
        self._thread = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        if stopped:
            self._stop.set()
        self._start_lock = threading.Lock()
        self._fetcher.after_fork_in_child()
        source = self._source()
        if source is not None:
            source.reset_locks()
            weakref.finalize(source, self._stop_now, self._wake, self._stop)


def _run(source_ref: weakref.ref[KeySource], wake: threading.Event, stop: threading.Event) -> None:
    while not stop.is_set():
        source = source_ref()
        if source is None:
            return
        try:
            delay = source.refresh()
        except Exception as e:  # keep refreshing; one line, no traceback
            logger.warning("issuer key refresh: unexpected %s: %s", type(e).__name__, e)
            delay = MAX_SLEEP
        del source  # hold the source only weakly while asleep
        wake.wait(max(_MIN_SLEEP, min(delay, MAX_SLEEP)))
        wake.clear()


def _after_fork_in_child() -> None:
    for refresher in list(_LIVE):
        refresher._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


def attach(source: KeySource, *, background: bool = True) -> None:
    """Give ``source`` an HTTP fetcher, fetch every directory now, check that keys exist
    (``directory_require_keys``), then start the refresh thread unless ``background`` is
    false (then call ``source.refresh()`` yourself)."""
    fetcher = HttpFetcher(source.options.timeout)
    source.fetcher = fetcher
    refresher = _Refresher(source, fetcher, background=background)
    source.hooks = refresher
    source.refresh(force=True)
    try:
        source.check_start_up()
    except BaseException:
        refresher.close()
        raise
    refresher.ensure_running()


__all__ = ["MAX_SLEEP", "USER_AGENT", "HttpFetcher", "attach"]
