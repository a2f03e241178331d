"""Real servers for tests: uvicorn in a background thread (see pat_middleware.serve), and
`pat-middleware` command-line servers as subprocesses."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from pat_middleware.serve import ASGIApp, serve_asgi

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


__all__ = ["CLI", "ASGIApp", "cli_process", "free_port", "serve_asgi", "server_process"]
