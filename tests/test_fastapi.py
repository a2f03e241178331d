"""FastAPI: the PrivateTokenSecurity scheme end to end over a real uvicorn, and through
FastAPI's own TestClient; the OpenAPI document; the traps of FastAPI's HTTPBase and of
dependency responses that an endpoint's own Response drops."""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations, and
# the Annotated aliases built inside build_api would not resolve from strings.

import dataclasses
from typing import Annotated, Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI, Security
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient

from pat_middleware.core.headers import build_authorization
from pat_middleware.errors import ConfigurationError
from pat_middleware.integrations.asgi import PrivateTokenMiddleware
from pat_middleware.integrations.fastapi import PrivateTokenSecurity
from pat_middleware.integrations.starlette import (
    PrivateTokenRequired,
    exception_handler,
    private_token_dependency,
)
from pat_middleware.policy import Policy, TokenInfo
from pat_middleware.tokens.blind_rsa import IssuerKey

from ._origin import SESSION_COOKIE, VERIFIED_COOKIE, answer, challenges_of, make_settings, redeem
from ._servers import serve_asgi, served_both_ways

ORIGIN = "https://app.example"


def _info(token: TokenInfo | None) -> dict[str, Any] | None:
    return dataclasses.asdict(token) if token else None


def build_api(policy: Policy, *, middleware: bool, handler: bool = False) -> FastAPI:
    """Protected routes under /api (no path rules: the scheme alone protects them)."""
    api = FastAPI()
    scheme = PrivateTokenSecurity(None if middleware else policy)
    fresh_only = PrivateTokenSecurity(None if middleware else policy, accept=["private-token"])
    Token = Annotated[TokenInfo | None, Security(scheme)]

    @api.get("/public")
    async def public() -> dict[str, str]:
        return {"page": "public"}

    @api.get("/api/data", responses=scheme.responses)
    async def data(token: Token) -> dict[str, Any]:
        return {"private_token": _info(token)}

    @api.get("/api/own-response")
    async def own_response(token: Token) -> PlainTextResponse:
        return PlainTextResponse("mine", headers={"Cache-Control": "public, max-age=60"})

    @api.get("/api/fresh")
    async def fresh(token: Annotated[TokenInfo | None, Depends(fresh_only)]) -> dict[str, Any]:
        return {"private_token": _info(token)}

    @api.api_route("/api/cors", methods=["GET", "OPTIONS"], include_in_schema=False)
    async def cors(token: Token) -> dict[str, str]:
        raise AssertionError("a preflight must not run the endpoint")

    if handler:
        api.add_exception_handler(PrivateTokenRequired, exception_handler)
    if middleware:
        api.add_middleware(PrivateTokenMiddleware, policy=policy)
    return api


@pytest.fixture(scope="module")
def policy(issuer_key: IssuerKey) -> Policy:
    return Policy(make_settings(issuer_key, protect=[], cookie_secure=False))


base_url = served_both_ways(build_api)


# ------------------------------------------------------------------- over a real uvicorn


def test_without_a_handler_the_refusal_is_the_challenge_not_a_500(client: httpx.Client) -> None:
    response = client.get("/api/data")
    assert response.status_code == 401
    header = response.headers["WWW-Authenticate"]
    assert header.startswith("PrivateToken challenge=")  # not HTTPBase's bare "Privatetoken"
    assert challenges_of(header)
    assert response.headers["Cache-Control"] == "no-store"
    assert SESSION_COOKIE in response.cookies
    assert response.json() == {"detail": "Unauthorized"}


def test_token_passes_then_the_verified_session(
    client: httpx.Client, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    response = redeem(client, "/api/data", rsa_2048, issuer_key)
    assert response.status_code == 200, response.text
    assert response.json()["private_token"]["signal"] == "private-token"
    assert VERIFIED_COOKIE in response.cookies
    assert response.headers["Cache-Control"] == "private"
    again = client.get("/api/data")
    assert again.status_code == 200
    assert again.json()["private_token"]["via_session"] is True


def test_accept_limits_the_route_to_fresh_tokens(
    client: httpx.Client, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    assert redeem(client, "/api/data", rsa_2048, issuer_key).status_code == 200
    assert client.get("/api/data").status_code == 200  # the session passes here...
    assert client.get("/api/fresh").status_code == 401  # ...not where only tokens do
    response = redeem(client, "/api/fresh", rsa_2048, issuer_key)
    assert response.status_code == 200
    assert response.json()["private_token"]["via_session"] is False


def test_public_route_is_untouched(client: httpx.Client) -> None:
    response = client.get("/public")
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert "cache-control" not in response.headers


def test_cors_preflight_is_answered_without_running_the_endpoint(client: httpx.Client) -> None:
    preflight = client.options(
        "/api/cors",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert "www-authenticate" not in preflight.headers
    assert client.options("/api/cors").status_code == 401  # a plain OPTIONS is no preflight


def test_per_request_mode_sends_both_cookies_with_the_challenge(
    issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey
) -> None:
    policy = Policy(
        make_settings(issuer_key, protect=[], cookie_secure=False, redemption_context="per-request")
    )
    with (
        serve_asgi(build_api(policy, middleware=False)) as url,
        httpx.Client(base_url=url, timeout=10.0) as client,
    ):
        first = client.get("/api/data")
        assert first.status_code == 401
        names = [v.split("=", 1)[0] for v in first.headers.get_list("set-cookie")]
        assert sorted(names) == [SESSION_COOKIE, SESSION_COOKIE + "_c"]
        token = answer(first.headers["WWW-Authenticate"], rsa_2048, issuer_key)
        passed = client.get("/api/data", headers={"Authorization": build_authorization(token)})
        assert passed.status_code == 200


def test_exception_handler_answers_the_policys_own_page(policy: Policy) -> None:
    with (
        serve_asgi(build_api(policy, middleware=False, handler=True)) as url,
        httpx.Client(base_url=url, timeout=10.0) as client,
    ):
        response = client.get("/api/data")
    assert response.status_code == 401
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Verification required" in response.text
    assert challenges_of(response.headers["WWW-Authenticate"])


def test_endpoint_returning_its_own_response_gets_the_pass_through_the_middleware(
    policy: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    """FastAPI merges a dependency's response headers only into responses it builds: an
    endpoint's own Response would go out without the cookies and cacheable by a proxy."""
    with (
        serve_asgi(build_api(policy, middleware=True)) as url,
        httpx.Client(base_url=url, timeout=10.0) as client,
    ):
        response = redeem(client, "/api/own-response", rsa_2048, issuer_key)
    assert (response.status_code, response.text) == (200, "mine")
    assert response.headers["Cache-Control"] == "private, max-age=60"
    assert VERIFIED_COOKIE in response.cookies


# ---------------------------------------------------------------------------- the schema


def test_openapi_shows_the_scheme_and_the_401(policy: Policy) -> None:
    schema = TestClient(build_api(policy, middleware=True)).get("/openapi.json").json()
    assert schema["components"]["securitySchemes"] == {
        "PrivateToken": {"type": "http", "scheme": "PrivateToken"}
    }
    operation = schema["paths"]["/api/data"]["get"]
    assert operation["security"] == [{"PrivateToken": []}]
    assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
    assert "security" not in schema["paths"]["/public"]["get"]


# -------------------------------------------------------------- FastAPI's own TestClient


def test_testclient_flow(
    policy: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    with TestClient(build_api(policy, middleware=False), base_url="http://testserver") as client:
        first = client.get("/api/data")
        assert first.status_code == 401
        token = answer(first.headers["WWW-Authenticate"], rsa_2048, issuer_key)
        passed = client.get("/api/data", headers={"Authorization": build_authorization(token)})
        assert passed.status_code == 200
        assert passed.json()["private_token"]["issuer"] == "issuer.example"
        assert client.get("/api/data").json()["private_token"]["via_session"] is True


def test_function_dependency_answers_by_itself_too(policy: Policy) -> None:
    api = FastAPI()

    @api.get("/x")
    async def x(token: Annotated[Any, Depends(private_token_dependency(policy))]) -> str:
        return "ok"

    response = TestClient(api).get("/x")
    assert response.status_code == 401
    assert challenges_of(response.headers["WWW-Authenticate"])


def test_unknown_signal_name_fails_at_start_up(policy: Policy) -> None:
    with pytest.raises(ConfigurationError) as caught:
        PrivateTokenSecurity(policy, accept=["privat-token"])
    assert caught.value.setting == "accept"
    with pytest.raises(ConfigurationError):
        PrivateTokenSecurity(accept=[])
