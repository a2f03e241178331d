"""Item 5: our verification rate against @cloudflare/privacypass-ts (pinned in node/).

Both sides get the same Authorization headers and issuer key, each in its own process:
``node node/verify.mjs`` (parse the header, ``Origin.verify``) and ``python -m
benchmarks.peer`` (``Policy.evaluate``: parse, key lookup, challenge digest, RSA-PSS,
replay store). One process a side verifies one token at a time; then one process per core
on each side, all told to start together once each is warm. ``npm ci`` runs first when
node_modules is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .common import (
    NO_INSTALL_ENV,
    NONE_MODE,
    Issuer,
    Options,
    Result,
    Row,
    Skip,
    authorizations,
    installs_allowed,
    interleaved,
)

if TYPE_CHECKING:
    from pat_middleware.settings import Settings

NODE_DIR = Path(__file__).resolve().parent / "node"
ROOT = NODE_DIR.parent.parent
PACKAGE = "@cloudflare/privacypass-ts"


def _ensure_node_modules() -> str | None:
    """None when the pinned package is installed (installing it if needed), else why not."""
    if (NODE_DIR / "node_modules" / PACKAGE / "package.json").exists():
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "npm not found"
    if not installs_allowed():
        return f"node_modules missing and {NO_INSTALL_ENV} is set (run npm ci in {NODE_DIR})"
    print(f"... npm ci in {NODE_DIR}", file=sys.stderr, flush=True)
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        return f"npm ci failed: {done.stderr.strip().splitlines()[-1:]}"
    return None


def node_problem() -> str | None:
    """None when node and the pinned package are there (installing it if needed), else why
    the Node side cannot run."""
    if shutil.which("node") is None:
        return "node not found"
    return _ensure_node_modules()


def _version() -> str:
    try:
        data = json.loads((NODE_DIR / "node_modules" / PACKAGE / "package.json").read_text())
        return str(data["version"])
    except (OSError, ValueError, KeyError):
        return "?"


def race(language: str, argv: list[str], processes: int) -> float:
    """Tokens per second over ``processes`` copies of ``argv``: each prints "ready" once set
    up and warm, all are told to go at once, each reports its count and its own timing."""
    children = [
        subprocess.Popen(
            argv,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    for child in children:
        assert child.stdout is not None
        line = child.stdout.readline()
        if line.strip() != b"ready":
            _, err = child.communicate(timeout=60)
            raise RuntimeError(f"{language} side failed: {(line + err).decode()[-400:]}")
    for child in children:
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        child.stdin.flush()
    reports = []
    for child in children:
        out, err = child.communicate(timeout=600)
        if child.returncode != 0:
            raise RuntimeError(f"{language} side failed: {err.decode()[-400:]}")
        reports.append(json.loads(out.decode().strip().splitlines()[-1]))
    begin = min(r["start_ms"] for r in reports)
    end = max(r["end_ms"] for r in reports)
    return float(sum(r["count"] for r in reports) / ((end - begin) / 1000))


def run(issuer: Issuer, opts: Options) -> list[Result]:
    problem = node_problem()
    if problem is not None:
        return [Skip("5", f"peer: {PACKAGE}", problem)]
    from pat_middleware.policy import Policy

    count = 300 if opts.quick else 3000
    policy = Policy(issuer.settings(**NONE_MODE))
    tokens = issuer.mint(policy.templates[0][0].challenge(b""), count)
    data = opts.workdir / "peer-input.json"
    data.write_text(
        json.dumps({"token_key": issuer.key.token_key, "headers": authorizations(tokens)})
    )
    cores = os.cpu_count() or 1
    rounds = 1 if opts.quick else opts.rounds

    def side(language: str, processes: int) -> float:
        if language == "node":
            argv = ["node", str(NODE_DIR / "verify.mjs"), str(data)]
        else:
            argv = [sys.executable, "-m", "benchmarks.peer", str(data)]
        return race(language, argv, processes)

    version = _version()
    single = Row(
        "5",
        f"peer, one verification at a time, 1 process a side ({PACKAGE} {version})",
        "Policy.evaluate",
        "privacypass-ts",
        target=3.0,
        target_text=">= 3.0",
        note=(
            "the same headers and key on both sides. Node: `AuthorizationHeader.parse` then "
            "`publicVerif.Origin(BlindRSAMode.PSS).verify(token, key)`, each awaited. Ours: "
            "Policy.evaluate in `none` mode (also checks the key id, the challenge digest "
            "and the replay store). Rates from each process's own loop, start-up excluded."
        ),
    )
    busy = Row(
        "5",
        f"peer, all cores busy, {cores} processes a side",
        "Policy.evaluate",
        "privacypass-ts",
        note="tokens per second over all processes of a side, started together.",
    )
    interleaved(rounds, lambda: side("python", 1), lambda: side("node", 1), single)
    interleaved(rounds, lambda: side("python", cores), lambda: side("node", cores), busy)
    return [single, busy]


def judge_when_told(settings: Settings, headers: list[str], warm: int) -> None:
    """A side's process of :func:`race`: warm up on ``warm`` headers, print "ready", wait
    for the word, then judge every header once with a fresh policy and print the timing."""
    from pat_middleware.policy import Outcome, Policy, RequestInfo

    requests = [RequestInfo("GET", "/protected", authorization=h) for h in headers]
    warm_policy = Policy(settings)  # its own store: the measured policy still sees fresh tokens
    for request in requests[:warm]:
        warm_policy.evaluate(request)
    evaluate = Policy(settings).evaluate
    print("ready", flush=True)
    sys.stdin.readline()
    begin_ms = time.time() * 1000
    begin = time.perf_counter()
    for request in requests:
        if evaluate(request).outcome is not Outcome.PASS:
            raise SystemExit("a valid token was refused")
    elapsed_ms = (time.perf_counter() - begin) * 1000
    print(
        json.dumps({"count": len(requests), "start_ms": begin_ms, "end_ms": begin_ms + elapsed_ms})
    )


def _child(data_file: str) -> None:
    """This side's process (see :func:`judge_when_told`)."""
    from pat_middleware.settings import Settings

    data = json.loads(Path(data_file).read_text())
    settings = Settings.from_mapping(Issuer.settings_mapping_for(data["token_key"], **NONE_MODE))
    judge_when_told(settings, data["headers"], warm=20)


if __name__ == "__main__":
    _child(sys.argv[1])
