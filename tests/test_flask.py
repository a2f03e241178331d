"""The Flask extension: every flow through Flask's test client, through the generic WSGI
middleware wrapping a Flask app, and over a real WSGI server on loopback."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, g, request
from werkzeug.test import Client

from pat_middleware import ConfigurationError, IssuerKey, TokenChallenge, parse_www_authenticate
from pat_middleware.integrations.flask import (
    EXTENSION_KEY,
    PrivateTokens,
    private_token_required,
    settings_from_config,
)
from pat_middleware.integrations.wsgi import PrivateTokenWSGIMiddleware
from pat_middleware.policy import Policy, TokenInfo
from pat_middleware.policy.observe import DecisionEvent
from pat_middleware.settings import Settings

from . import _wsgi_harness
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

SECRET = "flask-test-secret-0123456789abcdef-0123456789"
EXAMPLE_APP = Path(__file__).resolve().parent.parent / "examples" / "flask_app" / "app.py"


# ----------------------------------------------------------------------------- the client


def werkzeug_send(client: Client) -> Send:
    def send(method: str, path: str, headers: dict[str, str]) -> Reply:
        response = client.open(path, method=method, headers=headers)
        return Reply(
            response.status_code,
            [(k.lower(), v) for k, v in response.headers.items()],
            response.get_data(),
        )

    return send


# ------------------------------------------------------------------------------- the apps


def pat_settings(key: IssuerKey, **extra: Any) -> dict[str, Any]:
    return _wsgi_harness.pat_settings(key, secret=SECRET, **extra)


def flask_config(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {f"PAT_{k.upper()}": v for k, v in settings.items()}


def describe() -> str:
    token = request.environ.get("private_token")
    if not isinstance(token, TokenInfo):
        return "ok none"
    return f"ok via_session={token.via_session} issuer={token.issuer}"


def make_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The test app; with ``config`` it installs :class:`PrivateTokens` from it."""
    app = Flask(__name__)
    app.testing = True
    if config is not None:
        app.config.update(config)
        PrivateTokens(app)

    @app.route("/public")
    def public() -> str:
        return "public"

    @app.route("/protected/page", methods=["GET", "POST"])
    def protected() -> str:
        return describe()

    @app.route("/decorated", methods=["GET", "POST"])
    @private_token_required
    def decorated() -> str:
        return describe()

    @app.route("/decorated-post", methods=["GET", "POST"])
    @private_token_required(methods=["post"])
    def decorated_post() -> str:
        return describe()

    @app.route("/decorated-get", methods=["GET", "POST"])
    @private_token_required(methods=["get"])
    def decorated_get() -> str:
        return describe()

    return app


@dataclass
class Harness:
    """Builds the app for one test in one of three set-ups and hands out browsers."""

    mode: str
    stack: ExitStack

    def start(self, settings: Mapping[str, Any]) -> Callable[[], Browser]:
        if self.mode == "extension":
            flask_client = make_app(flask_config(settings)).test_client(use_cookies=False)
            return lambda: Browser(werkzeug_send(flask_client))
        if self.mode == "wsgi":
            wrapped = PrivateTokenWSGIMiddleware(
                make_app(), settings=Settings.from_mapping(settings)
            )
            client = Client(wrapped, use_cookies=False)
            return lambda: Browser(werkzeug_send(client))
        url = self.stack.enter_context(serve_wsgi(make_app(flask_config(settings))))
        http = self.stack.enter_context(httpx.Client(base_url=url, timeout=10))
        return lambda: Browser(httpx_send(http))


@pytest.fixture(params=["extension", "wsgi", "server"])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with ExitStack() as stack:
        yield Harness(request.param, stack)


# ----------------------------------------------------------------------------- the flows


def test_public_path_untouched(harness: Harness, issuer_key: IssuerKey) -> None:
    browser = harness.start(pat_settings(issuer_key))()
    reply = browser.get("/public")
    assert (reply.status, reply.body) == (200, b"public")
    assert reply.header("www-authenticate") is None
    assert reply.all("set-cookie") == []


def test_protected_path_challenges(harness: Harness, issuer_key: IssuerKey) -> None:
    browser = harness.start(pat_settings(issuer_key))()
    reply = browser.get("/protected/page")
    assert reply.status == 401
    assert reply.header("cache-control") == "no-store"
    header = reply.header("www-authenticate")
    assert header is not None and header.startswith("PrivateToken challenge=")
    (params,) = parse_www_authenticate(header)
    challenge = TokenChallenge.from_bytes(params.challenge)
    assert challenge.issuer_name == ISSUER_NAME
    assert challenge.token_type == issuer_key.token_type
    assert len(challenge.redemption_context) == 32  # per-session by default
    assert params.token_key == issuer_key.spki
    # per-session windows are a quarter of max_age: a challenge lives max_age to 1.25x that
    assert params.max_age is not None and MAX_AGE <= params.max_age <= MAX_AGE * 5 // 4
    assert "pat_session" in reply.cookie_names()
    assert all("HttpOnly" in c for c in reply.all("set-cookie"))


def test_token_passes_then_session_is_verified(
    harness: Harness, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    browser = harness.start(pat_settings(issuer_key))()
    challenged = browser.get("/protected/page")
    reply = browser.get("/protected/page", authorization=answer(challenged, rsa_2048, issuer_key))
    assert (reply.status, reply.body) == (200, b"ok via_session=False issuer=issuer.example")
    assert "pat_verified" in reply.cookie_names()  # added to the app's own response
    again = browser.get("/protected/page")
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
    browser = harness.start(pat_settings(issuer_key))()
    authorization = answer(browser.get("/protected/page"), rsa_2048, issuer_key)
    assert browser.get("/protected/page", authorization=authorization).status == 200
    del browser.jar["pat_verified"]  # so the token, not the session, is judged again
    replayed = browser.get("/protected/page", authorization=authorization)
    assert replayed.status == 401
    assert replayed.header("www-authenticate") is not None
    assert [getattr(r, "pat_reason", None) for r in caplog.records].count("replayed") == 1


def test_token_for_another_sessions_challenge_refused(
    harness: Harness,
    rsa_2048: rsa.RSAPrivateKey,
    issuer_key: IssuerKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pat_middleware")
    new_browser = harness.start(pat_settings(issuer_key))
    alice, mallory = new_browser(), new_browser()
    alices_token = answer(alice.get("/protected/page"), rsa_2048, issuer_key)
    mallory.get("/protected/page")
    reply = mallory.get("/protected/page", authorization=alices_token)
    assert reply.status == 401
    assert "challenge_mismatch" in [getattr(r, "pat_reason", None) for r in caplog.records]
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
    browser = harness.start(pat_settings(issuer_key))()
    challenged = browser.get("/protected/page")
    authorization = answer(challenged, rsa_2048, issuer_key)
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
def test_malformed_authorization_challenged(
    harness: Harness, issuer_key: IssuerKey, authorization: str
) -> None:
    browser = harness.start(pat_settings(issuer_key))()
    browser.get("/protected/page")
    reply = browser.get("/protected/page", authorization=authorization)
    assert reply.status == 401
    assert reply.header("www-authenticate") is not None


def test_oversized_headers_are_refused_or_ignored(
    harness: Harness, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    browser = harness.start(pat_settings(issuer_key))()
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


def test_decorator_protects_view(
    harness: Harness, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    browser = harness.start(pat_settings(issuer_key))()
    challenged = browser.get("/decorated")
    assert challenged.status == 401
    reply = browser.get("/decorated", authorization=answer(challenged, rsa_2048, issuer_key))
    assert (reply.status, reply.body) == (200, b"ok via_session=False issuer=issuer.example")
    assert "pat_verified" in reply.cookie_names()
    assert browser.get("/decorated").body == b"ok via_session=True issuer=None"


def test_decorator_methods(harness: Harness, issuer_key: IssuerKey) -> None:
    browser = harness.start(pat_settings(issuer_key))()
    assert browser.get("/decorated-post").body == b"ok none"
    assert browser.request("POST", "/decorated-post").status == 401
    assert browser.request("POST", "/decorated-get").body == b"ok none"
    assert browser.request("HEAD", "/decorated-get").status == 401  # HEAD runs the GET view


# ---------------------------------------------------------------- Flask-specific behaviour


def test_g_and_environ_hold_the_token(rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey) -> None:
    app = Flask(__name__)
    tokens = PrivateTokens(app, settings=Settings.from_mapping(pat_settings(issuer_key)))
    seen: list[object] = []

    @app.route("/protected/x")
    def view() -> str:
        seen.append(g.private_token)
        assert request.environ["private_token"] is g.private_token
        return "ok"

    @app.route("/public")
    def public() -> str:
        seen.append(g.private_token)
        return "ok"

    assert app.extensions[EXTENSION_KEY] is tokens
    browser = Browser(werkzeug_send(app.test_client(use_cookies=False)))
    browser.get("/public")
    challenged = browser.get("/protected/x")
    assert challenged.status == 401 and len(seen) == 1  # the view did not run
    browser.get("/protected/x", authorization=answer(challenged, rsa_2048, issuer_key))
    assert seen == [None, TokenInfo(ISSUER_NAME, 2, issuer_key.token_key_id.hex())]


def test_instance_decorator_and_init_app_per_app(
    rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    tokens = PrivateTokens()
    apps = [Flask(__name__), Flask(__name__)]
    for app, protect in zip(apps, (["/a"], ["/b"]), strict=True):
        app.config.update(flask_config(pat_settings(issuer_key, protect=protect)))
        tokens.init_app(app)

        @app.route("/a")
        @app.route("/b")
        def both() -> str:
            return "ok"

        @app.route("/c")
        @tokens.required(methods=["GET"])
        def c() -> str:
            return "ok"

    first = Browser(werkzeug_send(apps[0].test_client(use_cookies=False)))
    second = Browser(werkzeug_send(apps[1].test_client(use_cookies=False)))
    assert (first.get("/a").status, first.get("/b").status) == (401, 200)
    assert (second.get("/a").status, second.get("/b").status) == (200, 401)
    challenged = second.get("/c")
    assert challenged.status == 401
    assert second.get("/c", authorization=answer(challenged, rsa_2048, issuer_key)).status == 200
    with apps[0].app_context():
        assert tokens.policy is apps[0].extensions["pat_middleware.policy"]
    with pytest.raises(RuntimeError, match="application context"):
        _ = tokens.policy


def test_wsgi_middleware_and_extension_spend_the_token_once(
    rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    settings = Settings.from_mapping(pat_settings(issuer_key))
    policy = Policy(settings)
    app = make_app()
    PrivateTokens(app, policy=policy)
    client = Client(PrivateTokenWSGIMiddleware(app, policy=policy), use_cookies=False)
    browser = Browser(werkzeug_send(client))
    challenged = browser.get("/protected/page")
    reply = browser.get("/protected/page", authorization=answer(challenged, rsa_2048, issuer_key))
    assert (reply.status, reply.body) == (200, b"ok via_session=False issuer=issuer.example")
    assert reply.cookie_names().count("pat_verified") == 1


def test_decorator_without_policy_is_a_configuration_error() -> None:
    app = Flask(__name__)
    app.testing = True

    @app.route("/x")
    @private_token_required
    def view() -> str:
        return "ok"

    with pytest.raises(ConfigurationError, match="PrivateTokens"):
        app.test_client().get("/x")


def test_settings_file_config(tmp_path: Path, issuer_key: IssuerKey) -> None:
    (tmp_path / "key.txt").write_text(issuer_key.token_key)
    file = tmp_path / "pat.toml"
    file.write_text(
        f'secret = "{SECRET}"\nprotect = ["/protected/*"]\n'
        f'[[issuers]]\nname = "{ISSUER_NAME}"\ntoken_key_file = "key.txt"\n'
    )
    client = make_app({"PAT_SETTINGS_FILE": str(file)}).test_client()
    assert client.get("/protected/page").status_code == 401
    assert client.get("/public").status_code == 200
    relative = settings_from_config({"PAT_SETTINGS_FILE": "pat.toml"}, root_path=tmp_path)
    assert relative.issuers[0].key == issuer_key


def test_unreadable_settings_file_is_named_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError) as info:
        settings_from_config({"PAT_SETTINGS_FILE": "conf/pat.toml"}, root_path="app")
    assert info.value.setting == "PAT_SETTINGS_FILE"
    assert info.value.message.startswith(f"cannot read {tmp_path / 'app' / 'conf' / 'pat.toml'}:")


def test_settings_file_with_keys_outside_its_table_is_refused(
    tmp_path: Path, issuer_key: IssuerKey
) -> None:
    file = tmp_path / "pat.toml"
    file.write_text(
        f'protect = ["/protected/*"]\n[pat_middleware]\nsecret = "{SECRET}"\n'
        f'[[pat_middleware.issuers]]\nname = "{ISSUER_NAME}"\n'
        f'token_key = "{issuer_key.token_key}"\n'
    )
    with pytest.raises(ConfigurationError) as info:
        make_app({"PAT_SETTINGS_FILE": str(file)})
    assert info.value.setting == "protect"
    assert "[pat_middleware]" in info.value.message


@pytest.mark.parametrize(
    ("config", "valid_base", "setting"),
    [
        ({}, False, "PAT_ISSUERS"),
        ({"PAT_MAX_AGE": "sixty"}, True, "PAT_MAX_AGE"),
        ({"PAT_SECRET": "short"}, True, "PAT_SECRET"),
        ({"PAT_PROTECT": ["no-slash"]}, True, "PAT_PROTECT"),
        (
            {"PAT_ISSUERS": [{"name": ISSUER_NAME, "token_key": "AAAA"}]},
            True,
            "PAT_ISSUERS[0].token_key",
        ),
        ({"PAT_PROTCT": ["/x"]}, True, "PAT_PROTCT"),
        ({"PAT_SETTINGS_FILE": "/nonexistent/pat.toml"}, False, "PAT_SETTINGS_FILE"),
        ({"PAT_SETTINGS_FILE": "/nonexistent/pat.toml"}, True, "PAT_COOKIE_SECURE"),
    ],
)
def test_config_errors_name_the_setting(
    issuer_key: IssuerKey, config: dict[str, Any], valid_base: bool, setting: str
) -> None:
    app = Flask(__name__)
    if valid_base:
        app.config.update(flask_config(pat_settings(issuer_key)))
    app.config.update(config)
    with pytest.raises(ConfigurationError) as caught:
        PrivateTokens(app)
    assert caught.value.setting == setting
    assert str(caught.value).startswith(setting + ":")
    assert EXTENSION_KEY not in app.extensions


def test_unrelated_pat_keys_are_left_alone(issuer_key: IssuerKey) -> None:
    config = {**flask_config(pat_settings(issuer_key)), "PAT_GITHUB_TOKEN": "x"}
    assert settings_from_config(config, root_path=".").max_age == MAX_AGE


# ------------------------------------------------------------------------------ example


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pat_example_flask_app", EXAMPLE_APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_app(
    monkeypatch: pytest.MonkeyPatch, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    monkeypatch.setenv("PAT_ISSUER_NAME", ISSUER_NAME)
    monkeypatch.setenv("PAT_TOKEN_KEY", issuer_key.token_key)
    app = _load_example().create_app()
    with serve_wsgi(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        browser = Browser(httpx_send(http))
        assert browser.get("/").status == 200
        for path in ("/members/", "/download"):
            browser.jar.pop("pat_verified", None)
            challenged = browser.get(path)
            assert challenged.status == 401
            reply = browser.get(path, authorization=answer(challenged, rsa_2048, issuer_key))
            assert reply.status == 200, reply
        assert b"Members only" in browser.get("/members/").body


# -------------------------------------------------------------------------------- metrics


class _Events:
    def __init__(self) -> None:
        self.outcomes: list[str] = []

    def record(self, event: DecisionEvent) -> None:
        self.outcomes.append(event.outcome)


def test_extension_gives_the_policy_it_builds_the_metrics_hook(issuer_key: IssuerKey) -> None:
    hook = _Events()
    app = make_app()
    app.config.update(flask_config(pat_settings(issuer_key)))
    tokens = PrivateTokens(app, metrics=hook)
    assert tokens.policy.metrics is hook
    client = app.test_client(use_cookies=False)
    assert client.get("/protected/page").status_code == 401
    assert client.get("/public").status_code == 200
    assert hook.outcomes == ["challenge"]

    ready = Policy(Settings.from_mapping(pat_settings(issuer_key)))
    with pytest.raises(ConfigurationError) as caught:
        PrivateTokens(policy=ready, metrics=hook)
    assert caught.value.setting == "metrics"
