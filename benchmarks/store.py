"""Item 4: the replay stores. Memory per nonce in the memory store at one million entries;
Redis commands per accepted redemption, as the server saw clients send them (MONITOR)."""

from __future__ import annotations

import asyncio
import gc
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pat_middleware.errors import ConfigurationError
from pat_middleware.policy import Outcome, Policy, RequestInfo
from pat_middleware.stores import MemoryReplayStore, ReplayStore
from pat_middleware.stores import open_replay_store as _open_replay_store

from .common import (
    NONE_MODE,
    Issuer,
    Options,
    Result,
    Row,
    Skip,
    Value,
    authorizations,
    stop_process,
)

#: The policy's key for a spent nonce: a one-byte tag and the 32-byte nonce.
KEY_LENGTH = 33
TTL = 75.0  # per-session mode's replay TTL with max_age 60
#: Commands that are ours to send, not the store's: the counting itself and connection setup.
_NOT_COUNTED = frozenset({"info", "client", "hello", "ping", "select", "auth", "command"})


def run(issuer: Issuer, opts: Options) -> list[Result]:
    results: list[Result] = memory(opts)
    results += redis(issuer, opts)
    return results


# ------------------------------------------------------------------------------ memory


def memory(opts: Options) -> list[Result]:
    entries = 100_000 if opts.quick else 1_000_000
    runs = 1 if opts.quick else min(opts.rounds, 3)
    traced: list[float] = []
    resident: list[float] = []
    for _ in range(runs):
        traced.append(_traced_bytes_per_entry(entries))
        resident.append(_rss_bytes_per_entry(entries))
    label = f"{entries:,} entries"
    return [
        Value(
            "4",
            f"memory store, bytes per stored nonce at {label} (tracemalloc)",
            traced,
            "B",
            target=200,
            target_text="<= 200",
            note=(
                "tracemalloc: every Python allocation made while filling the store, keys "
                f"({KEY_LENGTH}-byte bytes as the policy stores them) included, divided by "
                "the entries. RSS delta: the process's resident memory grown while filling "
                "it, allocator slack and the dict's spare room included (a child process "
                "without tracemalloc)."
            ),
        ),
        Value(
            "4",
            f"memory store, bytes per stored nonce at {label} (RSS delta)",
            resident,
            "B",
            target=200,
            target_text="<= 200",
        ),
    ]


def _fill(store: MemoryReplayStore, entries: int) -> None:
    for _ in range(entries):
        if not store.spend(b"n" + secrets.token_bytes(KEY_LENGTH - 1), TTL):
            raise AssertionError("a fresh key was refused")


def _traced_bytes_per_entry(entries: int) -> float:
    gc.collect()
    store = MemoryReplayStore(max_entries=entries)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        _fill(store, entries)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(store) == entries
    return (after - before) / entries


def _rss_bytes_per_entry(entries: int) -> float:
    """Measured in a child process, so nothing else this process allocated gets in."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.store", str(entries)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    return float(done.stdout.split()[-1])


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _child(entries: int) -> None:
    store = MemoryReplayStore(max_entries=entries)
    gc.collect()
    before = _rss()
    _fill(store, entries)
    gc.collect()
    print((_rss() - before) / entries)


# ------------------------------------------------------------------------------ redis


def open_replay_store(url: str) -> ReplayStore:
    """The library's factory (a seam: lets the harness be checked against any store)."""
    return _open_replay_store(url)


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="pat-bench-redis-")
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(process)
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def sent_commands(client: Any) -> Iterator[list[str]]:
    """The commands clients send while the block runs (lower-case names), read with
    MONITOR through ``client``'s server: commands a script runs inside Redis are no round
    trips and are left out, and so is connection set-up. Filled in when the block ends."""
    sent: list[str] = []
    marker = f"pat-bench-end-{secrets.token_hex(8)}"
    with client.monitor() as monitor:
        yield sent
        client.echo(marker)  # another of its pool's connections: the monitor holds one
        while True:
            seen = monitor.next_command()
            command = str(seen["command"])
            if marker in command:
                break
            name = command.split(" ", 1)[0].lower()
            if seen["client_type"] != "lua" and name not in _NOT_COUNTED:
                sent.append(name)


def redis(issuer: Issuer, opts: Options) -> list[Result]:
    if shutil.which("redis-server") is None:
        return [
            Skip("4", "Redis round trips", "redis-server not found (apt-get install redis-server)")
        ]
    try:
        import redis as redis_py
    except ImportError:
        return [
            Skip("4", "Redis round trips", "redis-py not installed (pip install -e '.[bench]')")
        ]
    count = 200 if opts.quick else 2000
    results: list[Result] = []
    with redis_server() as url:
        counter = redis_py.Redis.from_url(url)
        try:
            results.append(_reference(redis_py, url, counter))
            try:
                store = open_replay_store(url)
            except ConfigurationError as e:
                results.append(
                    Skip("4", "Redis store round trips", f"redis:// store not available: {e}")
                )
                return results
            initialize = getattr(store, "initialize", None)
            if initialize is not None:
                initialize()  # a new Redis: no wait before the first spends (store-init)
            results += _store_figures(issuer, opts, store, counter, count)
            results += _capacity(url, counter, opts)
        finally:
            counter.close()
    return results


#: Per-session mode's replay TTL with the default max_age (60): window 15 s + 60 s + 5 s.
CAPACITY_TTL = 80.0


def _info(counter: Any) -> tuple[float, int, int]:
    """(Redis CPU seconds, used_memory bytes, keys in db 0) now."""
    cpu = counter.info("cpu")
    memory = counter.info("memory")
    keys = counter.info("keyspace").get("db0", {}).get("keys", 0)
    return (
        float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        int(memory["used_memory"]),
        int(keys),
    )


def _capacity(url: str, counter: Any, opts: Options) -> list[Result]:
    """What one Redis sustains: several worker processes spend fresh nonces through the
    store at once (one EVALSHA each); Redis's own CPU time and memory per accepted spend."""
    workers = 2 * (os.cpu_count() or 1)
    seconds = 2.0 if opts.quick else 10.0
    runs = 1 if opts.quick else min(opts.rounds, 3)
    rates: list[float] = []
    cpu_us: list[float] = []
    memory: list[float] = []
    sampled: list[float] = []
    for _ in range(runs):
        counter.flushdb()
        store = open_replay_store(url)
        initialize = getattr(store, "initialize", None)
        if initialize is not None:
            initialize()
        sample = b"n" + secrets.token_bytes(32)
        if not store.spend(sample, CAPACITY_TTL):
            raise AssertionError("a fresh key was refused")
        spend_key = getattr(store, "spend_key", None)
        if spend_key is not None:
            sampled.append(float(counter.memory_usage(spend_key(sample), samples=0) or 0))
        store.close()
        children = [
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.store", "--spend", url, str(seconds)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            )
            for _ in range(workers)
        ]
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != b"ready":
                raise RuntimeError("a spending worker did not start")
        cpu_before, memory_before, keys_before = _info(counter)
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            child.stdin.flush()
        spent = 0
        elapsed = 0.0
        for child in children:
            out, _ = child.communicate(timeout=seconds + 60)
            count, took = out.split()[-2:]
            spent += int(count)
            elapsed = max(elapsed, float(took))
        cpu_after, memory_after, keys_after = _info(counter)
        if keys_after - keys_before != spent:
            raise AssertionError(f"{spent} spends but {keys_after - keys_before} new keys")
        rates.append(spent / elapsed)
        cpu_us.append((cpu_after - cpu_before) / spent * 1e6)
        memory.append((memory_after - memory_before) / spent)
    capacity = 1e6 / statistics.median(cpu_us)
    results: list[Result] = [
        Value(
            "4",
            f"Redis: accepted spends per second, {workers} worker processes, one Redis",
            rates,
            "/s",
            note=(
                f"{workers} processes, each spending fresh 33-byte keys through "
                f"RedisReplayStore.spend (one EVALSHA a spend, TTL {CAPACITY_TTL:g} s) for "
                f"{seconds:g} s, all on this machine with the redis-server: the workers and "
                "Redis share its cores, so this is a floor, not Redis's ceiling."
            ),
        ),
        Value(
            "4",
            "Redis: server CPU per accepted spend (INFO cpu)",
            cpu_us,
            "us",
            note=(
                f"used_cpu_user + used_cpu_sys over the run, per spend: one Redis core "
                f"sustains about {capacity:,.0f} accepted spends per second at this cost."
            ),
        ),
        Value(
            "4",
            "Redis: bytes per spent nonce (INFO used_memory delta / spends)",
            memory,
            "B",
            note="used_memory grown over the run divided by the keys it added.",
        ),
    ]
    if sampled:
        results.append(Value("4", "Redis: MEMORY USAGE of one spend key", sampled, "B"))
    return results


def _spend_worker(url: str, seconds: float) -> None:
    """One spending worker of :func:`_capacity`: warm up, wait for "go", spend for
    ``seconds``, print the count and the time taken."""
    store = open_replay_store(url)
    for _ in range(20):
        store.spend(b"w" + secrets.token_bytes(32), CAPACITY_TTL)
    print("ready", flush=True)
    sys.stdin.readline()
    spent = 0
    start = time.perf_counter()
    deadline = start + seconds
    spend = store.spend
    while time.perf_counter() < deadline:
        for _ in range(50):
            if not spend(b"n" + secrets.token_bytes(32), CAPACITY_TTL):
                raise SystemExit("a fresh key was refused")
        spent += 50
    print(spent, time.perf_counter() - start, flush=True)
    store.close()


#: Redemptions counted (under MONITOR, apart from the timed ones) per form.
_COUNTED = 50


def _reference(redis_py: Any, url: str, counter: Any) -> Value:
    """A hand-written SET NX PX loop: checks that the counting says 1.00."""
    client = redis_py.Redis.from_url(url)
    try:
        client.ping()  # connect (and any set-up) before counting
        with sent_commands(counter) as sent:
            for _ in range(_COUNTED):
                if not client.set(b"ref:" + secrets.token_bytes(32), b"1", nx=True, px=75_000):
                    raise AssertionError("a fresh key was refused")
        per_call = len(sent) / _COUNTED
    finally:
        client.close()
    return Value(
        "4",
        "Redis: commands per call of a hand-written SET NX PX loop (checks the counting)",
        [per_call],
        "cmds",
        note="Commands the clients sent, read with MONITOR on a throwaway redis-server "
        f"over {_COUNTED} calls apart from the timed ones, but connection set-up (HELLO, "
        "CLIENT, SELECT, AUTH, PING) and what a script runs inside Redis: the store's one "
        "EVALSHA checks the epoch marker and runs SET NX PX there.",
    )


def _store_figures(
    issuer: Issuer, opts: Options, store: ReplayStore, counter: Any, count: int
) -> list[Result]:
    settings = issuer.settings(**NONE_MODE)
    challenge = Policy(settings).templates[0][0].challenge(b"")
    tokens = issuer.mint(challenge, (count + _COUNTED + 5) * 2 + 20)
    requests = [RequestInfo("GET", "/protected", authorization=a) for a in authorizations(tokens)]
    results: list[Result] = []

    def judge_sync(
        policy: Policy,
        warm: list[RequestInfo],
        counted: list[RequestInfo],
        batch: list[RequestInfo],
    ) -> tuple[float, float]:
        """(seconds for the batch, commands per redemption of ``counted``), after warm-up."""
        for request in warm:
            if policy.evaluate(request).outcome is not Outcome.PASS:
                raise AssertionError("a valid token was refused")
        with sent_commands(counter) as sent:
            for request in counted:
                if policy.evaluate(request).outcome is not Outcome.PASS:
                    raise AssertionError("a valid token was refused")
        start = time.perf_counter()
        for request in batch:
            if policy.evaluate(request).outcome is not Outcome.PASS:
                raise AssertionError("a valid token was refused")
        return time.perf_counter() - start, len(sent) / max(1, len(counted))

    async def judge_async(
        policy: Policy,
        warm: list[RequestInfo],
        counted: list[RequestInfo],
        batch: list[RequestInfo],
    ) -> tuple[float, float]:
        for request in warm:  # one event loop for the warm-up, the counting and the batch
            if (await policy.evaluate_async(request)).outcome is not Outcome.PASS:
                raise AssertionError("a valid token was refused")
        with sent_commands(counter) as sent:
            for request in counted:
                if (await policy.evaluate_async(request)).outcome is not Outcome.PASS:
                    raise AssertionError("a valid token was refused")
        start = time.perf_counter()
        for request in batch:
            if (await policy.evaluate_async(request)).outcome is not Outcome.PASS:
                raise AssertionError("a valid token was refused")
        return time.perf_counter() - start, len(sent) / max(1, len(counted))

    forms: list[tuple[str, Any]] = [
        ("sync", judge_sync),
        ("async", lambda *a: asyncio.run(judge_async(*a))),
    ]
    rest = requests
    for form, judge in forms:
        warm, counted, rest = rest[:5], rest[5 : 5 + _COUNTED], rest[5 + _COUNTED :]
        batch, rest = rest[:count], rest[count:]
        spent, per = judge(Policy(settings, replay_store=store), warm, counted, batch)
        memory_spent, _ = judge(Policy(settings), warm, [], batch)
        results.append(
            Value(
                "4",
                f"Redis store: commands per accepted redemption ({form} evaluate)",
                [per],
                "cmds",
                target=1.0,
                target_text="<= 1",
            )
        )
        row = Row(
            "4",
            f"Redis store throughput ({form} evaluate)",
            "redis://",
            "memory://",
            note="one redemption at a time through Policy with each store, `none` mode, "
            "the same fresh tokens.",
        )
        row.add(len(batch) / spent, len(batch) / memory_spent)
        results.append(row)
    return results


if __name__ == "__main__":
    if sys.argv[1] == "--spend":
        _spend_worker(sys.argv[2], float(sys.argv[3]))
    else:
        _child(int(sys.argv[1]))
