"""A newcomer's first hour: the quickstart over http://localhost works, and when Secure
cookies cannot come back over plain http the log says which setting to look at."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from pat_middleware.core.headers import build_authorization
from pat_middleware.integrations.asgi import PrivateTokenMiddleware
from pat_middleware.policy import Policy, RequestInfo
from pat_middleware.policy.strategies import is_loopback_host
from pat_middleware.tokens.blind_rsa import IssuerKey

from ._origin import answer, make_settings
from ._servers import serve_asgi


async def _hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


@pytest.fixture(scope="module")
def localhost_url(issuer_key: IssuerKey) -> Iterator[str]:
    # The defaults a newcomer keeps: cookie_secure = true, per-session contexts.
    policy = Policy(make_settings(issuer_key, origin_info=["localhost"]))
    app = PrivateTokenMiddleware(Starlette(routes=[Route("/protected", _hello)]), policy=policy)
    with serve_asgi(app) as url:
        yield url.replace("127.0.0.1", "localhost")


def test_quickstart_over_http_localhost_gets_401_then_200(
    localhost_url: str, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    with httpx.Client(base_url=localhost_url, timeout=10.0) as client:
        challenge = client.get("/protected")
        assert challenge.status_code == 401
        set_cookie = challenge.headers["set-cookie"]
        assert set_cookie.startswith("pat_session=") and "Secure" not in set_cookie
        token = answer(challenge.headers["www-authenticate"], rsa_2048, issuer_key)
        passed = client.get("/protected", headers={"Authorization": build_authorization(token)})
        assert passed.status_code == 200, passed.text
        assert client.get("/protected").status_code == 200  # the verified session


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("localhost:8000", True),
        ("LocalHost:80", True),
        ("127.0.0.1:5000", True),
        ("[::1]:8000", True),
        ("app.localhost", True),
        ("example.com", False),
        ("127.0.0.2", False),
        ("localhost.example.com", False),
        ("[::2]", False),
        (None, False),
        ("", False),
    ],
)
def test_loopback_hosts(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_secure_cookies_stay_secure_over_https_and_on_other_hosts(issuer_key: IssuerKey) -> None:
    policy = Policy(make_settings(issuer_key, origin_info=["localhost"]))
    for host, scheme in (("localhost", "https"), ("example.com", "http"), ("localhost", None)):
        decision = policy.evaluate(RequestInfo("GET", "/protected", host=host, scheme=scheme))
        [cookie] = decision.cookies
        assert cookie.secure and cookie.name == "__Host-pat_session", (host, scheme)


def test_development_mode_drops_secure_over_http(issuer_key: IssuerKey) -> None:
    policy = Policy(make_settings(issuer_key, development=True, origin_info=["localhost"]))
    decision = policy.evaluate(RequestInfo("GET", "/protected", host="dev.test", scheme="http"))
    [cookie] = decision.cookies
    assert not cookie.secure and cookie.name == "pat_session"


def test_token_over_http_without_the_secure_cookie_names_cookie_secure_once(
    issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    policy = Policy(make_settings(issuer_key, origin_info=["www.example.com"]))
    first = policy.evaluate(RequestInfo("GET", "/protected", host="www.example.com", scheme="http"))
    www = dict(first.headers)["WWW-Authenticate"]
    caplog.set_level(logging.WARNING, logger="pat_middleware")
    for _ in range(3):  # the client dropped the Secure cookie: no session comes back
        token = answer(www, rsa_2048, issuer_key)
        request = RequestInfo(
            "GET",
            "/protected",
            host="www.example.com",
            scheme="http",
            authorization=build_authorization(token),
        )
        assert not policy.evaluate(request).allowed
    lines = [r.getMessage() for r in caplog.records if "cookie_secure" in r.getMessage()]
    assert len(lines) == 1
