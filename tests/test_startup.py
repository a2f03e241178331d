"""Wrong settings stop the server at start-up, for every adapter, over real server processes:
a non-zero exit and a line naming the setting, never a server that answers 500s.

Starlette and FastAPI build middleware lazily, on the app's first call (the lifespan
start-up), so an error raised in the middleware's constructor used to reach uvicorn as
"ASGI 'lifespan' protocol appears unsupported", after which every request got a 500.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pat_middleware.tokens.blind_rsa import IssuerKey

from ._servers import GUNICORN, free_port, server_process
from .apps.startup import SETTINGS_FILE_ENV

ROOT = Path(__file__).resolve().parent.parent
SECRET = "startup-tests-secret-0123456789-abcdefgh"
TIMEOUT = 60


def _issuer(key: IssuerKey) -> str:
    return f'[[issuers]]\nname = "issuer.example"\ntoken_key = "{key.token_key}"\n'


@pytest.fixture
def settings_files(tmp_path: Path, issuer_key: IssuerKey) -> dict[str, Path]:
    """A good settings file, and one per mistake (keyed by the setting it gets wrong)."""
    files = {
        "good": f'secret = "{SECRET}"\nprotect = ["/x"]\n' + _issuer(issuer_key),
        "secret": 'protect = ["/x"]\n' + _issuer(issuer_key),
        "replay_store": (
            f'secret = "{SECRET}"\nreplay_store = "redis://127.0.0.1:notaport/0"\n'
            + _issuer(issuer_key)
        ),
    }
    paths = {name: tmp_path / f"{name}.toml" for name in files}
    for name, text in files.items():
        paths[name].write_text(text)
    paths["settings_file"] = tmp_path / "missing.toml"  # never written
    return paths


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def _uvicorn(app: str, *args: str) -> list[str]:
    port = str(free_port())
    return [sys.executable, "-m", "uvicorn", app, "--port", port, *args]


@pytest.mark.parametrize("app", ["fastapi_app", "starlette_app"])
@pytest.mark.parametrize("setting", ["settings_file", "secret", "replay_store"])
def test_uvicorn_exits_naming_the_setting(
    settings_files: dict[str, Path], app: str, setting: str
) -> None:
    env = _env(**{SETTINGS_FILE_ENV: str(settings_files[setting])})
    run = _run(_uvicorn(f"tests.apps.startup:{app}"), env)
    assert run.returncode != 0, run.stderr
    named = [line for line in run.stderr.splitlines() if f"{setting}:" in line]
    assert len(named) == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert "lifespan' protocol appears unsupported" not in run.stderr
    assert "Application startup complete" not in run.stderr


def test_uvicorn_serves_with_good_settings(settings_files: dict[str, Path]) -> None:
    """The control: the same app and server start and answer with the good file."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "tests.apps.startup:fastapi_app", "--port", str(port)]
    env = _env(**{SETTINGS_FILE_ENV: str(settings_files["good"])})
    url = f"http://127.0.0.1:{port}"
    with server_process(argv, f"{url}/public", env=env, cwd=str(ROOT)):
        assert httpx.get(f"{url}/public").json() == {"ok": "public"}
        assert httpx.get(f"{url}/x").status_code == 401


def test_without_lifespan_every_request_gets_503_and_one_log_line(
    settings_files: dict[str, Path],
) -> None:
    port = free_port()
    argv = [
        *[sys.executable, "-m", "uvicorn", "tests.apps.startup:fastapi_app"],
        *["--port", str(port), "--lifespan", "off"],
    ]
    env = _env(**{SETTINGS_FILE_ENV: str(settings_files["settings_file"])})
    output: list[str] = []
    url = f"http://127.0.0.1:{port}"
    with server_process(argv, f"{url}/public", env=env, cwd=str(ROOT), output=output):
        for path in ("/public", "/x", "/public"):
            response = httpx.get(url + path)
            assert response.status_code == 503
            assert response.headers["Cache-Control"] == "no-store"
            assert b"missing.toml" not in response.content  # nothing about the server
    [log] = output
    assert [line for line in log.splitlines() if "settings_file:" in line] == [
        f"pat-middleware is not configured: settings_file: cannot read "
        f"{settings_files['settings_file']}: No such file or directory"
    ]
    assert "Traceback" not in log


def test_flask_run_exits_naming_the_setting(settings_files: dict[str, Path]) -> None:
    env = _env(**{SETTINGS_FILE_ENV: str(settings_files["settings_file"])})
    argv = [sys.executable, "-m", "flask", "--app", "tests.apps.startup:create_flask_app"]
    run = _run([*argv, "run", "--port", str(free_port())], env)
    assert run.returncode != 0
    assert "ConfigurationError: PAT_SETTINGS_FILE: cannot read" in run.stderr


@pytest.fixture
def gunicorn_env() -> Iterator[dict[str, str]]:
    yield _env(DJANGO_SETTINGS_MODULE="tests.apps.django_paths.settings")


def test_gunicorn_flask_factory_exits_naming_the_setting(
    settings_files: dict[str, Path], gunicorn_env: dict[str, str]
) -> None:
    env = {**gunicorn_env, SETTINGS_FILE_ENV: str(settings_files["secret"])}
    argv = [*GUNICORN, "-b", f"127.0.0.1:{free_port()}", "tests.apps.startup:create_flask_app()"]
    run = _run(argv, env)
    assert run.returncode != 0
    assert "ConfigurationError: secret: a secret of at least 32 characters" in run.stderr
    assert "Worker failed to boot" in run.stderr


def test_gunicorn_django_exits_naming_the_setting(
    gunicorn_env: dict[str, str], issuer_key: IssuerKey
) -> None:
    issuers = [{"name": "issuer.example", "token_key": issuer_key.token_key}]
    settings = json.dumps({"issuers": issuers, "max_age": 0})
    env = {**gunicorn_env, "PAT_TEST_SETTINGS": settings}
    argv = [*GUNICORN, "-b", f"127.0.0.1:{free_port()}", "tests.apps.django_paths.wsgi:application"]
    run = _run(argv, env)
    assert run.returncode != 0
    assert "ConfigurationError: max_age:" in run.stderr
    assert "Worker failed to boot" in run.stderr


# ------------------------------------------------------------------ the rule, in process


def test_built_outside_an_event_loop_the_error_raises_at_once(tmp_path: Path) -> None:
    from pat_middleware.errors import ConfigurationError
    from pat_middleware.integrations.asgi import PrivateTokenMiddleware

    with pytest.raises(ConfigurationError) as caught:
        PrivateTokenMiddleware(_never_called, settings_file=str(tmp_path / "missing.toml"))
    assert caught.value.setting == "settings_file"


def test_built_inside_an_event_loop_the_error_fails_the_lifespan(tmp_path: Path) -> None:
    import asyncio
    from typing import Any

    from pat_middleware.integrations.asgi import PrivateTokenMiddleware

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        sent.append(message)

    async def main() -> str:
        middleware = PrivateTokenMiddleware(
            _never_called, settings_file=str(tmp_path / "missing.toml")
        )
        await middleware({"type": "lifespan"}, receive, send)
        return repr(middleware)

    assert asyncio.run(main()) == "PrivateTokenMiddleware(misconfigured: settings_file)"
    [failed] = sent
    assert failed["type"] == "lifespan.startup.failed"
    assert failed["message"].startswith("settings_file: cannot read ")


async def _never_called(scope: object, receive: object, send: object) -> None:
    raise AssertionError("the app must not be called")
