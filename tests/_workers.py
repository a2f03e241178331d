"""Servers with several worker processes for the tests: gunicorn and uvicorn serving
``tests/_served_apps.py`` with a settings file written by the test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from pat_middleware import IssuerKey, build_authorization
from pat_middleware.policy import Policy, RequestInfo
from pat_middleware.settings import Settings

from ._origin import ISSUER, answer, cookie_string, header, set_cookies
from ._servers import free_port, server_process

ROOT = Path(__file__).resolve().parent.parent
SECRET = "worker-processes-test-secret-0123456789abcdef"


def settings_mapping(key: IssuerKey, **extra: Any) -> dict[str, Any]:
    return {
        "issuers": [{"name": ISSUER, "token_key": key.token_key}],
        "secret": SECRET,
        "protect": ["/protected"],
        "cookie_secure": False,
        **extra,
    }


def write_settings(path: Path, key: IssuerKey, **extra: Any) -> Path:
    """A TOML settings file: ``/protected`` needs a token from ``key``; ``extra`` adds
    top-level settings (strings, booleans, integers)."""

    def toml(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return f'"{value}"' if isinstance(value, str) else str(value)

    data = settings_mapping(key, **extra)
    lines = [f"{k} = {toml(v)}" for k, v in data.items() if k not in ("issuers", "protect")]
    lines += ['protect = ["/protected"]', "", "[[issuers]]"]
    lines += [f'name = "{ISSUER}"', f'token_key = "{key.token_key}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def server_env(settings: Path) -> dict[str, str]:
    env = {**os.environ, "PAT_SETTINGS": str(settings)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@contextmanager
def gunicorn(
    app: str, settings: Path, *flags: str, output: list[str] | None = None
) -> Iterator[str]:
    """``gunicorn FLAGS tests._served_apps:APP()`` on a free port; yields its base URL once
    it answers."""
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"]
    argv += ["--log-level", "warning", "--graceful-timeout", "2", *flags]
    argv.append(f"tests._served_apps:{app}()")
    base = f"http://127.0.0.1:{port}"
    with server_process(
        argv, base + "/open", env=server_env(settings), cwd=str(ROOT), output=output,
        name="gunicorn",
    ):  # fmt: skip
        yield base


class _SharedLike:
    """A store standing for a shared one (no per-process epoch): what a policy backed by
    Redis derives its challenges with."""

    def spend(self, key: bytes, ttl: float) -> bool:
        return True

    async def spend_async(self, key: bytes, ttl: float) -> bool:
        return True

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def token_for_the_secret(key: IssuerKey, private_key: rsa.RSAPrivateKey) -> tuple[str, str]:
    """(Authorization, Cookie) of a valid token for a per-session challenge of a policy
    with :data:`SECRET` and a shared store: any worker with that secret and no per-process
    epoch in its contexts accepts it, as every memory:// worker did before."""
    policy = Policy(Settings.from_mapping(settings_mapping(key)), replay_store=_SharedLike())
    decision = policy.evaluate(RequestInfo("GET", "/protected"))
    www = header(decision.headers, "WWW-Authenticate")
    assert decision.status == 401 and www is not None
    token = answer(www, private_key, key)
    return build_authorization(token), cookie_string(set_cookies(decision.header_lines()))


def send(base: str, authorization: str | None = None, cookie: str | None = None) -> httpx.Response:
    """GET /protected on a connection of its own (so the server may pick any worker)."""
    headers = {"Connection": "close"}
    if authorization is not None:
        headers["Authorization"] = authorization
    if cookie is not None:
        headers["Cookie"] = cookie
    with httpx.Client(base_url=base, timeout=10) as client:
        return client.get("/protected", headers=headers)


def workers_answering(base: str, count: int, tries: int = 200) -> set[int]:
    """The pids of the workers seen answering /whoami, once ``count`` of them have (or
    ``tries`` requests went by)."""
    pids: set[int] = set()
    for _ in range(tries):
        with httpx.Client(base_url=base, timeout=10) as client:
            pids.add(client.get("/whoami", headers={"Connection": "close"}).json()["pid"])
        if len(pids) >= count:
            break
    return pids


__all__ = [
    "ROOT",
    "SECRET",
    "check_in_a_spawned_process",
    "gunicorn",
    "run_to_exit",
    "send",
    "server_env",
    "settings_mapping",
    "token_for_the_secret",
    "workers_answering",
    "write_settings",
]


def run_to_exit(argv: list[str], settings: Path, timeout: float) -> tuple[int, str]:
    """Run a server expected to stop by itself: (exit code, output). Run in a session of
    its own, so that on a timeout its workers are killed with it, not left behind."""
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=server_env(settings), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        raise AssertionError(f"still running after {timeout} s:\n{output[-3000:]}") from None
    return proc.returncode, output


def check_in_a_spawned_process(settings: dict[str, Any]) -> str | None:
    """Run in a process multiprocessing started: what Policy.check_process says there."""
    return Policy(Settings.from_mapping(settings)).check_process()
