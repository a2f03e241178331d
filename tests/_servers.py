"""Real servers for tests: uvicorn in a background thread (see pat_middleware.cli.serve), and
`pat-middleware` command-line servers as subprocesses."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from pat_middleware.cli.serve import ASGIApp, serve_asgi

if TYPE_CHECKING:
    from pat_middleware.policy import Policy

CLI = [sys.executable, "-m", "pat_middleware.cli"]
READY_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def cli_process(
    args: list[str],
    ready_url: str,
    *,
    env: dict[str, str] | None = None,
    output: list[str] | None = None,
) -> Iterator[subprocess.Popen[str]]:
    """Run ``pat-middleware ARGS`` until the block ends; yields once ``ready_url`` answers.

    On exit the process is terminated (killed if it lingers); its combined stdout and stderr
    is appended to ``output`` when given."""
    with server_process(CLI + args, ready_url, env=env, output=output, name=args[0]) as proc:
        yield proc


@contextmanager
def server_process(
    argv: list[str],
    ready_url: str,
    *,
    env: dict[str, str] | None = None,
    output: list[str] | None = None,
    cwd: str | None = None,
    name: str = "the server",
) -> Iterator[subprocess.Popen[str]]:
    """:func:`cli_process` for any command line (a gunicorn, a uvicorn)."""
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd
    )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                raise RuntimeError(f"{name} exited early:\n{out}")
            try:
                httpx.get(ready_url, timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate(timeout=5)
        if output is not None:
            output.append(out or "")


def served_both_ways(build: Callable[..., Any]) -> Any:
    """A module-scoped ``base_url`` fixture: the app ``build(policy, middleware=...)`` makes
    of the module's ``policy`` fixture, served by uvicorn twice: behind PrivateTokenMiddleware
    (``middleware=True``), then alone, the integration holding the policy itself."""

    @pytest.fixture(scope="module", params=["middleware", "alone"])
    def base_url(request: pytest.FixtureRequest, policy: Policy) -> Iterator[str]:
        with serve_asgi(build(policy, middleware=request.param == "middleware")) as url:
            yield url

    return base_url


GUNICORN = [sys.executable, "-m", "gunicorn"]


@contextmanager
def gunicorn_process(
    app: str,
    *,
    env: dict[str, str],
    args: tuple[str, ...] = (),
    ready_path: str = "/public",
) -> Iterator[tuple[str, int]]:
    """Serve the WSGI ``app`` (gunicorn's ``module:callable`` spelling) with a real gunicorn
    on a free loopback port until the block ends; yields ``(host, port)`` once it answers."""
    port = free_port()
    argv = [*GUNICORN, "-b", f"127.0.0.1:{port}", "-w", "1", "--log-level", "warning", *args]
    ready_url = f"http://127.0.0.1:{port}{ready_path}"
    with server_process([*argv, app], ready_url, env=env, name=f"gunicorn {app}"):
        yield "127.0.0.1", port


def stop_process(proc: subprocess.Popen[Any], timeout: float = 5.0) -> None:
    """Terminate a server process a test started, and kill it when it will not stop."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None


def raw_request(
    address: tuple[str, int],
    target: str,
    *,
    method: str = "GET",
    headers: tuple[tuple[str, str], ...] = (),
    host: str | None = None,
    raw_headers: tuple[tuple[str, bytes], ...] = (),
) -> RawResponse:
    """Send one request with exactly this request target (no client-side normalisation of
    slashes, dot segments or percent-encoding, unlike httpx), and read the whole answer.
    ``host`` is the Host header (default: the address); ``raw_headers`` go out byte for
    byte after the others (for values that are not UTF-8 text, as browsers may send)."""
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: {host or f'{address[0]}:{address[1]}'}",
        "Connection: close",
    ]
    lines += [f"{name}: {value}" for name, value in headers]
    request = "\r\n".join(lines).encode("utf-8") + b"\r\n"
    request += b"".join(
        name.encode("ascii") + b": " + value + b"\r\n" for name, value in raw_headers
    )
    request += b"\r\n"
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = [tuple(h.split(":", 1)) for h in header_lines if ":" in h]
    pairs = [(k.strip(), v.strip()) for k, v in parsed]
    te = next((v for k, v in pairs if k.lower() == "transfer-encoding"), "")
    if "chunked" in te.lower():
        body = _unchunk(body)
    return RawResponse(int(status_line.split()[1]), pairs, body)


def _unchunk(data: bytes) -> bytes:
    out = []
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(rest[:size])
        data = rest[size + 2 :]
    return b"".join(out)


__all__ = [
    "CLI",
    "ASGIApp",
    "RawResponse",
    "cli_process",
    "free_port",
    "gunicorn_process",
    "raw_request",
    "serve_asgi",
    "served_both_ways",
    "server_process",
    "stop_process",
]
