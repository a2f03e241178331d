"""Real servers for the shared-store tests, started on loopback by the tests themselves:
a three-node Redis Cluster, a Redis master with a replica and one Sentinel (each of
redis-server or, given its ``binary``, valkey-server), and memcached. Each skips its tests
when its binary is missing (``.ci/run`` installs them)."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Self

import pytest

from ._redis import STARTUP_TIMEOUT, RedisServer
from ._servers import free_port, stop_process


def cluster_port() -> int:
    """A free loopback port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        port = random.randint(20_000, 30_000)  # a port, not a secret
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10_000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def _wait(ready: Any, what: str, timeout: float = STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} was not ready within {timeout} s")
        time.sleep(0.05)


class _StartedOnEnter:
    """Servers a ``with`` block starts and ends: ``start()`` on entry and, should it fail
    part way, ``__exit__`` at once for what it did start."""

    def start(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        raise NotImplementedError


class RedisClusterServers(_StartedOnEnter):
    """Three redis-server nodes (``binary``: valkey-server ones), cluster-enabled, no
    replicas, slots split by ``redis-cli --cluster create`` (Valkey nodes speak the same
    cluster protocol); nodes can be paused, stopped and started."""

    def __init__(self, nodes: int = 3, binary: str | None = None) -> None:
        if shutil.which("redis-cli") is None:
            pytest.skip("redis-cli is not installed (apt-get install redis-server)")
        self.binary = binary
        self.nodes = [self._node() for _ in range(nodes)]

    def _node(self) -> RedisServer:
        return RedisServer(
            "--cluster-enabled", "yes", "--cluster-node-timeout", "1000",
            port=cluster_port(), binary=self.binary,
        )  # fmt: skip

    @property
    def url(self) -> str:
        """A redis+cluster:// URL naming every node as a seed."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        create = ["redis-cli", "--cluster", "create"]
        create += [f"127.0.0.1:{n.port}" for n in self.nodes]
        create += ["--cluster-replicas", "0", "--cluster-yes"]
        subprocess.run(create, check=True, capture_output=True, timeout=STARTUP_TIMEOUT)
        _wait(self.healthy, "the Redis Cluster")

    def healthy(self) -> bool:
        """Every node says cluster_state:ok and knows all the others."""
        import redis

        for node in self.nodes:
            client = redis.Redis(port=node.port, socket_timeout=1)
            try:
                info = client.cluster("INFO")  # a dict of its fields
                known = len(client.cluster("NODES"))  # address -> node
            except (redis.RedisError, OSError):
                return False
            finally:
                client.close()
            if info.get("cluster_state") != "ok" or known < len(self.nodes):
                return False
        return True

    def add_replica(self, of: int = 0) -> RedisServer:
        """A new node replicating node ``of``, in sync when this returns (the caller stops
        it); ``CLUSTER FAILOVER`` sent to it promotes it."""
        import redis

        replica = self._node()
        replica.start()
        primary = self.nodes[of]
        client = redis.Redis(port=primary.port, decode_responses=True)
        primary_id = str(client.cluster("MYID"))
        client.close()
        add = ["redis-cli", "--cluster", "add-node", f"127.0.0.1:{replica.port}"]
        add += [f"127.0.0.1:{primary.port}", "--cluster-slave", "--cluster-master-id", primary_id]
        subprocess.run(add, check=True, capture_output=True, timeout=30)
        watcher = redis.Redis(port=replica.port)
        try:
            _wait(
                lambda: watcher.info("replication").get("master_link_status") == "up",
                "the replica",
                timeout=30,
            )
        finally:
            watcher.close()
        return replica

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __exit__(self, *exc: object) -> None:
        for node in self.nodes:
            node.__exit__()


class SentinelServers(_StartedOnEnter):
    """A Redis master, its replica and one Sentinel (quorum 1) watching them as
    :attr:`SERVICE`, all three of redis-server or of ``binary`` (valkey-server: its Sentinel
    too is the server binary with ``--sentinel``); ``failover()`` asks the Sentinel to
    promote the replica."""

    SERVICE = "pat-master"

    def __init__(self, binary: str | None = None) -> None:
        # A master waits up to 10 s for its replica on SIGTERM by default (Redis 7).
        self.master = RedisServer("--shutdown-timeout", "0", binary=binary)
        self.replica = RedisServer(binary=binary)
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pat-sentinel-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.SERVICE}/0"

    def _sentinel(self, *command: str) -> Any:
        import redis

        client = redis.Redis(port=self.port, socket_timeout=1, decode_responses=True)
        try:
            return client.execute_command(*command)  # type: ignore[no-untyped-call]
        finally:
            client.close()

    def master_port(self) -> int:
        return int(self._sentinel("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.SERVICE)[1])

    def _replica_known(self) -> bool:
        try:
            return bool(self._sentinel("SENTINEL", "REPLICAS", self.SERVICE))
        except Exception:
            return False

    def start(self) -> None:
        self.master.start()
        self.replica.extra = ("--replicaof", "127.0.0.1", str(self.master.port))
        self.replica.extra += ("--shutdown-timeout", "0")
        self.replica.start()
        conf = self.dir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {self.SERVICE} 1000\n"
            f"sentinel failover-timeout {self.SERVICE} 3000\n"
        )
        binary = self.master.binary
        self.proc = subprocess.Popen(
            [binary, str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(self._replica_known, "the Sentinel")

    def failover(self) -> int:
        """Promote the replica; returns the new master's port once the Sentinel names it."""
        import redis

        old = self.master_port()

        def asked() -> bool:
            try:
                self._sentinel("SENTINEL", "FAILOVER", self.SERVICE)
            except redis.ResponseError as e:  # NOGOODSLAVE until it has seen the replica up
                if "NOGOODSLAVE" not in str(e):
                    raise
                return False
            return True

        _wait(asked, "a replica the Sentinel would promote")
        _wait(lambda: self.master_port() != old, "the failover")
        return self.master_port()

    def __exit__(self, *exc: object) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc)
        for server in (self.master, self.replica):
            server.__exit__()
        shutil.rmtree(self.dir, ignore_errors=True)


class MemcachedServer:
    """One memcached on a loopback port, TCP only, ``-M``: it refuses to store when full
    instead of evicting (an evicted spend would be a token accepted twice)."""

    def __init__(self) -> None:
        binary = shutil.which("memcached")
        if binary is None:
            pytest.skip("memcached is not installed (apt-get install memcached)")
        self.binary = binary
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def location(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"version\r\n")
                return s.recv(64).startswith(b"VERSION")
        except OSError:
            return False

    def start(self) -> None:
        args = [self.binary, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "16"]
        args += ["-M", "-u", "nobody"] if _root() else ["-M"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(self._answers, "memcached")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.terminate()
            proc.wait(5)

    def __enter__(self) -> MemcachedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _root() -> bool:
    import os

    return os.geteuid() == 0
