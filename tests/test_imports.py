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


def test_policy_and_token_info_are_exported_from_the_package() -> None:
    """What a newcomer reaches for first (README: ``Policy(settings)``, the ``TokenInfo``
    in ``scope["private_token"]``) is importable from the package itself."""
    import pat_middleware
    from pat_middleware.policy import Policy, TokenInfo

    assert {"Policy", "TokenInfo", "Settings", "load_settings"} <= set(pat_middleware.__all__)
    assert pat_middleware.Policy is Policy
    assert pat_middleware.TokenInfo is TokenInfo
