"""The pytest plugin, used as a user would: small test files run by pytest in a subprocess,
with the plugin registered through the ``pytest11`` entry point pyproject.toml declares (a
dist-info written beside the files, as ``pip install`` would), one example per framework."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
#: Inner runs are as strict as this suite: a warning from the plugin fails them.
STRICT = ("-W", "error", "--strict-markers", "-p", "no:cacheprovider")
SUBPROCESS_TIMEOUT = 120


def entry_points() -> dict[str, str]:
    with PYPROJECT.open("rb") as f:
        project = tomllib.load(f)["project"]
    found: dict[str, str] = project["entry-points"]["pytest11"]
    return found


def install(pytester: pytest.Pytester) -> None:
    """Register the plugin in the inner run's path as an installed distribution would."""
    dist = pytester.path / "pat_middleware_under_test-0.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: pat-middleware-under-test\nVersion: 0\n"
    )
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points().items())
    (dist / "entry_points.txt").write_text("[pytest11]\n" + lines)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    install(pytester)
    return pytester.runpytest_subprocess(*STRICT, *args, timeout=SUBPROCESS_TIMEOUT)


def run_alone(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.RunResult:
    """:func:`run` with no other plugin auto-loaded (they cost seconds of start-up) and ours
    loaded by its entry point name, as ``-p pat_middleware`` does in such a session."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return run(pytester, "-p", "pat_middleware")


def test_entry_point_names_the_plugin_module() -> None:
    assert entry_points() == {"pat_middleware": "pat_middleware.integrations.pytest_plugin"}


def test_installed_plugin_offers_its_fixtures_and_can_be_turned_off(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_fixtures="""
        from pat_middleware.core.wire import TokenChallenge
        from pat_middleware.integrations.testing import PatIssuer, PatSettings

        def test_issuer_is_one_per_session(pat_issuer, request):
            assert isinstance(pat_issuer, PatIssuer)
            assert request.getfixturevalue("pat_issuer") is pat_issuer

        def test_settings_trust_the_issuer(pat_settings, pat_issuer):
            assert isinstance(pat_settings, PatSettings)
            settings = pat_settings(protect=["/signup"], max_age=30)
            assert [i.name for i in settings.issuers] == [pat_issuer.name]
            assert settings.issuers[0].keys == (pat_issuer.key,)
            assert settings.max_age == 30 and not settings.cookies.secure
            assert pat_settings.mapping()["secret"] == pat_settings.secret

        def test_issue_without_http(pat_issuer):
            challenge = TokenChallenge(2, pat_issuer.name, b"", ("app.test",))
            token = pat_issuer.issue(challenge)
            assert token.challenge_digest == challenge.digest

        def test_policy_is_built_and_closed(pat_policy):
            policy = pat_policy(protect=["/x"])
            assert policy.protects("GET", "/x")
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=4)
    off = run(pytester, "-p", "no:pat_middleware")
    off.assert_outcomes(errors=4)
    off.stdout.fnmatch_lines(["*fixture 'pat_issuer' not found*"])


def test_importing_the_plugin_imports_no_framework() -> None:
    code = textwrap.dedent(
        """
        import sys
        import pat_middleware.integrations.pytest_plugin
        heavy = ("starlette", "fastapi", "flask", "werkzeug", "django", "httpx", "requests",
                 "uvicorn", "redis", "prometheus_client", "opentelemetry")
        ours = ("pat_middleware.issuer", "pat_middleware.cli",
                "pat_middleware.integrations.testing", "pat_middleware.integrations.httpx_auth")
        print(",".join(sorted(m for m in sys.modules
                              if m.split(".")[0] in heavy or m.startswith(ours))))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


STARLETTE_APP = """
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from pat_middleware.integrations.asgi import PrivateTokenMiddleware


def create_app(settings=None, policy=None):
    async def signup(request):
        return JSONResponse({"signed_up": (await request.body()).decode()})

    app = Starlette(routes=[Route("/signup", signup, methods=["POST"])])
    return PrivateTokenMiddleware(app, settings=settings, policy=policy)


def create_fastapi_app(settings):
    app = FastAPI()

    @app.post("/comment")
    def comment(text: str):
        return {"comment": text}

    app.add_middleware(PrivateTokenMiddleware, settings=settings)
    return app
"""

STARLETTE_TESTS = """
import asyncio

import httpx
from fastapi.testclient import TestClient

from app import create_app, create_fastapi_app


def test_signup_is_challenged(pat_settings):
    client = TestClient(create_app(pat_settings(protect=["/signup"])))
    response = client.post("/signup")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("PrivateToken challenge=")


def test_signup_with_a_token(pat_settings, pat_client):
    client = pat_client(TestClient(create_app(pat_settings(protect=["/signup"]))))
    response = client.post("/signup", content=b"ada")
    assert response.status_code == 200
    assert response.json() == {"signed_up": "ada"}
    assert len(client.challenged) == 1
    # The verified session the token opened carries the next request.
    assert client.post("/signup", content=b"bob").status_code == 200
    assert len(client.challenged) == 1


def test_answer_a_challenge_by_hand(pat_policy, pat_issuer):
    client = TestClient(create_app(policy=pat_policy(protect=["/signup"])))
    challenged = client.post("/signup", content=b"x")
    answered = client.post("/signup", content=b"x", headers=pat_issuer.answer_challenge(challenged))
    assert answered.status_code == 200


def test_fastapi(pat_settings, pat_client):
    client = pat_client(TestClient(create_fastapi_app(pat_settings(protect=["/comment"]))))
    response = client.post("/comment", params={"text": "hi"})
    assert response.status_code == 200
    assert response.json() == {"comment": "hi"}


def test_async_httpx_client(pat_settings, pat_client, pat_issuer):
    app = create_app(pat_settings(protect=["/signup"]))

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as http:
            wrapped = await pat_client(http).post("/signup", content=b"eve")
            # Or the httpx.Auth, which answers inside the client's own flow:
            authed = await http.post("/signup", content=b"eva", auth=pat_issuer.httpx_auth())
            return wrapped, authed

    wrapped, authed = asyncio.run(main())
    assert wrapped.json() == {"signed_up": "eve"}
    assert authed.status_code == 200
"""


def test_starlette_and_fastapi_example(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(app=STARLETTE_APP, test_starlette_app=STARLETTE_TESTS)
    run_alone(pytester, monkeypatch).assert_outcomes(passed=5)


FLASK_TESTS = """
from flask import Flask, g, request

from pat_middleware.integrations.flask import PrivateTokens


def create_app(settings):
    app = Flask(__name__)
    tokens = PrivateTokens(app, settings=settings)

    @app.post("/signup")
    @tokens.required
    def signup():
        return {"name": request.form["name"], "via_session": g.private_token.via_session}

    return app


def test_signup_is_challenged(pat_settings):
    client = create_app(pat_settings()).test_client()
    assert client.post("/signup", data={"name": "ada"}).status_code == 401


def test_signup_with_a_token(pat_settings, pat_client):
    client = pat_client(create_app(pat_settings()).test_client())
    response = client.post("/signup", data={"name": "ada"})
    assert response.status_code == 200
    assert response.json == {"name": "ada", "via_session": False}
    again = client.post("/signup", data={"name": "bob"})
    assert again.json == {"name": "bob", "via_session": True}
"""


def test_flask_example(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_flask_app=FLASK_TESTS)
    run_alone(pytester, monkeypatch).assert_outcomes(passed=2)


DJANGO_CONFTEST = """
import django
from django.conf import settings


def pytest_configure():
    settings.configure(
        SECRET_KEY="only-for-these-tests",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF="urls",
        INSTALLED_APPS=["pat_middleware.integrations.django"],
        MIDDLEWARE=["pat_middleware.integrations.django.PrivateTokenMiddleware"],
        DATABASES={},
    )
    django.setup()
"""

DJANGO_URLS = """
from django.http import HttpResponse
from django.urls import path

from pat_middleware.integrations.django import private_token_required


@private_token_required
def signup(request):
    return HttpResponse(f"welcome, via_session={request.private_token.via_session}")


def home(request):
    return HttpResponse("home")


urlpatterns = [path("signup", signup), path("", home)]
"""

DJANGO_TESTS = """
import asyncio

import pytest
from django.test import AsyncClient, Client, override_settings


@pytest.fixture
def pat_django(pat_settings):
    with override_settings(PAT_MIDDLEWARE=pat_settings.mapping()):
        yield


def test_signup_is_challenged(pat_django):
    assert Client().get("").status_code == 200
    assert Client().post("/signup").status_code == 401


def test_signup_with_a_token(pat_django, pat_client):
    client = pat_client(Client())
    response = client.post("/signup", {"name": "ada"})
    assert response.status_code == 200
    assert response.content == b"welcome, via_session=False"
    assert client.get("/signup").content == b"welcome, via_session=True"


def test_async_client(pat_django, pat_client):
    async def main():
        return await pat_client(AsyncClient()).post("/signup")

    assert asyncio.run(main()).status_code == 200
"""


def test_django_example(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeconftest(DJANGO_CONFTEST)
    pytester.makepyfile(urls=DJANGO_URLS, test_django_app=DJANGO_TESTS)
    run_alone(pytester, monkeypatch).assert_outcomes(passed=3)
