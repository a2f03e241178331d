"""Litestar: the plugin and the guard, end to end over a real uvicorn and through Litestar's
own test client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar import Litestar, Request, get, post
from litestar.testing import TestClient

from pat_middleware.core.headers import build_authorization
from pat_middleware.errors import ConfigurationError
from pat_middleware.integrations.litestar import PrivateTokenPlugin, private_token_guard
from pat_middleware.policy import Policy, RequestInfo, TokenInfo
from pat_middleware.tokens.blind_rsa import IssuerKey

from ._origin import SESSION_COOKIE, VERIFIED_COOKIE, answer, challenges_of, make_settings
from ._servers import serve_asgi


def _describe(request: Request[Any, Any, Any]) -> dict[str, Any]:
    token = request.scope.get("private_token")
    return {"signal": token.signal if isinstance(token, TokenInfo) else None}


@get("/public")
async def public(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return _describe(request)


@get("/protected")  # protected by the settings' path rule
async def protected(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return _describe(request)


@get("/guarded", guards=[private_token_guard()])
async def guarded(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return _describe(request)


@post("/fresh", guards=[private_token_guard(accept=["private-token"])], status_code=200)
async def fresh(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return _describe(request)


def build_app(policy: Policy) -> Litestar:
    return Litestar(
        route_handlers=[public, protected, guarded, fresh],
        plugins=[PrivateTokenPlugin(policy=policy)],
    )


@pytest.fixture(scope="module")
def policy(issuer_key: IssuerKey) -> Policy:
    return Policy(make_settings(issuer_key, protect=["/protected"], cookie_secure=False))


@pytest.fixture(scope="module")
def base_url(policy: Policy) -> Iterator[str]:
    with serve_asgi(cast(Any, build_app(policy))) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10.0) as c:
        yield c


def _redeem(
    client: httpx.Client, method: str, path: str, private_key: rsa.RSAPrivateKey, key: IssuerKey
) -> httpx.Response:
    first = client.request(method, path)
    assert first.status_code == 401, first.text
    token = answer(first.headers["WWW-Authenticate"], private_key, key)
    return client.request(method, path, headers={"Authorization": build_authorization(token)})


@pytest.mark.parametrize("path", ["/protected", "/guarded"])
def test_challenge(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert challenges_of(response.headers["WWW-Authenticate"])
    assert SESSION_COOKIE in response.cookies
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Type"].startswith("text/html")


def test_guard_refusal_is_the_policys_response(policy: Policy) -> None:
    """The guard's refusal carries the policy's own Content-Type (one charset) and cookies."""
    expected = dict(policy.evaluate(RequestInfo("GET", "/guarded"), force=True).headers)
    with TestClient(build_app(policy)) as test_client:
        response = test_client.get("/guarded")
    assert response.status_code == 401
    assert response.headers["Content-Type"] == expected["Content-Type"]
    assert response.headers.get_list("Set-Cookie")[0].startswith(SESSION_COOKIE + "=")


@pytest.mark.parametrize("path", ["/protected", "/guarded"])
def test_token_then_session(
    client: httpx.Client, path: str, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    response = _redeem(client, "GET", path, rsa_2048, issuer_key)
    assert response.status_code == 200, response.text
    assert response.json() == {"signal": "private-token"}
    assert VERIFIED_COOKIE in response.cookies  # the guard's pass, written by the middleware
    assert response.headers["Cache-Control"] == "private"
    assert client.get(path).json() == {"signal": "session"}


def test_accept_and_public(
    client: httpx.Client, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    assert client.get("/public").json() == {"signal": None}
    assert _redeem(client, "GET", "/guarded", rsa_2048, issuer_key).status_code == 200
    assert client.post("/fresh").status_code == 401  # the session is not a fresh token
    assert _redeem(client, "POST", "/fresh", rsa_2048, issuer_key).json() == {
        "signal": "private-token"
    }


def test_preflight_is_not_challenged(client: httpx.Client) -> None:
    headers = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    response = client.options("/guarded", headers=headers)
    assert response.status_code == 204  # Litestar's own OPTIONS answer
    assert "www-authenticate" not in response.headers


def test_litestar_test_client(
    policy: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    with TestClient(app=build_app(policy)) as client:
        first = client.get("/guarded")
        assert first.status_code == 401
        token = answer(first.headers["WWW-Authenticate"], rsa_2048, issuer_key)
        passed = client.get("/guarded", headers={"Authorization": build_authorization(token)})
        assert passed.json() == {"signal": "private-token"}


def test_guard_without_the_plugin_spends_no_token(
    policy: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    """A guard in an app without the plugin is refused before it judges the token, so
    the misconfiguration is a 500 that names the setting, and the token stays unspent."""
    with TestClient(app=build_app(policy)) as client:
        first = client.get("/guarded")
        token = answer(first.headers["WWW-Authenticate"], rsa_2048, issuer_key)
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        credential = {"Authorization": build_authorization(token), "Cookie": cookie}

        @get("/guarded", guards=[private_token_guard(policy=policy)])
        async def guarded_by_policy() -> str:
            return "never"

        bare = Litestar(route_handlers=[guarded_by_policy])
        with TestClient(app=bare, raise_server_exceptions=False) as bare_client:
            assert bare_client.get("/guarded", headers=credential).status_code == 500
        assert client.get("/guarded", headers=credential).json() == {"signal": "private-token"}


def test_plugin_fails_when_the_app_is_built(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        PrivateTokenPlugin(settings_file=str(tmp_path / "missing.toml"))
    assert caught.value.setting == "settings_file"
    with pytest.raises(ConfigurationError):
        private_token_guard(accept=["tokens"])
