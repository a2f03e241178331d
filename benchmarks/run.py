"""``python -m benchmarks``: every figure of BENCHMARKS.md, printed as a Markdown table."""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

from .common import Issuer, Options, Result, Skip, markdown

SECTIONS = ("core", "challenge", "steps", "http", "origin", "store", "peer", "peer1", "pst")


def machine() -> list[str]:
    """What the figures were measured on."""
    import ssl

    from cryptography.hazmat.backends.openssl import backend

    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    def tool(argv: Sequence[str]) -> str:
        if shutil.which(argv[0]) is None:
            return "not found"
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return "?"
        out = (done.stdout or done.stderr).strip().splitlines()
        return out[0] if out else "?"

    import os

    return [
        f"* CPU: {cpu}, {os.cpu_count()} cores ({platform.machine()}, {platform.system()})",
        f"* Python {platform.python_version()} ({platform.python_implementation()})",
        f"* cryptography {version('cryptography')} on {backend.openssl_version_text()}; "
        f"Python's ssl: {ssl.OPENSSL_VERSION}",
        f"* uvicorn {version('uvicorn')} (httptools {version('httptools')}, "
        f"uvloop {version('uvloop')}), starlette {version('starlette')}, "
        f"gunicorn {version('gunicorn')}, flask {version('flask')}",
        f"* wrk: {tool(['wrk', '--version'])}",
        f"* node: {tool(['node', '--version'])}; redis-server: "
        f"{tool(['redis-server', '--version'])}",
    ]


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure pat-middleware side by side with its baselines; print a table.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a fast smoke run (small counts, 1-2 rounds)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="seconds per HTTP measurement (default 3)"
    )
    parser.add_argument(
        "--connections", type=int, default=32, help="concurrent HTTP connections (default 32)"
    )
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="HTTP load generator: wrk if found (auto), or the Python driver",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        default=[],
        help="run only this section (repeatable)",
    )
    parser.add_argument(
        "--servers",
        action="append",
        choices=("asgi", "wsgi"),
        default=[],
        help="HTTP figures for these servers only (repeatable; default both)",
    )
    args = parser.parse_args(argv)
    servers = frozenset(args.servers or ("asgi", "wsgi"))
    if args.rounds < 1 or args.seconds <= 0 or args.connections < 1:
        parser.error("--rounds, --seconds and --connections must be positive")
    if args.quick:
        return Options(
            quick=True,
            rounds=1,
            seconds=1.0,
            connections=min(args.connections, 16),
            loadgen=args.loadgen,
            only=frozenset(args.only),
            servers=servers,
        )
    return Options(
        rounds=args.rounds,
        seconds=args.seconds,
        connections=args.connections,
        loadgen=args.loadgen,
        only=frozenset(args.only),
        servers=servers,
    )


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    started = time.monotonic()
    issuer = Issuer.generate()
    results: list[Result] = []

    from . import core, http, origin, peer, peer_type1, pst, steps, store

    plan: list[tuple[str, Callable[[Issuer, Options], list[Result]]]] = [
        ("core", core.verification),
        ("challenge", core.challenges),
        ("steps", steps.run),
        ("http", http.run),
        ("origin", origin.run),
        ("store", store.run),
        ("peer", peer.run),
        ("peer1", peer_type1.run),
        ("pst", pst.run),
    ]
    for section, func in plan:
        if not opts.wants(section):
            continue
        print(f"... {section}", file=sys.stderr, flush=True)
        try:
            results.extend(func(issuer, opts))
        except KeyboardInterrupt:
            raise
        except Exception as e:  # one broken section must not hide the others
            results.append(Skip("?", section, f"failed: {type(e).__name__}: {e}"))
    print("## Machine\n")
    print("\n".join(machine()))
    print(
        f"\n## Results ({'quick smoke run, not figures' if opts.quick else 'full run'}: "
        f"{opts.rounds} rounds, {opts.seconds:g} s per HTTP run, "
        f"{time.monotonic() - started:.0f} s in all)\n"
    )
    print(markdown(results))
    failed = [r for r in results if isinstance(r, Skip) and r.reason.startswith("failed")]
    return 1 if failed else 0
