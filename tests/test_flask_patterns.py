"""Flask's patterns: the application factory (``PrivateTokens()`` + ``init_app``), a protected
blueprint, ``accept=``, CORS preflights, and the decorator-order trap (``@tokens.required``
above ``@app.route`` leaves the route open: refused at start-up). The factory app is served
by a real gunicorn, and driven through Flask's own test client."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Blueprint, Flask

from pat_middleware import ConfigurationError
from pat_middleware.core.headers import build_authorization
from pat_middleware.integrations.flask import (
    EXTENSION_KEY,
    POLICY_KEY,
    PrivateTokens,
    private_token_required,
)
from pat_middleware.tokens.blind_rsa import IssuerKey

from ._origin import answer, challenges_of
from ._servers import gunicorn_process
from .apps import MARK, SETTINGS_ENV
from .apps.flask_factory import create_app, tokens

ROOT = Path(__file__).resolve().parent.parent
SECRET = "flask-patterns-secret-0123456789-abcdefgh"
PREFLIGHT = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}


def pat_settings(key: IssuerKey, **extra: Any) -> dict[str, Any]:
    return {
        "issuers": [{"name": "issuer.example", "token_key": key.token_key}],
        "secret": SECRET,
        "cookie_secure": False,
        "protect": ["/protected"],
        **extra,
    }


def _redeem(
    client: httpx.Client, path: str, private_key: rsa.RSAPrivateKey, key: IssuerKey
) -> httpx.Response:
    first = client.request("GET", path)
    assert first.status_code == 401, first.text
    token = answer(first.headers["WWW-Authenticate"], private_key, key)
    return client.get(path, headers={"Authorization": build_authorization(token)})


# --------------------------------------------------------- the factory, over gunicorn


@pytest.fixture(scope="module")
def factory_url(issuer_key: IssuerKey) -> Iterator[str]:
    env = {
        **os.environ,
        SETTINGS_ENV: json.dumps(pat_settings(issuer_key)),
        "PYTHONPATH": str(ROOT),
    }
    with gunicorn_process("tests.apps.flask_factory:create_app()", env=env) as (host, port):
        yield f"http://{host}:{port}"


@pytest.fixture
def client(factory_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=factory_url, timeout=10.0) as c:
        yield c


def test_factory_blueprint_is_protected_over_gunicorn(
    client: httpx.Client, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    assert client.get("/public").text == "public"
    for path in ("/members/", "/members/form"):
        refused = client.get(path)
        assert refused.status_code == 401
        assert challenges_of(refused.headers["WWW-Authenticate"])
        assert MARK not in refused.text
    passed = _redeem(client, "/members/", rsa_2048, issuer_key)
    assert passed.text == f"{MARK} signal=private-token"
    assert passed.headers["Cache-Control"] == "private"
    assert client.post("/members/form").text == f"{MARK} signal=session"


def test_factory_decorator_accept_over_gunicorn(
    client: httpx.Client, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    assert _redeem(client, "/members/", rsa_2048, issuer_key).status_code == 200
    assert client.get("/members/").status_code == 200  # the verified session
    assert client.get("/download").status_code == 401  # accepts fresh tokens only
    assert _redeem(client, "/download", rsa_2048, issuer_key).text.endswith("private-token")


def test_blueprint_preflight_is_not_challenged_over_gunicorn(client: httpx.Client) -> None:
    response = client.options("/members/form", headers=PREFLIGHT)
    assert response.status_code == 200  # Flask's automatic OPTIONS answer
    assert response.content == b""
    assert "www-authenticate" not in response.headers


# ------------------------------------------------------- the factory, Flask's test client


def test_factory_keeps_state_per_app_in_extensions(issuer_key: IssuerKey) -> None:
    first, second = create_app(pat_settings(issuer_key)), create_app(pat_settings(issuer_key))
    assert first.extensions[EXTENSION_KEY] is second.extensions[EXTENSION_KEY] is tokens
    assert first.extensions[POLICY_KEY] is not second.extensions[POLICY_KEY]
    with first.app_context():
        assert tokens.policy is first.extensions[POLICY_KEY]
    assert first.test_client().get("/members/").status_code == 401


# ----------------------------------------------------------------- the decorator order


def _app(issuer_key: IssuerKey, *, init_first: bool = True) -> tuple[Flask, PrivateTokens]:
    app = Flask(__name__)
    app.testing = True
    app.config.update({f"PAT_{k.upper()}": v for k, v in pat_settings(issuer_key).items()})
    extension = PrivateTokens()
    if init_first:
        extension.init_app(app)
    return app, extension


def test_decorator_above_the_route_fails_at_decoration(issuer_key: IssuerKey) -> None:
    app, extension = _app(issuer_key)
    with pytest.raises(ConfigurationError) as caught:

        @extension.required
        @app.get("/open")
        def open_view() -> str:
            return MARK

    assert caught.value.setting == "view 'open_view'"
    assert "put @app.route (or @bp.route) on top" in str(caught.value)
    with pytest.raises(ConfigurationError):

        @private_token_required(methods=["GET"])
        @app.get("/open2")
        def open_view2() -> str:
            return MARK


def test_decorator_above_the_route_fails_in_init_app(issuer_key: IssuerKey) -> None:
    app, extension = _app(issuer_key, init_first=False)

    @extension.required
    @app.get("/open")
    def open_view() -> str:
        return MARK

    with pytest.raises(ConfigurationError) as caught:
        extension.init_app(app)
    assert caught.value.setting == "view 'open_view'"


def test_decorator_above_a_blueprint_route_fails_before_any_view_runs(
    issuer_key: IssuerKey,
) -> None:
    app, extension = _app(issuer_key)
    blueprint = Blueprint("late", __name__)

    @extension.required
    @blueprint.get("/late")
    def late() -> str:
        return MARK

    app.register_blueprint(blueprint)
    client = app.test_client()
    for _ in range(2):  # on every request, not only the first
        with pytest.raises(ConfigurationError) as caught:
            client.get("/late")
        assert caught.value.setting == "view 'late.late'"


def test_decorator_under_the_route_protects_it(issuer_key: IssuerKey) -> None:
    app, extension = _app(issuer_key)
    blueprint = Blueprint("bp", __name__)

    @app.get("/guarded")
    @extension.required
    def guarded() -> str:
        return MARK

    @blueprint.get("/bp-guarded")
    @extension.required
    def bp_guarded() -> str:
        return MARK

    app.register_blueprint(blueprint)
    client = app.test_client()
    for path in ("/guarded", "/bp-guarded"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert MARK.encode() not in response.data


def test_decorator_on_an_async_view(issuer_key: IssuerKey) -> None:
    """Flask runs only the routed function through ensure_sync: the decorator must run the
    async view it wraps the same way, or every request is a 500."""
    app, extension = _app(issuer_key)

    @app.route("/async", methods=["GET", "POST"])
    @extension.required(methods=["POST"])
    async def async_view() -> str:
        return MARK

    client = app.test_client()
    assert client.get("/async").get_data(as_text=True) == MARK
    refused = client.post("/async")
    assert refused.status_code == 401
    assert MARK.encode() not in refused.data


def test_unknown_signal_fails_at_decoration(issuer_key: IssuerKey) -> None:
    _, extension = _app(issuer_key)
    with pytest.raises(ConfigurationError) as caught:
        extension.required(accept=["sesion"])
    assert caught.value.setting == "accept"


def test_protect_blueprint_after_registration_fails_naming_it(issuer_key: IssuerKey) -> None:
    app, extension = _app(issuer_key)
    blueprint = Blueprint("registered", __name__)

    @blueprint.get("/registered")
    def registered() -> str:
        return MARK

    app.register_blueprint(blueprint)
    with pytest.raises(ConfigurationError) as caught:
        extension.protect_blueprint(blueprint)
    assert caught.value.setting == "protect_blueprint('registered')"
    assert "before app.register_blueprint" in str(caught.value)


# ------------------------------------------------------------------------ preflights


def test_preflights(issuer_key: IssuerKey) -> None:
    app, extension = _app(issuer_key)
    ran: list[str] = []

    @app.route("/protected", methods=["GET", "OPTIONS"])
    def protected() -> str:
        ran.append("protected")
        return MARK  # a view answering OPTIONS like GET

    @app.route("/decorated", methods=["GET", "OPTIONS"])
    @extension.required
    def decorated() -> str:
        ran.append("decorated")
        return MARK

    client = app.test_client()
    response = client.options("/protected", headers=PREFLIGHT)
    assert (response.status_code, response.data) == (200, b"")  # nothing of the view's body
    assert response.headers["Content-Length"] == "0"
    response = client.options("/decorated", headers=PREFLIGHT)
    assert (response.status_code, response.data) == (204, b"")
    assert ran == ["protected"]  # the decorated view did not run
    assert client.options("/protected").status_code == 401  # not a preflight: judged
