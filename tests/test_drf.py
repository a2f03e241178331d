"""Django REST framework, end to end over a real gunicorn serving a DRF project
(tests/apps/drf_project): the permission, the authentication class, the cookies DRF gives
them no response for, accept, preflights, drf-spectacular's schema and the system checks.

Django is configured once per process (tests/test_django.py does it for this one), so the
DRF project runs in its own server and check processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pat_middleware.core.headers import build_authorization
from pat_middleware.tokens.blind_rsa import IssuerKey

from ._origin import SESSION_COOKIE, VERIFIED_COOKIE, answer, challenges_of
from ._servers import gunicorn_process
from .apps import MARK, SETTINGS_ENV

ROOT = Path(__file__).resolve().parent.parent
SECRET = "drf-tests-secret-0123456789-abcdefghijklm"
SETTINGS_MODULE = "tests.apps.drf_project.settings"


def pat_settings(key: IssuerKey) -> dict[str, Any]:
    return {
        "issuers": [{"name": "issuer.example", "token_key": key.token_key}],
        "secret": SECRET,
        "cookie_secure": False,
        "origin_info": ["127.0.0.1"],
    }


def _env(key: IssuerKey) -> dict[str, str]:
    return {
        **os.environ,
        SETTINGS_ENV: json.dumps(pat_settings(key)),
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
    }


@pytest.fixture(scope="module")
def base_url(issuer_key: IssuerKey) -> Iterator[str]:
    app = "tests.apps.drf_project.wsgi:application"
    with gunicorn_process(app, env=_env(issuer_key)) as (host, port):
        yield f"http://{host}:{port}"


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10.0, headers={"Host": "127.0.0.1"}) as c:
        yield c


def _redeem(
    client: httpx.Client, path: str, private_key: rsa.RSAPrivateKey, key: IssuerKey
) -> httpx.Response:
    first = client.get(path)
    assert first.status_code == 401, first.text
    token = answer(first.headers["WWW-Authenticate"], private_key, key)
    return client.get(path, headers={"Authorization": build_authorization(token)})


def test_challenge_carries_the_session_cookie(client: httpx.Client) -> None:
    response = client.get("/items")
    assert response.status_code == 401
    assert challenges_of(response.headers["WWW-Authenticate"])
    assert SESSION_COOKIE in response.cookies  # written by the middleware: DRF has no hook
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json() == {"detail": "A Private Access Token is required."}
    assert MARK not in response.text


def test_token_passes_then_the_session(
    client: httpx.Client, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    response = _redeem(client, "/items", rsa_2048, issuer_key)
    assert response.status_code == 200, response.text
    assert response.json() == {"mark": MARK, "signal": "private-token", "user_authenticated": False}
    assert VERIFIED_COOKIE in response.cookies
    assert response.headers["Cache-Control"] == "private"
    again = client.post("/items")
    assert again.status_code == 201
    assert again.json()["signal"] == "session"
    assert again.headers["Cache-Control"] == "private"


def test_refused_token_is_challenged_by_the_authentication_class(client: httpx.Client) -> None:
    client.get("/items")
    response = client.get("/public", headers={"Authorization": "PrivateToken token=!!!"})
    assert response.status_code == 401
    assert challenges_of(response.headers["WWW-Authenticate"])
    assert response.json()["detail"] == "The Private Access Token was refused."


def test_accepting_limits_the_signals(
    client: httpx.Client, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    assert _redeem(client, "/items", rsa_2048, issuer_key).status_code == 200
    assert client.get("/fresh").status_code == 401
    assert _redeem(client, "/fresh", rsa_2048, issuer_key).json()["signal"] == "private-token"


def test_public_view_and_preflight(client: httpx.Client) -> None:
    public = client.get("/public")
    assert public.json() == {"page": "public"}
    assert "set-cookie" not in public.headers
    preflight = client.options(
        "/items", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 200  # DRF's metadata answer, not a challenge
    assert "www-authenticate" not in preflight.headers
    assert MARK not in preflight.text


def test_spectacular_schema_shows_the_scheme(client: httpx.Client) -> None:
    response = client.get("/schema", params={"format": "json"})
    assert response.status_code == 200, response.text
    schema = response.json()
    scheme = schema["components"]["securitySchemes"]["PrivateToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "PrivateToken")
    assert {"PrivateToken": []} in schema["paths"]["/items"]["get"]["security"]


def test_misspelt_accept_on_a_subclass_fails_at_import(issuer_key: IssuerKey) -> None:
    script = (
        "import django\n"
        "django.setup()\n"
        "from pat_middleware.errors import ConfigurationError\n"
        "from pat_middleware.integrations import drf\n"
        "for base in (drf.PrivateTokenAuthentication, drf.HasPrivateToken):\n"
        "    try:\n"
        "        type('Mine', (base,), {'accept': frozenset({'sesion'})})\n"
        "    except ConfigurationError as e:\n"
        "        print(e.setting)\n"
        "ok = type('Ok', (drf.HasPrivateToken,), {'accept': 'session'})\n"
        "print(sorted(ok.accept))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        env=_env(issuer_key),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.stdout.split() == ["accept", "accept", "['session']"], run.stderr


# ---------------------------------------------------------------------- system checks


def _check(issuer_key: IssuerKey, code: str) -> subprocess.CompletedProcess[str]:
    """``django check`` for the DRF project with its settings changed by ``code``."""
    script = (
        "import django, tests.apps.drf_project.settings as s\n"
        f"{code}\n"
        "from django.core.management import call_command\n"
        "django.setup()\n"
        "call_command('check', '--tag', 'security')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        env=_env(issuer_key),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_checks_pass_for_the_project(issuer_key: IssuerKey) -> None:
    run = _check(issuer_key, "")
    assert "pat_middleware.W004" not in run.stderr + run.stdout
    assert "pat_middleware.E005" not in run.stderr + run.stdout


def test_check_w004_authentication_not_first(issuer_key: IssuerKey) -> None:
    code = (
        "s.REST_FRAMEWORK['DEFAULT_AUTHENTICATION_CLASSES'].insert("
        "0, 'rest_framework.authentication.BasicAuthentication')"
    )
    run = _check(issuer_key, code)
    assert "pat_middleware.W004" in run.stderr + run.stdout


def test_check_e004_middleware_missing(issuer_key: IssuerKey) -> None:
    run = _check(issuer_key, "s.MIDDLEWARE = []")
    assert run.returncode != 0
    assert "pat_middleware.E005" in run.stderr + run.stdout
