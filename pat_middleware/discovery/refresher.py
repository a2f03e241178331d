"""Key documents over HTTP: an httpx (asyncio) fetcher and a background refresh thread.

:func:`attach` gives a key source (a :class:`~pat_middleware.discovery.KeySource` of issuer
directories, a :class:`~pat_middleware.discovery.RecordKeySource` of PST record-key JWK Sets:
any :class:`~pat_middleware.discovery.source.RefreshingSource`) its fetcher, fetches every
document once, all at once (so start-up knows whether keys exist, and lasts at most about
``directory_timeout``) and, unless told otherwise, starts a daemon thread that refreshes
each document when it is due or when a token or record named an unknown key.

The thread runs an asyncio event loop; each issuer's refresh is a task of its own, so a
slow or hanging issuer delays no other, and the key source cancels each one at its
deadline, which closes its connection. The thread holds the source only weakly: it ends
when the source (its policy) is garbage-collected or closed. After a fork the child starts
its own thread on its next request; nothing is shared with the parent.

This module imports httpx; :mod:`pat_middleware.policy` imports it only when some issuer
is configured with a document to fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import threading
import weakref
from typing import Any

import httpx

from .._version import __version__
from .fetch import (
    DirectoryFetchError,
    DirectoryRequest,
    DirectoryResponse,
    RefreshHooks,
    run_in_new_loop,
)
from .source import RefreshingSource

logger = logging.getLogger("pat_middleware")

#: The thread looks at the schedule at least this often.
MAX_SLEEP = 30.0
_MIN_SLEEP = 0.01
#: How long close() waits for the thread to cancel its fetches and end.
_CLOSE_WAIT = 5.0
_HTTPX_ERRORS = (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError)
#: Sent with every request, so issuers can tell origins' refreshes apart.
USER_AGENT = f"pat-middleware/{__version__} (issuer key refresh)"
#: Live refreshers, so a forked child can reset them (see _after_fork_in_child).
_LIVE: weakref.WeakSet[_Refresher] = weakref.WeakSet()


class HttpFetcher:
    """GET a document with an :class:`httpx.AsyncClient`: redirects not followed, no
    content-coding, body at most the request's ``max_size`` (64 KiB) read raw, each phase
    within ``timeout``.

    The whole fetch has no deadline here: the key source cancels it at
    ``directory_timeout``. Each fetch has a client (one connection) of its own, so nothing
    is shared between event loops, threads or a forked child; the TLS settings are built
    once.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = httpx.Timeout(timeout)
        self._tls: ssl.SSLContext = httpx.create_ssl_context()

    def __repr__(self) -> str:
        return f"HttpFetcher(timeout={self.timeout.read})"

    async def __call__(self, request: DirectoryRequest) -> DirectoryResponse:
        try:
            async with (
                httpx.AsyncClient(
                    timeout=self.timeout,
                    verify=self._tls,
                    follow_redirects=False,
                    # A compressed body is inflated before any size check could see it.
                    headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
                ) as client,
                client.stream("GET", request.url, headers=dict(request.headers)) as response,
            ):
                body = b""
                if response.status_code == httpx.codes.OK:
                    coding = response.headers.get("content-encoding", "").strip().lower()
                    if coding not in ("", "identity"):
                        raise DirectoryFetchError(
                            f"the {request.noun} came with Content-Encoding {coding[:32]!r}; "
                            "only identity is accepted"
                        )
                    body = await _read_bounded(response, request)
                return DirectoryResponse(response.status_code, dict(response.headers), body)
        except _HTTPX_ERRORS as e:
            raise DirectoryFetchError(f"{type(e).__name__}: {e}") from e


async def _read_bounded(response: httpx.Response, request: DirectoryRequest) -> bytes:
    """The raw body (nothing inflated: the size bound is the memory bound), or
    :class:`DirectoryFetchError` as soon as it passes ``request.max_size``."""
    limit = request.max_size
    too_long = f"the {request.noun} is longer than {limit} bytes"
    declared = response.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:  # not "²"
        raise DirectoryFetchError(too_long)
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > limit:
            raise DirectoryFetchError(too_long)
    return bytes(body)


class _Control:
    """Stop and wake one refresher's event loop, from any thread or a finalizer. Never
    blocks: waking writes one byte to the loop's self-pipe."""

    def __init__(self, *, stopped: bool = False) -> None:
        self._stopped = threading.Event()
        if stopped:
            self._stopped.set()
        self._target: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def bind(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        self._target = (loop, event)

    def unbind(self) -> None:
        self._target = None

    def wake(self) -> None:
        target = self._target
        if target is None:
            return  # not running yet: it looks at the schedule when it starts
        loop, event = target
        with contextlib.suppress(RuntimeError):  # the loop has just closed
            loop.call_soon_threadsafe(event.set)

    def stop(self) -> None:
        self._stopped.set()
        self.wake()


class _Refresher(RefreshHooks):
    """The background thread of one key source."""

    def __init__(self, source: RefreshingSource[Any], *, background: bool) -> None:
        self._source = weakref.ref(source)
        self._background = background
        self._thread: threading.Thread | None = None
        self._control = _Control()
        self._start_lock = threading.Lock()
        weakref.finalize(source, self._control.stop)
        _LIVE.add(self)

    def ensure_running(self) -> None:
        if not self._background or self._control.stopped:
            return
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(
                target=_run,
                args=(self._source, self._control),
                name="pat-middleware-key-refresh",
                daemon=True,
            )
            self._thread.start()

    def wake(self) -> None:
        self._control.wake()

    def close(self) -> None:
        self._control.stop()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=_CLOSE_WAIT)

    def _after_fork_in_child(self) -> None:
        # The parent's loop is not ours (waking it would write to the parent's self-pipe);
        # a closed refresher stays closed in the child.
        self._control.unbind()
        self._control = _Control(stopped=self._control.stopped)
        self._thread = None
        self._start_lock = threading.Lock()
        source = self._source()
        if source is not None:
            source.reset_locks()
            weakref.finalize(source, self._control.stop)


def _run(source_ref: weakref.ref[RefreshingSource[Any]], control: _Control) -> None:
    try:
        run_in_new_loop(_refresh_forever(source_ref, control))
    except Exception as e:  # pragma: no cover - _refresh_forever catches what it can
        logger.warning("issuer key refresh stopped: unexpected %s: %s", type(e).__name__, e)


async def _refresh_forever(
    source_ref: weakref.ref[RefreshingSource[Any]], control: _Control
) -> None:
    """Start a task for each document as it falls due; wake for the next due one, a
    request to refresh early, a finished task, or stop. Cancels what runs on the way out."""
    woken = asyncio.Event()
    control.bind(asyncio.get_running_loop(), woken)
    running: set[asyncio.Task[None]] = set()
    waiting: asyncio.Task[bool] | None = None
    try:
        while not control.stopped:
            if waiting is None or waiting.done():
                woken.clear()  # before looking at the schedule: a later wake is kept
                waiting = asyncio.create_task(woken.wait())
            source = source_ref()
            if source is None:
                return
            try:
                fetch = source.fetcher
                if fetch is not None:
                    for state in source.claim_due():
                        running.add(asyncio.create_task(source.refresh_claimed(state, fetch)))
                delay = source.seconds_until_due()
            except Exception as e:  # keep refreshing; one line, no traceback
                logger.warning("issuer key refresh: unexpected %s: %s", type(e).__name__, e)
                delay = MAX_SLEEP
            del source  # hold the source only weakly while waiting
            done, _ = await asyncio.wait(
                {waiting, *running},
                timeout=max(_MIN_SLEEP, min(delay, MAX_SLEEP)),
                return_when=asyncio.FIRST_COMPLETED,
            )
            running.difference_update(done)
    finally:
        control.unbind()
        tasks = [*running, *([waiting] if waiting is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _after_fork_in_child() -> None:
    for refresher in list(_LIVE):
        refresher._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


def attach(source: RefreshingSource[Any], *, background: bool = True) -> None:
    """Give ``source`` an HTTP fetcher, fetch every document now (all at once, each within
    ``directory_timeout``), check that keys exist (``directory_require_keys``), then start
    the refresh thread unless ``background`` is false (then call ``source.refresh()``
    yourself)."""
    source.fetcher = HttpFetcher(source.options.timeout)
    refresher = _Refresher(source, background=background)
    source.hooks = refresher
    source.refresh(force=True)
    try:
        source.check_start_up()
    except BaseException:
        refresher.close()
        raise
    refresher.ensure_running()


__all__ = ["MAX_SLEEP", "USER_AGENT", "HttpFetcher", "attach"]
