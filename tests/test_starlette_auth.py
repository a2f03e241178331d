"""Starlette's authentication with PrivateTokenBackend, on_error and requires, end to end over
a real uvicorn; and the trap it avoids: Starlette's own requires answers 403 without a
challenge."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.authentication import requires as starlette_requires
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from pat_middleware.errors import ConfigurationError
from pat_middleware.integrations.asgi import PrivateTokenMiddleware
from pat_middleware.integrations.starlette_auth import (
    PrivateTokenBackend,
    PrivateTokenUser,
    on_error,
    requires,
)
from pat_middleware.policy import Policy
from pat_middleware.tokens.blind_rsa import IssuerKey

from ._origin import SESSION_COOKIE, VERIFIED_COOKIE, challenges_of, make_settings, redeem
from ._servers import serve_asgi, served_both_ways


def whoami(request: Request) -> dict[str, Any]:
    user = request.user
    return {
        "scopes": sorted(request.auth.scopes),
        "authenticated": user.is_authenticated,
        "signal": user.token.signal if isinstance(user, PrivateTokenUser) else None,
    }


async def public(request: Request) -> Response:
    return JSONResponse(whoami(request))


@requires("private_token")
async def protected(request: Request) -> Response:
    return JSONResponse(whoami(request))


@requires("private_token:private-token")
async def fresh(request: Request) -> Response:
    return JSONResponse(whoami(request))


@requires()
def sync_page(request: Request) -> Response:
    return JSONResponse(whoami(request))


@requires(["private_token", "admin"])
async def admin(request: Request) -> Response:
    return PlainTextResponse("admin")


@starlette_requires("private_token")
async def starlette_page(request: Request) -> Response:
    return PlainTextResponse("starlette")


@requires()
async def cors(request: Request) -> Response:
    raise AssertionError("a preflight must not run the endpoint")


ROUTES = [
    Route("/public", public),
    Route("/protected", protected),
    Route("/fresh", fresh),
    Route("/sync", sync_page),
    Route("/admin", admin),
    Route("/starlette", starlette_page),
    Route("/cors", cors, methods=["GET", "OPTIONS"]),
]


def build_app(policy: Policy, *, middleware: bool) -> Starlette:
    stack = [
        Middleware(
            AuthenticationMiddleware,
            backend=PrivateTokenBackend(None if middleware else policy),
            on_error=on_error,
        )
    ]
    if middleware:
        stack.insert(0, Middleware(PrivateTokenMiddleware, policy=policy))
    return Starlette(routes=ROUTES, middleware=stack)


@pytest.fixture(scope="module")
def policy(issuer_key: IssuerKey) -> Policy:
    return Policy(make_settings(issuer_key, protect=[], cookie_secure=False))


base_url = served_both_ways(build_app)


def test_requires_answers_the_challenge(client: httpx.Client) -> None:
    response = client.get("/protected")
    assert response.status_code == 401
    assert challenges_of(response.headers["WWW-Authenticate"])
    assert SESSION_COOKIE in response.cookies
    assert response.headers["Cache-Control"] == "no-store"


def test_starlette_requires_gives_403_without_a_challenge(client: httpx.Client) -> None:
    """The trap: nothing a client could answer with a token. Use this module's requires."""
    response = client.get("/starlette")
    assert response.status_code == 403
    assert "www-authenticate" not in response.headers


def test_token_gives_scopes_user_and_cookies(
    client: httpx.Client, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    response = redeem(client, "/protected", rsa_2048, issuer_key)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "scopes": ["private_token", "private_token:private-token"],
        "authenticated": False,  # a vouched-for visitor, not a logged-in user
        "signal": "private-token",
    }
    assert VERIFIED_COOKIE in response.cookies
    assert response.headers["Cache-Control"] == "private"
    # The verified session authenticates every later request, public pages included.
    for path in ("/public", "/protected", "/sync"):
        again = client.get(path)
        assert again.status_code == 200, path
        assert again.json()["scopes"] == ["private_token", "private_token:session"]
        if path != "/public":  # (without the middleware only requires() writes it)
            assert again.headers["Cache-Control"] == "private"
    assert client.get("/starlette").status_code == 200  # Starlette's requires sees the scope


def test_with_the_middleware_any_page_passed_by_the_backend_is_private(
    policy: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    with (
        serve_asgi(build_app(policy, middleware=True)) as url,
        httpx.Client(base_url=url, timeout=10.0) as client,
    ):
        assert redeem(client, "/protected", rsa_2048, issuer_key).status_code == 200
        for path in ("/public", "/starlette"):
            response = client.get(path)
            assert response.status_code == 200
            assert response.headers["Cache-Control"] == "private"


def test_signal_scope_needs_that_signal(
    client: httpx.Client, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    assert redeem(client, "/protected", rsa_2048, issuer_key).status_code == 200
    assert client.get("/fresh").status_code == 401  # a session is not a fresh token
    response = redeem(client, "/fresh", rsa_2048, issuer_key)
    assert response.status_code == 200
    assert "private_token:private-token" in response.json()["scopes"]


def test_public_page_without_signals_is_untouched(client: httpx.Client) -> None:
    response = client.get("/public")
    assert response.json() == {"scopes": [], "authenticated": False, "signal": None}
    assert "set-cookie" not in response.headers
    assert "cache-control" not in response.headers


def test_refused_token_is_answered_by_on_error(client: httpx.Client) -> None:
    first = client.get("/protected")
    response = client.get("/public", headers={"Authorization": "PrivateToken token=!!!"})
    assert first.status_code == response.status_code == 401
    assert challenges_of(response.headers["WWW-Authenticate"])


def test_other_missing_scopes_keep_starlettes_answer(
    client: httpx.Client, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    assert redeem(client, "/protected", rsa_2048, issuer_key).status_code == 200
    assert client.get("/admin").status_code == 403


def test_sync_endpoint(
    client: httpx.Client, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    response = redeem(client, "/sync", rsa_2048, issuer_key)
    assert response.status_code == 200
    assert VERIFIED_COOKIE in response.cookies


def test_cors_preflight(client: httpx.Client) -> None:
    headers = {"Origin": "https://app.example", "Access-Control-Request-Method": "PUT"}
    assert client.options("/cors", headers=headers).status_code == 204


def test_unknown_scope_signal_fails_at_start_up() -> None:
    with pytest.raises(ConfigurationError) as caught:
        requires("private_token:privat-token")
    assert caught.value.setting == "accept"


@pytest.mark.parametrize("scope", ["private-token", "private-token:session"])
def test_signal_spelling_of_the_scope_fails_at_start_up(scope: str) -> None:
    """``private-token`` is the signal's name; the scope is ``private_token``: a route
    requiring the former would refuse every request with a 403."""
    with pytest.raises(ConfigurationError) as caught:
        requires(["authenticated", scope])
    assert caught.value.setting == "scopes"
    assert "'private_token'" in str(caught.value)
