"""The benchmark harness still runs: ``python -m benchmarks --quick`` prints every figure.

A smoke run only: no timing target is asserted (the machine running the tests may be busy).
Parts whose tools are missing (wrk falls back to the Python driver; no node, no
redis-server) must print a clean "skipped" line instead of failing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_run_prints_a_row_for_every_figure() -> None:
    env = {**os.environ, "PAT_BENCH_NO_INSTALL": "1"}  # no apt-get or npm from a test
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--servers", "asgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    table = done.stdout
    assert "| # | figure | ours (median) |" in table
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    for item in ("1", "2", "S", "3a", "3b", "3c", "4", "5", "6", "7", "8"):
        assert any(row.startswith(f"| {item} |") for row in rows), (item, table)
    assert any("reference: a middleware that does nothing" in row for row in rows), table
    assert any("ASGI demo origin in process: verified session" in row for row in rows), table
    assert any("reference: the same 401 bytes answered as a constant" in row for row in rows)
    assert "failed:" not in table
    assert "## Machine" in table and "cryptography" in table
