"""The Django integration: every flow through Django's sync and async test clients, through
the generic WSGI middleware wrapping Django's WSGI handler, and over a real WSGI server.

Django can be configured once per process, so every Django test lives in this file.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from http.cookies import Morsel, SimpleCookie
from pathlib import Path
from typing import Any

import django
import httpx
import pytest
from asgiref.sync import iscoroutinefunction
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.checks import Tags, run_checks
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.test import AsyncClient, Client, RequestFactory, override_settings
from django.urls import path
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings

from pat_middleware import ConfigurationError, IssuerKey, TokenChallenge, parse_www_authenticate
from pat_middleware.integrations.django import (
    PrivateTokenMiddleware,
    get_policy,
    private_token_required,
)
from pat_middleware.integrations.django.checks import MIDDLEWARE_PATH, check_settings
from pat_middleware.integrations.django.middleware import passed_token
from pat_middleware.integrations.wsgi import PrivateTokenWSGIMiddleware
from pat_middleware.policy import Policy, TokenInfo
from pat_middleware.policy.observe import DecisionEvent
from pat_middleware.settings import Settings

from . import _wsgi_harness
from ._path_servers import path_settings
from ._wsgi_harness import (
    ISSUER_NAME,
    MAX_AGE,
    Browser,
    Reply,
    Send,
    answer,
    assert_oversized_headers_refused,
    httpx_send,
    serve_wsgi,
)
from .test_paths import _TARGETS

SECRET = "django-test-secret-0123456789abcdef-012345"
_PATH_TARGETS = _TARGETS
REPO = Path(__file__).resolve().parent.parent
EXAMPLE_DIR = REPO / "examples" / "django_project"

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="django-test-only-key",
        ALLOWED_HOSTS=["testserver", "127.0.0.1"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["pat_middleware.integrations.django"],
        MIDDLEWARE=[MIDDLEWARE_PATH],
        DATABASES={},
        USE_TZ=True,
    )
    django.setup()


# ------------------------------------------------------------------------------- the views


def describe(request: HttpRequest) -> HttpResponse:
    token = passed_token(request)
    if token is None:
        return HttpResponse(b"ok none")
    return HttpResponse(f"ok via_session={token.via_session} issuer={token.issuer}")


def public(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"public")


async def protected_async(request: HttpRequest) -> HttpResponse:
    return describe(request)


@private_token_required
def decorated(request: HttpRequest) -> HttpResponse:
    return describe(request)


@private_token_required
async def decorated_async(request: HttpRequest) -> HttpResponse:
    return describe(request)


@private_token_required(methods=["post"])
def decorated_post(request: HttpRequest) -> HttpResponse:
    return describe(request)


@private_token_required(methods=["get"])
def decorated_get(request: HttpRequest) -> HttpResponse:
    return describe(request)


@private_token_required(accept=["private-token"])
def decorated_fresh(request: HttpRequest) -> HttpResponse:
    return describe(request)


urlpatterns = [
    path("public", public),
    path("protected/page", describe),
    path("protected/async", protected_async),
    path("decorated", decorated),
    path("decorated-async", decorated_async),
    path("decorated-post", decorated_post),
    path("decorated-get", decorated_get),
    path("decorated-fresh", decorated_fresh),
]


# ---------------------------------------------------------------------------- the clients


def _django_reply(response: HttpResponseBase, body: bytes) -> Reply:
    headers = [(k.lower(), v) for k, v in response.items()]
    headers += [("set-cookie", m.output(header="").strip()) for m in response.cookies.values()]
    return Reply(response.status_code, headers, body)


def django_send(client: Client) -> Send:
    def send(method: str, path: str, headers: dict[str, str]) -> Reply:
        client.cookies.clear()  # the Browser's jar is the only one
        response = client.generic(method, path, headers=headers)
        return _django_reply(response, response.content)

    return send


def django_async_send(client: AsyncClient) -> Send:
    def send(method: str, path: str, headers: dict[str, str]) -> Reply:
        # AsyncClient always adds its own cookie header and ASGIRequest joins repeated headers
        # with ",", so an explicit Cookie header would arrive as "...,". Hand the raw value over
        # as one morsel whose coded value is everything after the first "=".
        client.cookies = SimpleCookie()
        raw = headers.pop("Cookie", None)
        if raw is not None:
            name, _, rest = raw.partition("=")
            morsel: Morsel[str] = Morsel()
            morsel.set(name, rest, rest)
            client.cookies[name] = morsel

        async def fetch() -> Reply:
            response = await client.generic(method, path, headers=headers)
            return _django_reply(response, response.content)

        return asyncio.run(fetch())

    return send


def pat_settings(key: IssuerKey, **extra: Any) -> dict[str, Any]:
    return _wsgi_harness.pat_settings(key, secret=SECRET, **extra)


@pytest.fixture(autouse=True)
def pat_middleware_setting(issuer_key: IssuerKey) -> Iterator[dict[str, Any]]:
    value = pat_settings(issuer_key)
    with override_settings(PAT_MIDDLEWARE=value):
        yield value


@dataclass
class Harness:
    """Sets up Django for one test in one of four ways and hands out browsers."""

    mode: str
    stack: ExitStack

    def start(self, pat: Mapping[str, Any] | None = None) -> Callable[[], Browser]:
        if pat is not None:
            self.stack.enter_context(override_settings(PAT_MIDDLEWARE=pat))
        if self.mode == "client":
            client = Client()
            return lambda: Browser(django_send(client))
        if self.mode == "async":
            async_client = AsyncClient()
            return lambda: Browser(django_async_send(async_client))
        if self.mode == "wsgi":  # only the generic WSGI middleware, in front of Django
            self.stack.enter_context(override_settings(MIDDLEWARE=[]))
            wrapped = PrivateTokenWSGIMiddleware(
                WSGIHandler(), settings=Settings.from_mapping(settings.PAT_MIDDLEWARE)
            )
            transport = httpx.WSGITransport(app=wrapped)
            http = self.stack.enter_context(
                httpx.Client(transport=transport, base_url="http://testserver")
            )
            return lambda: Browser(httpx_send(http))
        url = self.stack.enter_context(serve_wsgi(WSGIHandler()))
        http = self.stack.enter_context(httpx.Client(base_url=url, timeout=10))
        return lambda: Browser(httpx_send(http))


@pytest.fixture(params=["client", "async", "wsgi", "server"])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with ExitStack() as stack:
        yield Harness(request.param, stack)


def reasons(caplog: pytest.LogCaptureFixture) -> list[str | None]:
    return [getattr(r, "pat_reason", None) for r in caplog.records]


# ----------------------------------------------------------------------------- the flows


def test_public_path_untouched(harness: Harness) -> None:
    browser = harness.start()()
    reply = browser.get("/public")
    assert (reply.status, reply.body) == (200, b"public")
    assert reply.header("www-authenticate") is None
    assert reply.all("set-cookie") == []


def test_protected_path_challenges(harness: Harness, issuer_key: IssuerKey) -> None:
    browser = harness.start()()
    reply = browser.get("/protected/page")
    assert reply.status == 401
    assert reply.header("cache-control") == "no-store"
    assert reply.header("content-type") == "text/html; charset=utf-8"
    header = reply.header("www-authenticate")
    assert header is not None and header.startswith("PrivateToken challenge=")
    (params,) = parse_www_authenticate(header)
    challenge = TokenChallenge.from_bytes(params.challenge)
    assert challenge.issuer_name == ISSUER_NAME
    assert len(challenge.redemption_context) == 32  # per-session by default
    assert params.token_key == issuer_key.spki
    # per-session windows are a quarter of max_age: a challenge lives max_age to 1.25x that
    assert params.max_age is not None and MAX_AGE <= params.max_age <= MAX_AGE * 5 // 4
    assert "pat_session" in reply.cookie_names()
    assert all("HttpOnly" in c for c in reply.all("set-cookie"))


@pytest.mark.parametrize("page", ["/protected/page", "/protected/async"])
def test_token_passes_then_session_is_verified(
    harness: Harness, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey, page: str
) -> None:
    browser = harness.start()()
    challenged = browser.get(page)
    assert challenged.status == 401
    reply = browser.get(page, authorization=answer(challenged, rsa_2048, issuer_key))
    assert (reply.status, reply.body) == (200, b"ok via_session=False issuer=issuer.example")
    assert "pat_verified" in reply.cookie_names()  # added to the view's own response
    again = browser.get(page)
    assert (again.status, again.body) == (200, b"ok via_session=True issuer=None")


def test_per_request_mode_sets_two_cookies(
    harness: Harness, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    browser = harness.start(pat_settings(issuer_key, redemption_context="per-request"))()
    challenged = browser.get("/protected/page")
    assert challenged.status == 401
    assert sorted(challenged.cookie_names()) == ["pat_session", "pat_session_c"]
    authorization = answer(challenged, rsa_2048, issuer_key)
    reply = browser.get("/protected/page", authorization=authorization)
    assert (reply.status, reply.body) == (200, b"ok via_session=False issuer=issuer.example")
    del browser.jar["pat_verified"]
    assert browser.get("/protected/page", authorization=authorization).status == 401


def test_replayed_token_refused(
    harness: Harness,
    rsa_2048: rsa.RSAPrivateKey,
    issuer_key: IssuerKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pat_middleware")
    browser = harness.start()()
    authorization = answer(browser.get("/protected/page"), rsa_2048, issuer_key)
    assert browser.get("/protected/page", authorization=authorization).status == 200
    del browser.jar["pat_verified"]  # so the token, not the session, is judged again
    replayed = browser.get("/protected/page", authorization=authorization)
    assert replayed.status == 401
    assert replayed.header("www-authenticate") is not None
    assert reasons(caplog).count("replayed") == 1


def test_token_for_another_sessions_challenge_refused(
    harness: Harness,
    rsa_2048: rsa.RSAPrivateKey,
    issuer_key: IssuerKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pat_middleware")
    new_browser = harness.start()
    alice, mallory = new_browser(), new_browser()
    alices_token = answer(alice.get("/protected/page"), rsa_2048, issuer_key)
    mallory.get("/protected/page")
    assert mallory.get("/protected/page", authorization=alices_token).status == 401
    assert "challenge_mismatch" in reasons(caplog)
    assert alice.get("/protected/page", authorization=alices_token).status == 200


@pytest.mark.parametrize(
    "cookie",
    [
        "pat_session={session}x",
        "pat_session=AAAA.BBBB.CCCC",
        'pat_session=%%%; ;;=; pat_verified="unterminated',
        "pat_session=" + "A" * 5000,
    ],
)
def test_tampered_cookie_gets_fresh_challenge(
    harness: Harness, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey, cookie: str
) -> None:
    browser = harness.start()()
    authorization = answer(browser.get("/protected/page"), rsa_2048, issuer_key)
    reply = browser.get(
        "/protected/page",
        authorization=authorization,
        cookie=cookie.format(session=browser.jar["pat_session"]),
    )
    assert reply.status == 401
    assert reply.header("www-authenticate") is not None
    assert "pat_session" in reply.cookie_names()  # a new session, hence a new challenge


@pytest.mark.parametrize(
    "authorization",
    [
        "PrivateToken token=!!!",
        'PrivateToken token="AAAA"',
        "PrivateToken",
        "PrivateToken token=" + "A" * 10_000,
        "Basic dXNlcjpwYXNz",
        "PrivateToken token=AAAA, PrivateToken token=BBBB, , ,",
    ],
)
def test_malformed_authorization_challenged(harness: Harness, authorization: str) -> None:
    browser = harness.start()()
    browser.get("/protected/page")
    reply = browser.get("/protected/page", authorization=authorization)
    assert reply.status == 401
    assert reply.header("www-authenticate") is not None


def test_oversized_headers_are_refused_or_ignored(
    harness: Harness, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    browser = harness.start()()
    assert_oversized_headers_refused(browser, rsa_2048, issuer_key, "/protected/page")


def test_protect_methods_limits_protection(
    harness: Harness, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    browser = harness.start(pat_settings(issuer_key, protect_methods=["POST"]))()
    reply = browser.get("/protected/page")
    assert (reply.status, reply.body) == (200, b"ok none")
    challenged = browser.request("POST", "/protected/page")
    assert challenged.status == 401
    passed = browser.request(
        "POST", "/protected/page", authorization=answer(challenged, rsa_2048, issuer_key)
    )
    assert passed.status == 200


@pytest.mark.parametrize("view", ["/decorated", "/decorated-async"])
def test_decorator_protects_view(
    harness: Harness, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey, view: str
) -> None:
    browser = harness.start()()
    challenged = browser.get(view)
    assert challenged.status == 401
    reply = browser.get(view, authorization=answer(challenged, rsa_2048, issuer_key))
    assert (reply.status, reply.body) == (200, b"ok via_session=False issuer=issuer.example")
    assert "pat_verified" in reply.cookie_names()
    assert browser.get(view).body == b"ok via_session=True issuer=None"


def test_decorator_methods(harness: Harness) -> None:
    browser = harness.start()()
    assert browser.get("/decorated-post").body == b"ok none"
    assert browser.request("POST", "/decorated-post").status == 401
    assert browser.request("POST", "/decorated-get").body == b"ok none"
    assert browser.request("HEAD", "/decorated-get").status == 401  # HEAD runs the GET view


def test_decorator_accept_limits_the_signals(
    harness: Harness, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    browser = harness.start()()
    challenged = browser.get("/decorated")
    assert (
        browser.get("/decorated", authorization=answer(challenged, rsa_2048, issuer_key)).status
        == 200
    )
    assert browser.get("/decorated").status == 200  # the verified session
    refused = browser.get("/decorated-fresh")
    assert refused.status == 401
    reply = browser.get("/decorated-fresh", authorization=answer(refused, rsa_2048, issuer_key))
    assert (reply.status, reply.body) == (200, b"ok via_session=False issuer=issuer.example")


def test_cors_preflights() -> None:
    client = Client()
    headers = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    page = client.options("/protected/page", headers=headers)  # the middleware's path rule
    assert (page.status_code, page.content) == (200, b"")  # the view ran; nothing came back
    assert page["Content-Length"] == "0"
    decorated_reply = client.options("/decorated", headers=headers)
    assert (decorated_reply.status_code, decorated_reply.content) == (204, b"")
    assert client.options("/protected/page").status_code == 401  # no preflight: judged


def test_decorator_refuses_unknown_signals_at_import() -> None:
    with pytest.raises(ConfigurationError) as caught:
        private_token_required(accept=["privatetoken"])
    assert caught.value.setting == "accept"


# --------------------------------------------------------------- Django-specific behaviour


def test_disallowed_host_is_challenged_not_rejected() -> None:
    """The middleware reads HTTP_HOST itself: get_host() would raise DisallowedHost (400)."""
    browser = Browser(django_send(Client()))
    reply = browser.get("/protected/page", host="not-allowed.example")
    assert reply.status == 401


def test_override_settings_rebuilds_the_policy(
    pat_middleware_setting: dict[str, Any], issuer_key: IssuerKey
) -> None:
    browser = Browser(django_send(Client()))
    first = get_policy()
    assert get_policy() is first
    assert browser.get("/protected/page").status == 401
    with override_settings(PAT_MIDDLEWARE=pat_settings(issuer_key, protect=["/public"])):
        assert get_policy() is not first
        assert browser.get("/public").status == 401
        assert browser.get("/protected/page").status == 200
    assert get_policy() is not first  # rebuilt for the restored dict as well
    pat_middleware_setting["protect"] = ["/decorated-post"]  # changed in place
    assert browser.get("/protected/page").status == 200
    assert browser.get("/decorated-post").status == 401


def test_wsgi_middleware_and_django_middleware_spend_the_token_once(
    rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    policy = get_policy()
    wrapped = PrivateTokenWSGIMiddleware(WSGIHandler(), policy=policy)
    with httpx.Client(transport=httpx.WSGITransport(app=wrapped), base_url="http://t") as http:
        browser = Browser(httpx_send(http))
        challenged = browser.get("/protected/page")
        reply = browser.get(
            "/protected/page", authorization=answer(challenged, rsa_2048, issuer_key)
        )
    assert (reply.status, reply.body) == (200, b"ok via_session=False issuer=issuer.example")
    assert reply.cookie_names().count("pat_verified") == 1


def test_middleware_is_sync_and_async_capable() -> None:
    def sync_view(request: HttpRequest) -> HttpResponseBase:
        return HttpResponse()

    async def async_view(request: HttpRequest) -> HttpResponseBase:
        return HttpResponse()

    assert PrivateTokenMiddleware.sync_capable and PrivateTokenMiddleware.async_capable
    assert not iscoroutinefunction(PrivateTokenMiddleware(sync_view))
    assert iscoroutinefunction(PrivateTokenMiddleware(async_view))


def test_middleware_fails_at_start_on_bad_settings() -> None:
    with (
        override_settings(PAT_MIDDLEWARE={"max_age": 0}),
        pytest.raises(ConfigurationError, match="max_age"),
    ):
        PrivateTokenMiddleware(lambda request: HttpResponse())


def test_request_attribute_holds_the_token(
    rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    seen: list[object] = []

    def view(request: HttpRequest) -> HttpResponse:
        seen.append(getattr(request, "private_token", "missing"))
        return HttpResponse()

    middleware = PrivateTokenMiddleware(view)
    browser = Browser(lambda method, p, headers: _send_to(middleware, method, p, headers))
    browser.get("/public")
    challenged = browser.get("/protected/x")
    assert challenged.status == 401 and seen == [None]  # the view did not run
    browser.get("/protected/x", authorization=answer(challenged, rsa_2048, issuer_key))
    assert seen == [None, TokenInfo(ISSUER_NAME, 2, issuer_key.token_key_id.hex())]


def _send_to(
    middleware: PrivateTokenMiddleware, method: str, page: str, headers: dict[str, str]
) -> Reply:
    request = RequestFactory().generic(method, page, headers=headers)
    response = middleware(request)
    assert isinstance(response, HttpResponseBase)
    return _django_reply(response, response.content if isinstance(response, HttpResponse) else b"")


def test_settings_file(tmp_path: Path, issuer_key: IssuerKey) -> None:
    (tmp_path / "key.txt").write_text(issuer_key.token_key)
    (tmp_path / "pat.toml").write_text(
        f'secret = "{SECRET}"\nprotect = ["/public"]\n'
        f'[[issuers]]\nname = "{ISSUER_NAME}"\ntoken_key_file = "key.txt"\n'
    )
    with override_settings(PAT_MIDDLEWARE={"settings_file": tmp_path / "pat.toml"}):
        browser = Browser(django_send(Client()))
        assert browser.get("/public").status == 401
        assert browser.get("/protected/page").status == 200
    with override_settings(PAT_MIDDLEWARE={"settings_file": "pat.toml"}, BASE_DIR=tmp_path):
        assert isinstance(get_policy(), Policy)


def test_settings_file_with_keys_outside_its_table_is_refused(
    tmp_path: Path, issuer_key: IssuerKey
) -> None:
    (tmp_path / "pat.toml").write_text(
        f'protect = ["/public"]\n[pat_middleware]\nsecret = "{SECRET}"\n'
        f'[[pat_middleware.issuers]]\nname = "{ISSUER_NAME}"\n'
        f'token_key = "{issuer_key.token_key}"\n'
    )
    with override_settings(PAT_MIDDLEWARE={"settings_file": tmp_path / "pat.toml"}):
        (message,) = check_settings()
    assert message.id == "pat_middleware.E002"
    assert "protect:" in message.msg and "[pat_middleware]" in message.msg


# --------------------------------------------------------------------------------- checks


def check_ids() -> list[str]:
    return [m.id or "" for m in run_checks(tags=[Tags.security]) if m.id]


def test_check_e001_missing_setting() -> None:
    with override_settings():
        del settings.PAT_MIDDLEWARE
        assert "pat_middleware.E001" in check_ids()


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({"issuers": []}, "issuers:"),
        ("pat.toml", "PAT_MIDDLEWARE:"),
        ({"settings_file": "/nonexistent/pat.toml"}, "settings_file:"),
        ({"settings_file": "/nonexistent/pat.toml", "max_age": 5}, "settings_file:"),
        ({"max_agee": 5}, "max_agee:"),
    ],
)
def test_check_e002_invalid_settings(value: object, named: str) -> None:
    with override_settings(PAT_MIDDLEWARE=value):
        assert "pat_middleware.E002" in check_ids()
        (message,) = check_settings()
        assert message.id == "pat_middleware.E002"
        assert named in message.msg


def test_check_e002_names_the_setting_a_typo_meant() -> None:
    value = {**settings.PAT_MIDDLEWARE, "verified_duraton": 0}
    with override_settings(PAT_MIDDLEWARE=value):
        (message,) = check_settings()
    assert message.id == "pat_middleware.E002"
    assert "verified_duraton: unknown setting; did you mean verified_duration?" in message.msg


def test_check_warnings() -> None:
    assert check_ids() == ["pat_middleware.W001"]  # cookie_secure = false, DEBUG off
    with override_settings(DEBUG=True):
        assert check_ids() == []
    with override_settings(MIDDLEWARE=[]):
        assert check_ids() == ["pat_middleware.W001", "pat_middleware.W003"]
    long_path = "pat_middleware.integrations.django.middleware.PrivateTokenMiddleware"
    with override_settings(MIDDLEWARE=[long_path]):
        assert check_ids() == ["pat_middleware.W001"]
    development = {**settings.PAT_MIDDLEWARE, "development": True, "cookie_secure": True}
    del development["secret"]
    with override_settings(PAT_MIDDLEWARE=development):
        assert check_ids() == ["pat_middleware.W002"]


# -------------------------------------------------------------------------------- metrics


class Events:
    """A metrics hook; ``PAT_METRICS`` may name this class or :data:`EVENTS`."""

    def __init__(self) -> None:
        self.outcomes: list[str] = []

    def record(self, event: DecisionEvent) -> None:
        self.outcomes.append(event.outcome)


EVENTS = Events()


def test_pat_metrics_reaches_the_policy() -> None:
    hook = Events()
    with override_settings(PAT_METRICS=hook):
        assert get_policy().metrics is hook
        assert Client().get("/protected/page").status_code == 401
        assert hook.outcomes == ["challenge"]
    with override_settings(PAT_METRICS=f"{__name__}.EVENTS"):
        assert get_policy().metrics is EVENTS
    with override_settings(PAT_METRICS=f"{__name__}.Events"):
        made = get_policy().metrics
        assert isinstance(made, Events) and made is not EVENTS
        assert get_policy().metrics is made  # one instance per setting value
    assert get_policy().metrics is None


@pytest.mark.parametrize(
    ("value", "fragment"),
    [(f"{__name__}.NOWHERE", "cannot import"), (42, "record(event)"), ("os.path", "record")],
)
def test_check_e003_invalid_metrics(value: object, fragment: str) -> None:
    with override_settings(PAT_METRICS=value):
        [message] = [m for m in check_settings() if m.id == "pat_middleware.E003"]
        assert message.msg.startswith("PAT_METRICS is invalid: ") and fragment in message.msg
        with pytest.raises(ConfigurationError) as caught:
            PrivateTokenMiddleware(lambda request: HttpResponse())
        assert caught.value.setting == "PAT_METRICS"


# -------------------------------------------------------------------------------- example


@pytest.fixture
def example_project(monkeypatch: pytest.MonkeyPatch, issuer_key: IssuerKey) -> Iterator[Any]:
    monkeypatch.setenv("PAT_ISSUER_NAME", ISSUER_NAME)
    monkeypatch.setenv("PAT_TOKEN_KEY", issuer_key.token_key)
    monkeypatch.syspath_prepend(str(EXAMPLE_DIR))
    before = set(sys.modules)
    try:
        yield importlib.import_module("project.settings")
    finally:
        for name in set(sys.modules) - before:
            if name == "project" or name.startswith("project."):
                del sys.modules[name]


def test_example_project(
    example_project: Any, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    assert example_project.PAT_MIDDLEWARE["issuers"] == [
        {"name": ISSUER_NAME, "token_key": issuer_key.token_key}
    ]
    with override_settings(
        ROOT_URLCONF="project.urls",
        MIDDLEWARE=example_project.MIDDLEWARE,
        PAT_MIDDLEWARE=example_project.PAT_MIDDLEWARE,
        BASE_DIR=example_project.BASE_DIR,
    ):
        browser = Browser(django_send(Client()))
        assert browser.get("/").status == 200
        for page in ("/members/", "/download/"):
            browser.jar.pop("pat_verified", None)
            challenged = browser.get(page)
            assert challenged.status == 401
            reply = browser.get(page, authorization=answer(challenged, rsa_2048, issuer_key))
            assert reply.status == 200, reply
        assert b"Members only" in browser.get("/members/").body


def test_example_project_passes_its_checks(issuer_key: IssuerKey) -> None:
    env = {
        **os.environ,
        "PAT_ISSUER_NAME": ISSUER_NAME,
        "PAT_TOKEN_KEY": issuer_key.token_key,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--fail-level", "WARNING"],
        cwd=EXAMPLE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


# ------------------------------------------- paths: what Django routes needs a token


@hypothesis_settings(max_examples=200, deadline=None)
@given(target=_PATH_TARGETS)
@example(target="/caf%C3%A9")
@example(target="/files/./secret.txt")
@example(target="/files//secret.txt")
@example(target="/files/x/../private/secret.txt")
def test_whatever_django_routes_to_a_protected_view_needs_a_token(
    issuer_key: IssuerKey, target: str
) -> None:
    """The property of test_paths.py for Django: the URL resolver and ``static.serve`` fed a
    gunicorn environ; what the unprotected project serves, the protected one refuses."""
    from .apps import RULES
    from .test_paths import _call_wsgi, _leaks

    with override_settings(
        ROOT_URLCONF="tests.apps.django_paths.urls",
        ALLOWED_HOSTS=["localhost"],
        PAT_MIDDLEWARE=path_settings(issuer_key, []),
    ):
        if not _leaks(*_call_wsgi(WSGIHandler(), target)):
            return
    with override_settings(
        ROOT_URLCONF="tests.apps.django_paths.urls",
        ALLOWED_HOSTS=["localhost"],
        PAT_MIDDLEWARE=path_settings(issuer_key, RULES),
    ):
        status, body = _call_wsgi(WSGIHandler(), target)
    assert not _leaks(status, body), f"{target!r} reached protected content ({status})"
