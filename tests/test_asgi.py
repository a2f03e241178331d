"""The ASGI middleware and Starlette helpers end to end, over a real uvicorn server."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pat_middleware.core.headers import build_authorization, parse_www_authenticate
from pat_middleware.core.wire import TokenChallenge
from pat_middleware.errors import ConfigurationError
from pat_middleware.integrations.asgi import POLICY_SCOPE_KEY, PrivateTokenMiddleware
from pat_middleware.integrations.starlette import (
    PrivateTokenRequired,
    exception_handler,
    private_token_dependency,
    require_private_token,
)
from pat_middleware.policy import SCOPE_KEY, Policy, RequestInfo, TokenInfo
from pat_middleware.tokens.blind_rsa import IssuerKey, encode_pss_spki

from ._origin import (
    ISSUER,
    OTHER_ISSUER,
    SESSION_COOKIE,
    VERIFIED_COOKIE,
    answer,
    challenges_of,
    issuer_entry,
    make_settings,
)
from ._servers import serve_asgi
from .conftest import sign_token

# ---------------------------------------------------------------------------- the app


async def echo(request: Request) -> Response:
    """Echo what the middleware put in the scope."""
    info = request.scope.get(SCOPE_KEY)
    token = dataclasses.asdict(info) if isinstance(info, TokenInfo) else None
    return JSONResponse({"path": request.url.path, "private_token": token})


async def _decorated(request: Request) -> Response:
    return await echo(request)


async def _post_only(request: Request) -> Response:
    return await echo(request)


decorated = require_private_token(_decorated)
post_only = require_private_token(methods={"POST"})(_post_only)


def build_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/protected", echo),
            Route("/api/decorated", decorated),  # protected twice: middleware and decorator
            Route("/api/{rest:path}", echo),
            Route("/open", echo),
            Route("/decorated", decorated),  # protected by the decorator only
            Route("/post-only", post_only, methods=["GET", "POST"]),
        ]
    )


@pytest.fixture(scope="module")
def other_key(other_rsa_2048: rsa.RSAPrivateKey) -> IssuerKey:
    return IssuerKey.from_spki(encode_pss_spki(other_rsa_2048.public_key()))


@pytest.fixture(scope="module")
def policy(issuer_key: IssuerKey, other_key: IssuerKey) -> Policy:
    settings = make_settings(
        issuer_key,
        issuers=[issuer_entry(ISSUER, issuer_key), issuer_entry(OTHER_ISSUER, other_key)],
        cookie_secure=False,  # the test server speaks plain http
    )
    return Policy(settings)


@pytest.fixture(scope="module")
def base_url(policy: Policy) -> Iterator[str]:
    # h11, as uvicorn without extras: httptools refuses some bytes before the app sees them.
    with serve_asgi(PrivateTokenMiddleware(build_app(), policy=policy), http="h11") as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10.0) as c:
        yield c


def _token(
    response: httpx.Response,
    private_key: rsa.RSAPrivateKey,
    key: IssuerKey,
    issuer: str = ISSUER,
) -> bytes:
    assert response.status_code == 401, response.text
    return answer(response.headers["WWW-Authenticate"], private_key, key, issuer=issuer)


def _auth(token: bytes) -> dict[str, str]:
    return {"Authorization": build_authorization(token)}


def _redeem(
    client: httpx.Client, path: str, private_key: rsa.RSAPrivateKey, key: IssuerKey
) -> httpx.Response:
    token = _token(client.get(path), private_key, key)
    return client.get(path, headers=_auth(token))


def _token_info(response: httpx.Response) -> dict[str, Any] | None:
    body = response.json()
    assert isinstance(body, dict)
    info = body["private_token"]
    assert info is None or isinstance(info, dict)
    return info


# ------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("path", ["/protected", "/api/items", "/api/a/b"])
def test_protected_path_gets_a_challenge(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    challenges = challenges_of(response.headers["WWW-Authenticate"])
    assert [c.issuer_name for c in challenges] == [ISSUER, OTHER_ISSUER]
    assert SESSION_COOKIE in response.cookies
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Verification required" in response.text


def test_unprotected_path_reaches_the_app_without_token(client: httpx.Client) -> None:
    response = client.get("/open")
    assert response.status_code == 200
    assert _token_info(response) is None
    assert "WWW-Authenticate" not in response.headers


def test_valid_token_reaches_the_app(
    client: httpx.Client, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    response = _redeem(client, "/protected", rsa_2048, issuer_key)

    assert response.status_code == 200, response.text
    assert _token_info(response) == {
        "issuer": ISSUER,
        "token_type": 2,
        "token_key_id": issuer_key.token_key_id.hex(),
        "via_session": False,
        "signal": "private-token",
        "label": None,
    }
    assert VERIFIED_COOKIE in response.cookies
    assert "Secure" not in response.headers["Set-Cookie"]


def test_verified_session_cookie_works_on_the_next_request(
    client: httpx.Client, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    assert _redeem(client, "/protected", rsa_2048, issuer_key).status_code == 200

    for path in ("/protected", "/api/elsewhere"):
        response = client.get(path)
        assert response.status_code == 200, path
        info = _token_info(response)
        assert info is not None and info["via_session"] is True


def test_replayed_token_is_refused(
    client: httpx.Client, base_url: str, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    token = _token(client.get("/protected"), rsa_2048, issuer_key)
    assert client.get("/protected", headers=_auth(token)).status_code == 200

    again = client.get("/protected", headers=_auth(token))
    assert again.status_code == 401
    assert challenges_of(again.headers["WWW-Authenticate"])


def test_token_from_another_session_is_refused(
    base_url: str, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    with (
        httpx.Client(base_url=base_url, timeout=10.0) as alice,
        httpx.Client(base_url=base_url, timeout=10.0) as mallory,
    ):
        token = _token(alice.get("/protected"), rsa_2048, issuer_key)
        assert mallory.get("/protected").status_code == 401  # mallory's own session

        assert mallory.get("/protected", headers=_auth(token)).status_code == 401
        assert alice.get("/protected", headers=_auth(token)).status_code == 200


def test_each_issuer_works(
    base_url: str,
    rsa_2048: rsa.RSAPrivateKey,
    other_rsa_2048: rsa.RSAPrivateKey,
    issuer_key: IssuerKey,
    other_key: IssuerKey,
) -> None:
    for private_key, key, issuer in (
        (rsa_2048, issuer_key, ISSUER),
        (other_rsa_2048, other_key, OTHER_ISSUER),
    ):
        with httpx.Client(base_url=base_url, timeout=10.0) as client:
            token = _token(client.get("/api/x"), private_key, key, issuer)
            response = client.get("/api/x", headers=_auth(token))
            assert response.status_code == 200, issuer
            info = _token_info(response)
            assert info is not None
            assert (info["issuer"], info["token_key_id"]) == (issuer, key.token_key_id.hex())


@pytest.mark.parametrize(
    "authorization",
    [
        b"PrivateToken",
        b'PrivateToken token="!!!"',
        b'PrivateToken token="AAAA',
        b"PrivateToken token=" + b"A" * 3000,
        b"PrivateToken token=" + b"A" * 15000,
        b"PrivateToken token=" + b"A" * 40000,
        b"PrivateToken token=\xff\xfe",
        b"PrivateToken " + b"a=b, " * 2000 + b"c=d",
        b", , ,",
        b"Basic dXNlcjpwYXNz",
    ],
    ids=lambda v: repr(v[:24]) + f"+{len(v)}",
)
def test_bad_authorization_never_gives_5xx(client: httpx.Client, authorization: bytes) -> None:
    response = client.get("/protected", headers={b"Authorization": authorization})
    assert 400 <= response.status_code < 500
    if response.status_code == 401:
        assert challenges_of(response.headers["WWW-Authenticate"])


@pytest.mark.parametrize(
    "cookie",
    [
        f"{SESSION_COOKIE}=garbage",
        f"{SESSION_COOKIE}=a.b.c; {VERIFIED_COOKIE}=a.b.c",
        f"{SESSION_COOKIE}=" + "A" * 6000,
        f"{VERIFIED_COOKIE}=" + "x" * 400,
        f'{SESSION_COOKIE}="; {SESSION_COOKIE}_c=1.2.3',
        "=; ;;=;" * 50,
        f"{SESSION_COOKIE}=\x7f\x01",
    ],
    ids=lambda v: repr(v[:24]) + f"+{len(v)}",
)
def test_garbage_cookies_never_give_5xx(base_url: str, cookie: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        response = client.get("/protected", headers={b"Cookie": cookie.encode("latin-1")})
    assert response.status_code == 401
    assert challenges_of(response.headers["WWW-Authenticate"])


def test_decorator_protects_an_unlisted_route(
    client: httpx.Client, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    response = _redeem(client, "/decorated", rsa_2048, issuer_key)
    assert response.status_code == 200, response.text
    info = _token_info(response)
    assert info is not None and info["issuer"] == ISSUER
    assert VERIFIED_COOKIE in response.cookies  # the decorator adds the policy's cookies

    again = client.get("/decorated")
    assert again.status_code == 200
    info = _token_info(again)
    assert info is not None and info["via_session"] is True


def test_decorator_and_middleware_together_check_once(
    client: httpx.Client, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    response = _redeem(client, "/api/decorated", rsa_2048, issuer_key)
    assert response.status_code == 200, response.text
    info = _token_info(response)
    assert info is not None and info["via_session"] is False


def test_decorator_methods_limit_protection(client: httpx.Client) -> None:
    assert client.get("/post-only").status_code == 200
    response = client.post("/post-only")
    assert response.status_code == 401
    assert challenges_of(response.headers["WWW-Authenticate"])


def test_decorator_without_policy_is_a_configuration_error() -> None:
    scope = {"type": "http", "method": "GET", "path": "/decorated", "headers": []}
    with pytest.raises(ConfigurationError) as info:
        asyncio.run(decorated(Request(scope)))
    assert info.value.setting == "policy"


def test_decorator_on_a_sync_endpoint_is_a_configuration_error(policy: Policy) -> None:
    def sync_endpoint(request: Request) -> Response:
        return Response("never")

    with pytest.raises(ConfigurationError) as info:
        require_private_token(sync_endpoint, policy=policy)  # type: ignore[type-var]
    assert "sync_endpoint" in info.value.setting


def test_fastapi_dependency(
    policy: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    fastapi = pytest.importorskip("fastapi")
    api = fastapi.FastAPI()
    api.add_exception_handler(PrivateTokenRequired, exception_handler)
    dependency = private_token_dependency(policy)

    async def endpoint(info: Any = fastapi.Depends(dependency)) -> dict[str, Any]:  # noqa: B008
        return {"private_token": dataclasses.asdict(info) if info else None}

    api.get("/fastapi")(endpoint)

    with serve_asgi(api) as url, httpx.Client(base_url=url, timeout=10.0) as client:
        first = client.get("/fastapi")
        assert first.status_code == 401
        response = client.get("/fastapi", headers=_auth(_token(first, rsa_2048, issuer_key)))
        assert response.status_code == 200
        assert response.json()["private_token"]["issuer"] == ISSUER
        # The dependency sets the verified-session mark itself: no token needed next time.
        again = client.get("/fastapi")
        assert again.status_code == 200
        assert again.json()["private_token"]["via_session"] is True


# ------------------------------------------------------------- non-HTTP scopes, directly


class _Recorder:
    """An inner ASGI app that records what it was called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], Any, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls.append((scope, receive, send))


async def _receive() -> dict[str, Any]:
    return {"type": "lifespan.startup"}


async def _send(message: Any) -> None:
    raise AssertionError(f"the middleware must not send anything: {message!r}")


@pytest.mark.parametrize(
    "scope",
    [{"type": "lifespan", "asgi": {"version": "3.0"}}],
    ids=["lifespan"],
)
def test_non_http_scopes_pass_through_untouched(policy: Policy, scope: dict[str, Any]) -> None:
    inner = _Recorder()
    middleware = PrivateTokenMiddleware(inner, policy=policy)
    before = dict(scope)

    asyncio.run(middleware(scope, _receive, _send))

    [(seen_scope, seen_receive, seen_send)] = inner.calls
    assert seen_scope is scope and scope == before
    assert SCOPE_KEY not in scope and POLICY_SCOPE_KEY not in scope
    assert seen_receive is _receive and seen_send is _send


def _ws_run(
    middleware: PrivateTokenMiddleware, path: str, headers: list[tuple[bytes, bytes]]
) -> tuple[_Recorder, list[Any]]:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": path, "headers": headers}
    asyncio.run(middleware(scope, receive, send))
    inner = middleware.app
    assert isinstance(inner, _Recorder)
    return inner, sent


def test_websocket_on_protected_path_without_session_is_closed(policy: Policy) -> None:
    middleware = PrivateTokenMiddleware(_Recorder(), policy=policy)
    inner, sent = _ws_run(middleware, "/protected", [(b"authorization", b"PrivateToken token=!!")])
    assert inner.calls == []
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_websocket_on_public_path_passes(policy: Policy) -> None:
    middleware = PrivateTokenMiddleware(_Recorder(), policy=policy)
    inner, sent = _ws_run(middleware, "/public", [])
    assert len(inner.calls) == 1 and sent == []


def test_websocket_with_verified_session_passes(
    policy: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    # Earn a verified session over plain policy calls, then open the socket with its cookies.
    first = policy.evaluate(RequestInfo("GET", "/protected"))
    jar = {
        c.split("=", 1)[0]: c.split(";")[0] for n, c in first.header_lines() if n == "Set-Cookie"
    }
    params = parse_www_authenticate(dict(first.headers)["WWW-Authenticate"])[0]  # ISSUER's
    token = sign_token(rsa_2048, issuer_key, TokenChallenge.from_bytes(params.challenge))
    passed = policy.evaluate(
        RequestInfo(
            "GET",
            "/protected",
            authorization=build_authorization(token),
            cookie="; ".join(jar.values()),
        )
    )
    assert passed.allowed
    jar.update(
        {c.split("=", 1)[0]: c.split(";")[0] for n, c in passed.header_lines() if n == "Set-Cookie"}
    )
    middleware = PrivateTokenMiddleware(_Recorder(), policy=policy)
    inner, sent = _ws_run(middleware, "/protected", [(b"cookie", "; ".join(jar.values()).encode())])
    assert len(inner.calls) == 1 and sent == []


def test_decorator_limited_to_get_also_protects_head(policy: Policy) -> None:
    """Starlette answers HEAD with the GET endpoint, so protecting GET must cover HEAD."""

    @require_private_token(policy=policy, methods={"GET"})
    async def page(request: Request) -> Response:
        return Response("secret")

    scope: dict[str, Any]
    for method in ("GET", "HEAD"):
        scope = {"type": "http", "method": method, "path": "/page", "headers": []}
        response = asyncio.run(page(Request(scope)))
        assert response.status_code == 401, method
    scope = {"type": "http", "method": "POST", "path": "/page", "headers": []}
    assert asyncio.run(page(Request(scope))).status_code == 200
