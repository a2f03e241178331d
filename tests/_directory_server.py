"""A loopback HTTP server for directory fetches that can answer slowly, over real sockets.

Each connection gets its own thread and one answer (``Connection: close``). An answer is a
function of the :class:`Exchange`: it writes raw bytes, and may pause between writes (a
pause ends early, returning False, when the server stops). A write to a client that gave
up raises ``OSError``, which ends the answer quietly.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

DIRECTORY_MEDIA_TYPE = "application/private-token-issuer-directory"


@dataclass
class Exchange:
    """One request: its path, and the socket to answer on."""

    path: str
    sock: socket.socket
    stop: threading.Event

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds``; False when the server is stopping instead."""
        return not self.stop.wait(seconds)


Answer = Callable[[Exchange], None]


@dataclass
class Server:
    url: str
    #: (arrival time on the monotonic clock, path) per request.
    hits: list[tuple[float, str]] = field(default_factory=list)
    #: (opened, closed) per connection, monotonic; closed is None while it is open.
    connections: list[list[float | None]] = field(default_factory=list)

    @property
    def open_connections(self) -> int:
        return sum(1 for _, closed in self.connections if closed is None)


def head(status: str = "200 OK", *headers: tuple[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Connection: close", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def document(
    body: bytes, content_type: str = DIRECTORY_MEDIA_TYPE, cache_control: str = "max-age=1"
) -> Answer:
    """A 200 with ``body``, all at once."""

    def answer(exchange: Exchange) -> None:
        exchange.send(
            head(
                "200 OK",
                ("Content-Type", content_type),
                ("Cache-Control", cache_control),
                ("Content-Length", str(len(body))),
            )
            + body
        )

    return answer


def trickled_headers(every: float = 0.3, lines: int = 20) -> Answer:
    """A status line at once, then one header line every ``every`` seconds: each read
    arrives well within any per-read timeout, and the head never ends (for ``lines``)."""

    def answer(exchange: Exchange) -> None:
        exchange.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        for i in range(lines):
            if not exchange.pause(every):
                return
            exchange.send(b"X-Slow-%d: 1\r\n" % i)

    return answer


def trickled_body(body: bytes, every: float = 0.3, count: int = 20) -> Answer:
    """A complete head at once, then the body one byte every ``every`` seconds."""

    def answer(exchange: Exchange) -> None:
        exchange.send(
            head("200 OK", ("Content-Type", "application/json"), ("Content-Length", str(len(body))))
        )
        for byte in body[:count]:
            if not exchange.pause(every):
                return
            exchange.send(bytes([byte]))

    return answer


class Switch:
    """An answer that can be changed while the server runs."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer

    def __call__(self, exchange: Exchange) -> None:
        self.answer(exchange)


@contextmanager
def directory_server(answer: Answer) -> Iterator[Server]:
    """Serve ``answer`` to every request until the block ends."""
    stop = threading.Event()
    server_state = Server(url="")
    lock = threading.Lock()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with lock:
                connection: list[float | None] = [time.monotonic(), None]
                server_state.connections.append(connection)
            try:
                data = b""
                while b"\r\n\r\n" not in data and len(data) < 65536:
                    chunk = self.request.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                path = data.split(b" ", 2)[1].decode("latin-1")
                with lock:
                    server_state.hits.append((time.monotonic(), path))
                answer(Exchange(path, self.request, stop))
            except OSError:
                pass  # the client gave up
            finally:
                connection[1] = time.monotonic()

    class ThreadingServer(socketserver.ThreadingTCPServer):
        daemon_threads = True
        block_on_close = False
        allow_reuse_address = True

    server = ThreadingServer(("127.0.0.1", 0), Handler)
    server_state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield server_state
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


__all__ = [
    "DIRECTORY_MEDIA_TYPE",
    "Answer",
    "Exchange",
    "Server",
    "Switch",
    "directory_server",
    "document",
    "head",
    "trickled_body",
    "trickled_headers",
]
