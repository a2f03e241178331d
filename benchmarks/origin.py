"""Item 7: requests per second through ``pat-middleware origin`` (one uvicorn worker).

The command's own demo origin (Starlette: ``GET /`` public, ``GET /protected`` behind the
middleware, per-session mode, the demo's default settings with a fixed secret), served as a
user would start it, and driven with ``wrk -t1`` on loopback (or the Python driver). The
harness acts as a browser would, from the outside: a first ``GET /protected`` gives it a
session cookie and a challenge; one token minted for that challenge earns the
verified-session cookie. Four variants, each a ratio to the public route on the same server:

* verified session: ``/protected`` with the session and verified-session cookies (no token);
* 401: ``/protected`` with the session cookie and no token (the challenge);
* token: ``/protected`` with the session cookie and a fresh valid token on every request.

Every round runs each variant for one second, ``--seconds`` times, in an order reversed every
other second, and mints a new session, verified cookie and tokens first (the verified cookie
lives ``verified_duration``, the challenge ``max_age``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from pat_middleware.core.headers import parse_www_authenticate
from pat_middleware.core.wire import TokenChallenge

from .common import SECRET, Issuer, Options, Result, Row, Skip, authorizations, stop_process
from .http import (
    ROOT,
    LoadGen,
    Run,
    _free_port,
    cpu_note,
    find_loadgen,
    interleaved_round,
    load_note,
    measured_run,
    note_problems,
    wait_ready,
)

ITEM = "7"
ISSUER_NAME = "issuer.example"
#: variant -> (path, expected status)
VARIANTS = {
    "public": ("/", 200),
    "session": ("/protected", 200),
    "challenge": ("/protected", 401),
    "token": ("/protected", 200),
}
LABELS = {
    "public": "public route",
    "session": "verified session",
    "challenge": "401",
    "token": "token",
}


@dataclass
class Origin:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def origin_server(issuer: Issuer, workdir: Path) -> Iterator[Origin]:
    """``pat-middleware origin`` on a free loopback port, one worker, trusting ``issuer``."""
    port = _free_port()
    log = workdir / "origin.log"
    env = {**os.environ, "PAT_SECRET": SECRET}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    argv = [
        sys.executable,
        "-m",
        "pat_middleware.cli",
        "origin",
        "--issuer-name",
        ISSUER_NAME,
        "--token-key",
        issuer.key.token_key,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log.open("wb") as err:
        # The access log goes to stdout, as the command writes it; it is not kept.
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
    server = Origin(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_ready("pat-middleware origin", server.url + "/", process, log)
        yield server
    finally:
        stop_process(process)


def _cookie_pairs(headers: list[str]) -> list[str]:
    return [value.split(";", 1)[0] for value in headers]


def _get(url: str, headers: dict[str, str]) -> tuple[int, Message]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers
    except urllib.error.HTTPError as e:
        return e.code, e.headers


def browse(issuer: Issuer, url: str) -> tuple[str, TokenChallenge, str]:
    """As a browser: (session cookie, the challenge it is sent, session + verified cookies).

    The first visit gets a session cookie and a challenge; a token for it earns the
    verified-session cookie."""
    status, headers = _get(url + "/protected", {})
    if status != 401:
        raise RuntimeError(f"expected a 401 from {url}/protected, got {status}")
    session = _cookie_pairs(headers.get_all("Set-Cookie") or [])
    if len(session) != 1:
        raise RuntimeError(f"expected one session cookie, got {session}")
    cookie = session[0]
    challenge_header = headers["WWW-Authenticate"]
    challenge = TokenChallenge.from_bytes(parse_www_authenticate(challenge_header)[0].challenge)
    token = authorizations(issuer.mint(challenge, 1))[0]
    status, headers = _get(url + "/protected", {"Cookie": cookie, "Authorization": token})
    if status != 200:
        raise RuntimeError(f"a valid token got {status} from {url}/protected")
    verified = _cookie_pairs(headers.get_all("Set-Cookie") or [])
    if len(verified) != 1:
        raise RuntimeError(f"expected one verified-session cookie, got {verified}")
    both = f"{cookie}; {verified[0]}"
    status, _ = _get(url + "/protected", {"Cookie": both})
    if status != 200:
        raise RuntimeError(f"the verified session got {status} from {url}/protected")
    return cookie, challenge, both


def run(issuer: Issuer, opts: Options) -> list[Result]:
    loadgen = find_loadgen(opts)
    if isinstance(loadgen, str):
        return [Skip(ITEM, "pat-middleware origin", loadgen)]
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        return [
            Skip(ITEM, "pat-middleware origin", "uvicorn or starlette not installed (.[bench])")
        ]
    with origin_server(issuer, opts.workdir) as server:
        return _measure(server, issuer, loadgen, opts)


def _measure(server: Origin, issuer: Issuer, loadgen: LoadGen, opts: Options) -> list[Result]:
    notes: list[str] = []
    label = "`pat-middleware origin` (uvicorn, 1 worker)"

    def measure(which: str, tokens: list[str] | None = None, cookie: str | None = None) -> Run:
        path, expect = VARIANTS[which]
        result = measured_run(loadgen, server.url, server.process.pid, path, 1, tokens, cookie)
        note_problems(result, which, expect, opts, notes, "token")
        return result

    cookie, challenge, both = browse(issuer, server.url)
    if opts.quick:
        token_rate = 1500.0
    else:  # warm up; the token run estimates how many tokens a run needs
        public_rate = measure("public").rate(200)
        measure("session", cookie=both)
        measure("challenge", cookie=cookie)
        tokens = authorizations(issuer.mint(challenge, max(50, int(public_rate / 2))))
        token_rate = measure("token", tokens, cookie).rate(200)

    rows = {
        "session": Row(
            ITEM,
            f"{label}, verified session",
            "session cookies",
            "public route",
            target=0.92,
            target_text=">= 0.92",
        ),
        "challenge": Row(
            ITEM,
            f"{label}, 401 challenge",
            "401 path",
            "public route",
            target=0.88,
            target_text=">= 0.88",
        ),
        "token": Row(
            ITEM,
            f"{label}, fresh valid token on every request",
            "protected + token",
            "public route",
            target=0.45,
            target_text=">= 0.45",
        ),
    }
    cpu: dict[str, list[float]] = {which: [] for which in VARIANTS}
    expect = {which: status for which, (_, status) in VARIANTS.items()}
    slices = max(1, round(opts.seconds))
    for _ in range(opts.rounds):
        # A fresh session, challenge window and verified cookie: all stay valid this round.
        cookie, challenge, both = browse(issuer, server.url)
        need = int(token_rate * slices * 1.5) + slices * opts.connections
        tokens = authorizations(issuer.mint(challenge, need))
        cookies = {"public": None, "session": both, "challenge": cookie, "token": cookie}
        rates, cpu_us = interleaved_round(
            expect, slices, measure, tokens, cookies, opts.connections
        )
        for which in VARIANTS:
            cpu[which].append(cpu_us[which])
        token_rate = max(token_rate, rates["token"])
        for which, row in rows.items():
            row.add(rates[which], rates["public"])
    note = load_note(loadgen, opts, slices) + (
        "the command's demo origin (per-session mode, max_age 60, verified_duration 300, "
        "its access log on), cookies and challenges taken from its own answers."
    )
    note += cpu_note(cpu, LABELS, "public")
    if notes:
        note += " Problems: " + "; ".join(sorted(set(notes)))
    rows["session"].note = note
    return list(rows.values())
