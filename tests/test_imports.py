"""`import pat_middleware` stays framework-free (the sans-IO core promise)."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = ("starlette", "flask", "django", "redis", "httpx", "uvicorn", "prometheus_client")


@pytest.mark.parametrize(
    "module",
    [
        "pat_middleware",
        "pat_middleware.policy",
        "pat_middleware.policy.observe",
        "pat_middleware.integrations.asgi",
        "pat_middleware.integrations.wsgi",
        "pat_middleware.settings",
        "pat_middleware.issuer",
        "pat_middleware.cli",
        "pat_middleware.core.redemption_record",
        "pat_middleware.issuer.pst",
        "pat_middleware.issuer.pst_client",
    ],
)
def test_module_imports_no_framework(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == ""


def test_public_api_is_explicit() -> None:
    import pat_middleware

    for name in pat_middleware.__all__:
        assert hasattr(pat_middleware, name), name
