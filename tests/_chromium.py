"""Headless Chromium driven over the DevTools protocol (CDP) with the websockets sync client.

Why this way: CDP is JSON over one WebSocket, and the few commands the PST test needs
(``Page.navigate``, ``Runtime.evaluate`` with ``awaitPromise``) fit in forty lines. Playwright
would bring Node.js and its own browser expectations; Selenium would add chromedriver and a
second protocol in between; neither adds anything here. The browser is the Debian package.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

CHROMIUM = os.environ.get("PAT_TEST_CHROMIUM", "/usr/bin/chromium")
STARTUP_TIMEOUT = 20.0
COMMAND_TIMEOUT = 20.0


def chromium_path() -> str | None:
    """The Chromium binary, or None when it is not installed."""
    if os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    return shutil.which("chromium")


class Page:
    """One page target: navigate, and evaluate JavaScript (promises awaited)."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._next_id = 0

    def command(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message_id = self._next_id
        self._connection.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while True:
            message = json.loads(self._connection.recv(timeout=deadline - time.monotonic()))
            if message.get("id") != message_id:
                continue  # an event
            if "error" in message:
                raise RuntimeError(f"{method}: {message['error']}")
            result: dict[str, Any] = message["result"]
            return result

    def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression``; a thrown error becomes ``{"error": text}``."""
        result = self.command(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            return {"error": details.get("exception", {}).get("description", details["text"])}
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        self.command("Page.navigate", url=url)
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while time.monotonic() < deadline:
            if self.evaluate("location.href") == url and (
                self.evaluate("document.readyState") == "complete"
            ):
                return
            time.sleep(0.02)
        raise TimeoutError(f"{url} did not load")


@contextmanager
def chromium(*flags: str) -> Iterator[Page]:
    """Headless Chromium with a throw-away profile and ``flags``; yields its first page."""
    binary = chromium_path()
    if binary is None:
        raise RuntimeError("Chromium is not installed")
    profile = tempfile.mkdtemp(prefix="pat-chromium-")
    args = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        *flags,
        "about:blank",
    ]
    log_path = os.path.join(profile, "chromium.log")
    with open(log_path, "wb") as log:  # a file, not a pipe nobody drains
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # its helpers share our new group: ended together below
        )
    try:
        port = _wait_for_devtools(proc, profile, log_path)
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
        page = next(t for t in targets if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as ws:
            yield Page(ws)
    finally:
        _stop(proc)
        shutil.rmtree(profile, ignore_errors=True)


def _wait_for_devtools(proc: subprocess.Popen[bytes], profile: str, log_path: str) -> str:
    """The DevTools port, from the DevToolsActivePort file Chromium writes into its profile
    once it listens (first line: the port)."""
    active = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with open(active, encoding="ascii") as f:
                port = f.readline().strip()
            if port.isdigit():
                return port
        except OSError:
            pass
        time.sleep(0.05)
    with open(log_path, "rb") as f:
        tail = f.read()[-2000:].decode("utf-8", "replace")
    raise RuntimeError(f"Chromium did not start its DevTools server:\n{tail}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group we started, by its id
        proc.wait(timeout=5)
