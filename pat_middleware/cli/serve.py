"""Run an ASGI app under a real uvicorn server in a background thread (demo and tests).

Importing this module imports uvicorn.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import uvicorn

Message = MutableMapping[str, Any]
#: An ASGI 3 application: ``await app(scope, receive, send)``.
ASGIApp = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]

STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 10.0


def reserve_port(host: str = "127.0.0.1", port: int = 0) -> tuple[socket.socket, int]:
    """A bound socket on ``port`` of ``host`` (0: a free one), and its port: the server
    started on it later cannot lose a race for the port, and its URL is known at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound: int = sock.getsockname()[1]
    return sock, bound


@contextmanager
def serve_asgi(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "warning",
    root_path: str = "",
    http: str = "auto",
    sock: socket.socket | None = None,
) -> Iterator[str]:
    """Serve ``app`` on ``port`` (default: a free one) of ``host``; yields the base URL
    (``http://host:port``). ``sock``: a socket from :func:`reserve_port` to serve on.
    ``root_path`` is uvicorn's ``--root-path``; ``http`` its HTTP
    implementation (``auto``, ``h11`` or ``httptools``).

    The socket is bound before uvicorn starts, so there is no race for the port. On exit the
    server is asked to stop and the thread is joined; an error inside the server thread is
    re-raised here.
    """
    if sock is None:
        sock, port = reserve_port(host, port)
    else:
        host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # leave the calling process's logging configuration alone
        log_level=log_level,
        access_log=False,
        ws="none",
        http=http,
        root_path=root_path,
        lifespan="auto",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as e:  # reported to the test thread below
            failures.append(e)

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if failures or not thread.is_alive():
                raise RuntimeError("uvicorn stopped during start-up") from (
                    failures[0] if failures else None
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"uvicorn did not start within {STARTUP_TIMEOUT} s")
            time.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT)
        sock.close()
        if thread.is_alive():
            raise RuntimeError("uvicorn did not shut down in time")
    if failures:
        raise RuntimeError("uvicorn failed while serving") from failures[0]
