"""Item 3: requests per second through real servers on loopback, with and without us.

Two servers run at once (the idle one costs nothing): a Starlette app under uvicorn, then a
Flask app under gunicorn (gthread, one thread), each once without and once with the
middleware; one worker each. The
load generator is ``wrk -t1`` (one thread, so it leaves the other core to the server), or
the Python driver in :mod:`benchmarks.loadgen` when wrk is missing. Every round runs every
variant for one second at a time, ``--seconds`` times a round, in an order that alternates.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pat_middleware.core.headers import parse_www_authenticate
from pat_middleware.core.wire import TokenChallenge
from pat_middleware.policy import Policy, RequestInfo

from .apps import STATIC_401_ENV, STATIC_401_PATH
from .common import (
    Issuer,
    Options,
    Result,
    Row,
    Skip,
    authorizations,
    installs_allowed,
    session_challenge,
)

HERE = Path(__file__).resolve().parent
LUA = HERE / "wrk" / "bench.lua"
ROOT = HERE.parent
STARTUP_TIMEOUT = 20.0
CPU_LABELS = {
    "plain": "no middleware",
    "reference": "do-nothing middleware",
    "static401": "static 401",
    "open": "unprotected",
    "token": "token",
    "challenge": "401",
}
#: variant -> (server, path, expected status)
VARIANTS = {
    "plain": ("plain", "/open", 200),
    "reference": ("reference", "/open", 200),
    "static401": ("reference", STATIC_401_PATH, 401),
    "open": ("guarded", "/open", 200),
    "token": ("guarded", "/protected", 200),
    "challenge": ("guarded", "/protected", 401),
}


@dataclass
class Run:
    """What one load-generator run saw."""

    seconds: float
    requests: int
    s200: int
    s401: int
    other: int
    errors: int
    ran_out: bool = False  # the tokens ran out (wrk then reports the full duration anyway)
    server_cpu: float | None = None  # seconds of server CPU the run took

    def rate(self, expect: int) -> float:
        good = self.s200 if expect == 200 else self.s401
        return good / self.seconds if self.seconds > 0 else 0.0

    def unexpected(self, expect: int) -> int:
        wrong = self.other + (self.s401 if expect == 200 else self.s200)
        return wrong + self.errors


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class LoadGen:
    kind: str  # "wrk" or "python"
    connections: int
    workdir: Path
    runs: int = field(default=0)

    def run(
        self,
        base: str,
        path: str,
        seconds: float,
        tokens: list[str] | None = None,
        cookie: str | None = None,
    ) -> Run:
        url = base + path
        self.runs += 1
        token_file = "-"
        if tokens:
            file = self.workdir / f"tokens-{self.runs}.txt"
            file.write_text("\n".join(tokens) + "\n", encoding="latin-1")
            token_file = str(file)
        if self.kind == "wrk":
            argv = [
                "wrk",
                "-t1",
                f"-c{self.connections}",
                f"-d{max(1, round(seconds))}s",  # wrk takes whole seconds
                "--timeout",
                "5s",
                "-s",
                str(LUA),
                url,
                "--",
                path,
                token_file,
                cookie or "-",
            ]
        else:
            argv = [
                sys.executable,
                "-m",
                "benchmarks.loadgen",
                url,
                "--seconds",
                str(seconds),
                "--connections",
                str(self.connections),
            ]
            if tokens:
                argv += ["--tokens", token_file]
            if cookie:
                argv += ["--cookie", cookie]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + 60, cwd=ROOT, check=False
        )
        for line in done.stdout.splitlines():
            if line.startswith("RESULT "):
                us, requests, s200, s401, other, errors, out = (int(x) for x in line.split()[1:])
                return Run(us / 1e6, requests, s200, s401, other, errors, bool(out))
        raise RuntimeError(
            f"{self.kind} printed no result: {done.stdout[-300:]}{done.stderr[-300:]}"
        )


def server_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of a process and its children that are still running (the
    gunicorn worker), from /proc; None where there is no /proc."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0.0
    try:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(entry) == pid or int(fields[1]) == pid:  # fields[1] is the parent's pid
                total += (int(fields[11]) + int(fields[12])) / tick
    except OSError:
        return None
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(name: str, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Return once ``url`` answers 200; raise when the server exits first (with the end of
    its ``log``) or has not answered within STARTUP_TIMEOUT."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text()[-500:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not start in {STARTUP_TIMEOUT} s")


@contextmanager
def servers(
    kind: str, settings_file: Path, workdir: Path, static_401: Path | None = None
) -> Iterator[dict[str, Server]]:
    """For ``kind`` "asgi" or "wsgi": a server without the middleware ("plain"), one with
    a middleware that does nothing ("reference") and one with ours ("guarded")."""
    started: list[Server] = []
    env = {**os.environ, "PAT_BENCH_SETTINGS": str(settings_file)}
    if static_401 is not None:
        env[STATIC_401_ENV] = str(static_401)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    flags = {"plain": "0", "reference": "reference", "guarded": "1"}
    try:
        for role, flag in flags.items():
            port = _free_port()
            name = f"{kind}-{role}"
            if kind == "asgi":
                argv = [sys.executable, "-m", "benchmarks.apps", "--port", str(port)]
                if role != "plain":
                    argv.append("--middleware" if role == "guarded" else "--reference")
            else:
                argv = [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--workers",
                    "1",
                    # one thread serving keep-alive connections, like uvicorn's loop
                    "--worker-class",
                    "gthread",
                    "--threads",
                    "1",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--log-level",
                    "warning",
                    f"benchmarks.apps:flask_app('{flag}')",
                ]
            log = workdir / f"{name}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
                )
            started.append(Server(name, f"http://127.0.0.1:{port}", process, log))
        for server in started:
            wait_ready(server.name, server.url + "/open", server.process, server.log)
        yield dict(zip(flags, started, strict=True))
    finally:
        for server in started:
            server.process.terminate()
        for server in started:
            try:
                server.process.wait(10)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(10)


def served_challenge(url: str, policy: Policy) -> tuple[str, TokenChallenge]:
    """A session cookie (minted with the servers' secret) and the challenge the server at
    ``url`` answers it with now: the server's memory store has an epoch of its own in its
    contexts, so only its own challenge is redeemable there."""
    cookie, _ = session_challenge(policy)
    request = urllib.request.Request(url + "/protected", headers={"Cookie": cookie})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raise RuntimeError(f"expected a 401 from {url}/protected, got {response.status}")
    except urllib.error.HTTPError as e:
        if e.code != 401:
            raise
        header = e.headers["WWW-Authenticate"]
    return cookie, TokenChallenge.from_bytes(parse_www_authenticate(header)[0].challenge)


def find_loadgen(opts: Options) -> LoadGen | str:
    """wrk when asked for or found (installing it where apt-get can), else the Python driver."""
    if opts.loadgen in ("auto", "wrk") and shutil.which("wrk") is None:
        _try_install_wrk()
    if opts.loadgen == "wrk" and shutil.which("wrk") is None:
        return "wrk not found (apt-get install wrk) and --loadgen wrk was asked for"
    kind = "wrk" if opts.loadgen != "python" and shutil.which("wrk") else "python"
    return LoadGen(kind, opts.connections, opts.workdir)


def _try_install_wrk() -> None:
    """Debian's wrk, when this process may install packages (root with apt-get)."""
    if (
        shutil.which("apt-get") is None
        or not hasattr(os, "geteuid")
        or os.geteuid() != 0
        or not installs_allowed()
    ):
        return
    print("... installing wrk with apt-get", file=sys.stderr, flush=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "wrk"],
        capture_output=True,
        timeout=300,
        check=False,
    )


def _store_a_challenge(policy: Policy, file: Path) -> Path:
    """One of the policy's per-session 401s (status, headers, body) as JSON, for the
    reference servers' ``/static401``."""
    cookie, _ = session_challenge(policy)
    decision = policy.evaluate(RequestInfo("GET", "/protected", cookie=cookie))
    payload = {
        "status": decision.status,
        "headers": [list(pair) for pair in decision.headers],
        "body": decision.body.decode("latin-1"),
    }
    file.write_text(json.dumps(payload), encoding="utf-8")
    return file


def run(issuer: Issuer, opts: Options) -> list[Result]:
    loadgen = find_loadgen(opts)
    if isinstance(loadgen, str):
        return [Skip("3", "HTTP", loadgen)]
    settings_file = issuer.write_settings(opts.workdir / "pat.toml")
    policy = Policy(issuer.settings())  # same secret: mints sessions the servers accept
    static_401 = _store_a_challenge(policy, opts.workdir / "static401.json")
    results: list[Result] = []
    for kind, needs, label in (
        ("asgi", ("uvicorn", "starlette"), "ASGI: Starlette under uvicorn"),
        ("wsgi", ("gunicorn", "flask"), "WSGI: Flask under gunicorn"),
    ):
        if kind not in opts.servers:
            continue
        missing = [m for m in needs if importlib.util.find_spec(m) is None]
        if missing:
            results.append(
                Skip("3", label, f"{', '.join(missing)} not installed (pip install -e '.[bench]')")
            )
            continue
        with servers(kind, settings_file, opts.workdir, static_401) as running:
            results += _measure(label, running, issuer, policy, loadgen, opts)
    return results


def measured_run(
    loadgen: LoadGen,
    url: str,
    pid: int,
    path: str,
    duration: float,
    tokens: list[str] | None,
    cookie: str | None,
) -> Run:
    """One load run against ``url + path``, with the server process's CPU time over it."""
    before = server_cpu_seconds(pid)
    run = loadgen.run(url, path, duration, tokens, cookie)
    after = server_cpu_seconds(pid)
    if before is not None and after is not None:
        run.server_cpu = after - before
    return run


def note_problems(
    run: Run, which: str, expect: int, opts: Options, notes: list[str], token_figure: str
) -> None:
    """Add a note when a run's answers were not what the variant expects, or its tokens ran
    out (a few replays are possible where wrk sends the last token again as it stops)."""
    wrong = run.unexpected(expect)
    if wrong > max(opts.connections, run.requests // 100):
        notes.append(f"{which}: {wrong} of {run.requests} answers were not {expect}")
    if run.ran_out:
        notes.append(f"the tokens ran out in a run: its {token_figure} rate is a lower bound")


def interleaved_round(
    expect: Mapping[str, int],
    slices: int,
    measure: Callable[[str, list[str] | None, str | None], Run],
    tokens: list[str],
    cookies: Mapping[str, str | None],
    connections: int,
) -> tuple[dict[str, float], dict[str, float]]:
    """One round of items 3 and 7: ``slices`` one-second runs of every variant of ``expect``
    (variant -> the status it should answer), in turn, the order reversed every other slice,
    so a noisy second of the machine falls on all of them alike. ``measure(which, tokens,
    cookie)`` makes one run with the variant's cookie; only the ``token`` variant gets the
    tokens, and those its run may have spent are dropped after it. Returns each variant's
    rate of expected answers and the server's CPU per expected answer in microseconds."""
    good = dict.fromkeys(expect, 0)
    seconds = dict.fromkeys(expect, 0.0)
    cpu = dict.fromkeys(expect, 0.0)
    variants = list(expect)
    for i in range(slices):
        order = variants if i % 2 == 0 else variants[::-1]
        for which in order:
            if which == "token":
                run = measure(which, tokens, cookies[which])
                # Whatever was in flight when the run stopped may have been spent too.
                tokens = tokens[run.requests + connections :]
            else:
                run = measure(which, None, cookies[which])
            good[which] += run.s200 if expect[which] == 200 else run.s401
            seconds[which] += run.seconds
            cpu[which] += run.server_cpu or 0.0
    rates = {which: good[which] / seconds[which] for which in expect}
    cpu_us = {which: cpu[which] / max(1, good[which]) * 1e6 for which in expect}
    return rates, cpu_us


def load_note(loadgen: LoadGen, opts: Options, slices: int) -> str:
    """How items 3 and 7 loaded the server, the start of their first row's note."""
    return (
        f"load generator: {'wrk -t1' if loadgen.kind == 'wrk' else 'Python driver'}, "
        f"{opts.connections} connections, {slices} one-second runs of each variant a round; "
    )


def cpu_note(cpu_us: Mapping[str, list[float]], labels: Mapping[str, str], baseline: str) -> str:
    """The server's CPU per answer, the median over rounds of each variant (``labels`` names
    them), when every round measured it; empty when the platform cannot read it."""
    if not (all(cpu_us.values()) and any(v > 0 for v in cpu_us[baseline])):
        return ""
    # Server CPU per answer does not depend on how busy the rest of the machine is.
    text = ", ".join(
        f"{labels[which]} {statistics.median(cpu_us[which]):.0f} us" for which in cpu_us
    )
    return f" Server CPU per answer (median of rounds): {text}."


def _measure(
    label: str,
    running: dict[str, Server],
    issuer: Issuer,
    policy: Policy,
    loadgen: LoadGen,
    opts: Options,
) -> list[Result]:
    notes: list[str] = []
    wsgi = label.startswith("WSGI")

    def measure(
        which: str, duration: float, tokens: list[str] | None = None, cookie: str | None = None
    ) -> Run:
        server, path, expect = VARIANTS[which]
        target = running[server]
        run = measured_run(loadgen, target.url, target.process.pid, path, duration, tokens, cookie)
        note_problems(run, which, expect, opts, notes, "3b")
        return run

    cookie, challenge = served_challenge(running["guarded"].url, policy)
    if opts.quick:  # a smoke run: no warm-up, a fixed number of tokens
        token_rate = 1500.0
    else:
        # Warm up every variant; the token run also estimates how many tokens a run needs.
        measure("plain", 1)
        measure("reference", 1)
        measure("static401", 1, cookie=cookie)
        open_rate = measure("open", 1).rate(200)
        measure("challenge", 1, cookie=cookie)
        # The token path is slower than the open one: open_rate tokens last the second.
        tokens = authorizations(issuer.mint(challenge, max(50, int(open_rate))))
        token_rate = measure("token", 1, tokens, cookie).rate(200)

    rows = {
        "a": Row(
            "3a",
            f"{label}, unprotected route",
            "middleware installed",
            "no middleware",
            target=0.97,
            target_text=">= 0.97",
        ),
        "ref": Row(
            "3a",
            f"{label}, reference: a middleware that does nothing",
            "do-nothing middleware",
            "no middleware",
            note=(
                "no target: one more layer that only calls the app, to show what any "
                "middleware costs on this server and how far this machine's noise reaches."
            ),
        ),
        # Targets for gunicorn + Flask; under uvicorn they are item 7's (the command's own
        # origin), and these rows are for reference.
        "b": Row(
            "3b",
            f"{label}, fresh valid token on every request",
            "protected + token",
            "unprotected",
            target=0.62 if wsgi else None,
            target_text=">= 0.62" if wsgi else "",
        ),
        "c": Row(
            "3c",
            f"{label}, 401 challenge",
            "401 path",
            "unprotected",
            target=0.90 if wsgi else None,
            target_text=">= 0.90" if wsgi else "",
        ),
        "c_ref": Row(
            "3c",
            f"{label}, reference: the same 401 bytes answered as a constant",
            "static 401",
            "unprotected",
            note=(
                "no target: one of the middleware's own challenges (same headers and body "
                "length), answered as fixed bytes by the reference server's bare layer, "
                "without Starlette or Flask: what the 401 costs this server with no "
                "policy at all."
            ),
        ),
    }
    cpu_per_request: dict[str, list[float]] = {which: [] for which in VARIANTS}
    expect = {which: status for which, (_, _, status) in VARIANTS.items()}

    def one_second(which: str, tokens: list[str] | None, cookie: str | None) -> Run:
        return measure(which, 1, tokens, cookie)

    slices = max(1, round(opts.seconds))
    for _ in range(opts.rounds):
        need = int(token_rate * slices * 1.5) + slices * opts.connections
        # A fresh window: tokens stay valid.
        cookie, challenge = served_challenge(running["guarded"].url, policy)
        tokens = authorizations(issuer.mint(challenge, need))
        cookies = dict.fromkeys(VARIANTS, cookie)
        rates, cpu = interleaved_round(
            expect, slices, one_second, tokens, cookies, opts.connections
        )
        for which in VARIANTS:
            cpu_per_request[which].append(cpu[which])
        token_rate = max(token_rate, rates["token"])
        rows["a"].add(rates["open"], rates["plain"])
        rows["ref"].add(rates["reference"], rates["plain"])
        rows["c_ref"].add(rates["static401"], rates["open"])
        rows["b"].add(rates["token"], rates["open"])
        rows["c"].add(rates["challenge"], rates["open"])
    note = (
        load_note(loadgen, opts, slices) + "per-session mode with a "
        "fixed session cookie; 3b pre-mints one token per request."
    )
    note += cpu_note(cpu_per_request, CPU_LABELS, "plain")
    rows["a"].note = note + (" Problems: " + "; ".join(sorted(set(notes))) if notes else "")
    return list(rows.values())
