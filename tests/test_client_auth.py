"""httpx and requests authentication answering PrivateToken challenges, over real servers:
our issuer and an origin behind PrivateTokenMiddleware, each under uvicorn on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from pat_middleware.core.headers import ChallengeParams, build_www_authenticate
from pat_middleware.core.wire import TokenChallenge
from pat_middleware.integrations._client import (
    Answer,
    choose_challenge,
    issuer_name_from_url,
    merge_cookie_header,
    set_cookie_names,
)
from pat_middleware.integrations.asgi import PrivateTokenMiddleware
from pat_middleware.integrations.httpx_auth import (
    ClientAuthError,
    PrivateTokenAuth,
    TokenSource,
    _bounded,
)
from pat_middleware.integrations.requests_auth import PrivateTokenRequestsAuth
from pat_middleware.issuer import DIRECTORY_PATH, Issuer
from pat_middleware.issuer.server import create_issuer_app
from pat_middleware.policy import SCOPE_KEY, Policy, TokenInfo
from pat_middleware.settings import Settings

from ._servers import free_port, serve_asgi

CLIENT_TIMEOUT = 10.0
Scope = MutableMapping[str, Any]
ASGI = Callable[[Scope, Any, Any], Awaitable[None]]


class LateApp:
    """An ASGI app set after the server has bound its port (the issuer's name is its
    ``host:port``, known only then), and slowed down when ``delay`` is set."""

    def __init__(self) -> None:
        self.app: ASGI | None = None
        self.delay = 0.0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan" or self.app is None:
            if scope["type"] == "lifespan":
                await receive()
                await send({"type": "lifespan.startup.complete"})
                await receive()
                await send({"type": "lifespan.shutdown.complete"})
            return
        if self.delay and scope["method"] == "POST":
            deadline = time.monotonic() + self.delay
            while self.delay and time.monotonic() < deadline:  # cut short by delay = 0
                await asyncio.sleep(0.05)
        await self.app(scope, receive, send)


def origin_app(policy: Policy) -> PrivateTokenMiddleware:
    async def protected(request: Request) -> Response:
        info = request.scope.get(SCOPE_KEY)
        assert isinstance(info, TokenInfo)
        body = (await request.body()).decode()
        return JSONResponse({"via_session": info.via_session, "body": body})

    async def home(request: Request) -> Response:
        return PlainTextResponse("public")

    async def basic(request: Request) -> Response:
        return PlainTextResponse("no", 401, headers={"WWW-Authenticate": 'Basic realm="x"'})

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/protected", protected, methods=["GET", "POST"]),
            Route("/basic", basic),
        ]
    )
    return PrivateTokenMiddleware(app, policy=policy)


@dataclass
class Servers:
    issuer: Issuer
    issuer_url: str
    issuer_app: LateApp
    origin_url: str


@pytest.fixture(scope="module")
def servers(rsa_2048: rsa.RSAPrivateKey) -> Iterator[Servers]:
    late = LateApp()
    with serve_asgi(late) as issuer_url:
        issuer = Issuer(issuer_url.removeprefix("http://"), rsa_2048)
        late.app = create_issuer_app(issuer)
        settings = Settings.from_mapping(
            {
                "issuers": [{"name": issuer.name, "token_key": issuer.preferred_key.token_key}],
                "secret": secrets.token_urlsafe(32),
                "cookie_secure": False,
                "protect": ["/protected"],
            }
        )
        policy = Policy(settings)
        try:
            with serve_asgi(origin_app(policy)) as origin_url:
                yield Servers(issuer, issuer_url, late, origin_url)
        finally:
            policy.close()


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


# ----------------------------------------------------------------------------- httpx, sync


def test_sync_client_answers_the_challenge_once_then_rides_the_session(servers: Servers) -> None:
    auth = PrivateTokenAuth(servers.issuer_url)
    with httpx.Client(auth=auth, timeout=CLIENT_TIMEOUT) as client:
        first = client.get(servers.origin_url + "/protected")
        assert first.status_code == 200
        assert first.json()["via_session"] is False
        assert [r.status_code for r in first.history] == [401]
        # The retry carried the session cookie the 401 set: its challenge is bound to it.
        assert "pat_session=" in first.request.headers["cookie"]
        again = client.get(servers.origin_url + "/protected")
        assert again.status_code == 200
        assert again.json()["via_session"] is True
        assert again.history == []
        assert "authorization" not in again.request.headers


def test_post_body_is_sent_again_with_the_token(servers: Servers) -> None:
    with httpx.Client(auth=PrivateTokenAuth(servers.issuer_url), timeout=CLIENT_TIMEOUT) as c:
        response = c.post(servers.origin_url + "/protected", content=b"comment=hello")
    assert response.status_code == 200
    assert response.json() == {"via_session": False, "body": "comment=hello"}


def test_streamed_body_is_buffered_for_the_retry(servers: Servers) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"one,"
        yield b"two"

    with httpx.Client(auth=PrivateTokenAuth(servers.issuer_url), timeout=CLIENT_TIMEOUT) as c:
        response = c.post(servers.origin_url + "/protected", content=chunks())
    assert response.json()["body"] == "one,two"


def test_cookies_the_client_already_had_stay_on_the_retry(servers: Servers) -> None:
    auth = PrivateTokenAuth(servers.issuer_url)
    with httpx.Client(auth=auth, timeout=CLIENT_TIMEOUT, cookies={"theme": "dark"}) as client:
        response = client.get(servers.origin_url + "/protected")
    assert response.status_code == 200
    cookie = response.request.headers["cookie"]
    assert "theme=dark" in cookie and "pat_session=" in cookie


def test_directory_url_and_bare_host_name_the_same_issuer(servers: Servers) -> None:
    for where in (servers.issuer_url + DIRECTORY_PATH, "http://" + servers.issuer.name + "/"):
        with httpx.Client(auth=PrivateTokenAuth(where), timeout=CLIENT_TIMEOUT) as client:
            assert client.get(servers.origin_url + "/protected").status_code == 200


def test_an_issuer_client_can_be_passed(servers: Servers) -> None:
    with httpx.Client(timeout=CLIENT_TIMEOUT) as issuer_client:
        auth = PrivateTokenAuth(servers.issuer_url, issuer_client=issuer_client)
        with httpx.Client(auth=auth, timeout=CLIENT_TIMEOUT) as client:
            assert client.get(servers.origin_url + "/protected").status_code == 200


def test_in_process_issuer_needs_no_issuer_server(servers: Servers) -> None:
    with httpx.Client(auth=PrivateTokenAuth(servers.issuer), timeout=CLIENT_TIMEOUT) as client:
        assert client.get(servers.origin_url + "/protected").status_code == 200


def test_responses_that_are_not_ours_pass_through(servers: Servers) -> None:
    with httpx.Client(auth=PrivateTokenAuth(servers.issuer_url), timeout=CLIENT_TIMEOUT) as c:
        assert c.get(servers.origin_url + "/").status_code == 200
        basic = c.get(servers.origin_url + "/basic")
        assert basic.status_code == 401 and basic.history == []
        # A request with its own Authorization is left to it: no token, no retry.
        own = c.get(servers.origin_url + "/protected", headers={"Authorization": "Bearer x"})
        assert own.status_code == 401 and own.history == []


def test_wrong_issuer_is_a_clear_error(servers: Servers) -> None:
    auth = PrivateTokenAuth(servers.issuer_url, issuer_name="other.example")
    with (
        httpx.Client(auth=auth, timeout=CLIENT_TIMEOUT) as client,
        pytest.raises(ClientAuthError) as caught,
    ):
        client.get(servers.origin_url + "/protected")
    message = str(caught.value)
    assert "'other.example'" in message
    assert f"offered {servers.issuer.name} (type 2)" in message
    assert caught.value.status == 401
    assert caught.value.url == servers.origin_url + "/protected"


def test_issuer_down_is_a_clear_error(servers: Servers) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    auth = PrivateTokenAuth(down, issuer_name=servers.issuer.name)
    with (
        httpx.Client(auth=auth, timeout=CLIENT_TIMEOUT) as client,
        pytest.raises(ClientAuthError, match=r"no token from the issuer at .*ConnectError"),
    ):
        client.get(servers.origin_url + "/protected")


def test_silent_issuer_times_out_instead_of_hanging(servers: Servers) -> None:
    with silent_server() as url:
        auth = PrivateTokenAuth(url, issuer_name=servers.issuer.name, timeout=0.5)
        started = time.monotonic()
        with (
            httpx.Client(auth=auth, timeout=CLIENT_TIMEOUT) as client,
            pytest.raises(ClientAuthError, match="Timeout"),
        ):
            client.get(servers.origin_url + "/protected")
    assert time.monotonic() - started < 5


def test_issuance_never_outlasts_the_challenge_max_age(rsa_2048: rsa.RSAPrivateKey) -> None:
    # An origin whose challenges live 1 s, an issuer that takes 6 s to sign: the client gives
    # up once max-age is over, not after the issuer answers or its own 10 s timeout.
    late = LateApp()
    with serve_asgi(late) as issuer_url:
        issuer = Issuer(issuer_url.removeprefix("http://"), rsa_2048)
        late.app = create_issuer_app(issuer)
        late.delay = 6.0
        settings = Settings.from_mapping(
            {
                "issuers": [{"name": issuer.name, "token_key": issuer.preferred_key.token_key}],
                "secret": secrets.token_urlsafe(32),
                "cookie_secure": False,
                "protect": ["/protected"],
                "max_age": 1,
            }
        )
        policy = Policy(settings)
        try:
            with serve_asgi(origin_app(policy)) as origin_url:
                auth = PrivateTokenAuth(issuer_url, timeout=10.0)
                started = time.monotonic()
                with (
                    httpx.Client(auth=auth, timeout=CLIENT_TIMEOUT) as client,
                    pytest.raises(ClientAuthError, match="Timeout"),
                ):
                    client.get(origin_url + "/protected")
                assert time.monotonic() - started < 4.5
        finally:
            late.delay = 0.0
            policy.close()


@pytest.fixture
def always_401(servers: Servers) -> Iterator[tuple[str, list[str | None]]]:
    """An origin that answers 401 with a challenge from our issuer to everything; yields
    its URL and the Authorization each request carried."""
    challenge = TokenChallenge(2, servers.issuer.name, secrets.token_bytes(32), ())
    header = build_www_authenticate(
        [ChallengeParams(challenge.to_bytes(), servers.issuer.preferred_key.spki, 60)]
    )
    seen: list[str | None] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope["headers"])
        seen.append(headers.get(b"authorization", b"").decode() or None)
        response = PlainTextResponse("no", 401, headers={"WWW-Authenticate": header})
        await response(scope, receive, send)

    with serve_asgi(app) as url:
        yield url, seen


def test_a_refused_retry_is_returned_not_retried(
    servers: Servers, always_401: tuple[str, list[str | None]]
) -> None:
    url, seen = always_401
    with httpx.Client(auth=PrivateTokenAuth(servers.issuer_url), timeout=CLIENT_TIMEOUT) as c:
        response = c.get(url + "/")
    assert response.status_code == 401
    assert len(response.history) == 1
    assert len(seen) == 2 and seen[0] is None and seen[1] is not None
    assert seen[1].startswith("PrivateToken token=")


# ---------------------------------------------------------------------------- httpx, async


def test_async_client_answers_the_challenge(servers: Servers) -> None:
    async def run() -> tuple[httpx.Response, httpx.Response]:
        auth = PrivateTokenAuth(servers.issuer_url)
        async with httpx.AsyncClient(auth=auth, timeout=CLIENT_TIMEOUT) as client:
            first = await client.post(servers.origin_url + "/protected", content=b"a=1")
            again = await client.get(servers.origin_url + "/protected")
            return first, again

    first, again = asyncio.run(run())
    assert first.status_code == 200
    assert first.json() == {"via_session": False, "body": "a=1"}
    assert again.json()["via_session"] is True


def test_async_with_an_issuer_client_and_in_process(servers: Servers) -> None:
    async def run() -> list[int]:
        statuses = []
        async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as issuer_client:
            for auth in (
                PrivateTokenAuth(servers.issuer_url, async_issuer_client=issuer_client),
                PrivateTokenAuth(servers.issuer),
            ):
                async with httpx.AsyncClient(auth=auth, timeout=CLIENT_TIMEOUT) as client:
                    response = await client.get(servers.origin_url + "/protected")
                    statuses.append(response.status_code)
        return statuses

    assert asyncio.run(run()) == [200, 200]


def test_async_errors_are_clear(servers: Servers) -> None:
    async def get(auth: PrivateTokenAuth) -> None:
        async with httpx.AsyncClient(auth=auth, timeout=CLIENT_TIMEOUT) as client:
            await client.get(servers.origin_url + "/protected")

    with pytest.raises(ClientAuthError, match=r"'nobody\.example'"):
        asyncio.run(get(PrivateTokenAuth(servers.issuer_url, issuer_name="nobody.example")))
    down = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ClientAuthError, match="ConnectError"):
        asyncio.run(get(PrivateTokenAuth(down, issuer_name=servers.issuer.name)))
    with silent_server() as url, pytest.raises(ClientAuthError, match="Timeout"):
        asyncio.run(get(PrivateTokenAuth(url, issuer_name=servers.issuer.name, timeout=0.5)))


# -------------------------------------------------------------------------------- requests


def test_requests_session_answers_the_challenge(servers: Servers) -> None:
    with requests.Session() as session:
        session.auth = PrivateTokenRequestsAuth(servers.issuer_url)
        first = session.post(servers.origin_url + "/protected", data=b"x=1", timeout=CLIENT_TIMEOUT)
        assert first.status_code == 200
        assert first.json() == {"via_session": False, "body": "x=1"}
        assert [r.status_code for r in first.history] == [401]
        assert "pat_session=" in (first.request.headers.get("Cookie") or "")
        again = session.get(servers.origin_url + "/protected", timeout=CLIENT_TIMEOUT)
        assert again.json()["via_session"] is True


def test_requests_without_a_session_keeps_the_401_cookies(servers: Servers) -> None:
    auth = PrivateTokenRequestsAuth(servers.issuer_url)
    response = requests.get(
        servers.origin_url + "/protected",
        auth=auth,
        cookies={"theme": "dark"},
        timeout=CLIENT_TIMEOUT,
    )
    assert response.status_code == 200
    cookie = response.request.headers["Cookie"]
    assert "theme=dark" in cookie and "pat_session=" in cookie


def test_requests_file_body_is_rewound_for_the_retry(servers: Servers, tmp_path: Any) -> None:
    path = tmp_path / "body.txt"
    path.write_bytes(b"from a file")
    with path.open("rb") as body:
        response = requests.post(
            servers.origin_url + "/protected",
            data=body,
            auth=PrivateTokenRequestsAuth(servers.issuer),
            timeout=CLIENT_TIMEOUT,
        )
    assert response.json()["body"] == "from a file"


def test_requests_passes_through_and_never_loops(servers: Servers) -> None:
    auth = PrivateTokenRequestsAuth(servers.issuer_url)
    basic = requests.get(servers.origin_url + "/basic", auth=auth, timeout=CLIENT_TIMEOUT)
    assert basic.status_code == 401 and basic.history == []
    own = requests.get(
        servers.origin_url + "/protected",
        auth=auth,
        headers={"Authorization": "Bearer x"},
        timeout=CLIENT_TIMEOUT,
    )
    assert own.status_code == 401 and own.history == []


def test_requests_refused_retry_is_returned_not_retried(
    servers: Servers, always_401: tuple[str, list[str | None]]
) -> None:
    url, seen = always_401
    auth = PrivateTokenRequestsAuth(servers.issuer_url)
    response = requests.get(url + "/", auth=auth, timeout=CLIENT_TIMEOUT)
    assert response.status_code == 401
    assert len(response.history) == 1
    assert len(seen) == 2 and seen[0] is None
    assert (seen[1] or "").startswith("PrivateToken token=")


def test_requests_errors_are_clear(servers: Servers) -> None:
    url = servers.origin_url + "/protected"
    wrong = PrivateTokenRequestsAuth(servers.issuer_url, issuer_name="other.example")
    with pytest.raises(ClientAuthError, match=r"'other\.example'"):
        requests.get(url, auth=wrong, timeout=CLIENT_TIMEOUT)
    down = PrivateTokenRequestsAuth(
        f"http://127.0.0.1:{free_port()}", issuer_name=servers.issuer.name
    )
    with pytest.raises(ClientAuthError, match="ConnectError"):
        requests.get(url, auth=down, timeout=CLIENT_TIMEOUT)
    with silent_server() as silent:
        slow = PrivateTokenRequestsAuth(silent, issuer_name=servers.issuer.name, timeout=0.5)
        with pytest.raises(ClientAuthError, match="Timeout"):
            requests.get(url, auth=slow, timeout=CLIENT_TIMEOUT)


# ------------------------------------------------------------------------- sans-IO helpers


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://issuer.example", "issuer.example"),
        ("https://Issuer.Example:443/.well-known/private-token-issuer-directory", "issuer.example"),
        ("http://127.0.0.1:8080/", "127.0.0.1:8080"),
        ("http://issuer.example:80", "issuer.example"),
        ("issuer.example:8443", "issuer.example:8443"),
        ("https://[::1]:9000", "[::1]:9000"),
    ],
)
def test_issuer_name_from_url(url: str, name: str) -> None:
    assert issuer_name_from_url(url) == name


def test_issuer_url_without_host_is_refused() -> None:
    with pytest.raises(ClientAuthError, match="no host"):
        issuer_name_from_url("https://")


def _header(issuer: Issuer, name: str, max_age: int | None = 60, token_type: int = 2) -> str:
    challenge = TokenChallenge(token_type, name, b"", ())
    return build_www_authenticate(
        [ChallengeParams(challenge.to_bytes(), issuer.preferred_key.spki, max_age)]
    )


def test_choose_challenge_picks_the_one_for_our_issuer(servers: Servers) -> None:
    issuer = servers.issuer
    values = [_header(issuer, "a.example"), 'Basic realm="x"', _header(issuer, issuer.name)]
    answer = choose_challenge(values, issuer.name.upper(), now=5.0)
    assert answer.challenge.issuer_name == issuer.name
    assert answer.max_age == 60 and answer.received == 5.0
    with pytest.raises(ClientAuthError, match=r"offered a\.example"):
        choose_challenge(values[:2], issuer.name)
    # A type-1 challenge whose token-key is not a P-384 point (here an RSA SPKI) is refused.
    with pytest.raises(ClientAuthError, match="49-byte compressed P-384 point"):
        choose_challenge([_header(issuer, issuer.name, token_type=1)], issuer.name)
    with pytest.raises(ClientAuthError, match="type 1 is not one we can obtain"):
        choose_challenge(
            [_header(issuer, issuer.name, token_type=1)], issuer.name, token_types=[2]
        )
    with pytest.raises(ClientAuthError, match="holds no PrivateToken challenge"):
        choose_challenge(['Basic realm="x"'], issuer.name)


def test_max_age_bounds_issuance(servers: Servers) -> None:
    issuer = servers.issuer
    answer = choose_challenge([_header(issuer, issuer.name, max_age=2)], issuer.name, now=100.0)
    assert answer.remaining(now=101.5) == pytest.approx(0.5)
    answer.check_fresh(now=101.9)
    with pytest.raises(ClientAuthError, match=r"max-age \(2 s\) ran out"):
        answer.check_fresh(now=102.0)
    stale = Answer(answer.challenge, answer.key, 2, time.monotonic() - 3)
    with pytest.raises(ClientAuthError, match="max-age"):
        TokenSource(issuer).token(stale)
    bounded = _bounded(httpx.Timeout(10.0, connect=5.0), 0.5)
    assert isinstance(bounded, httpx.Timeout)
    assert (bounded.connect, bounded.read, bounded.write, bounded.pool) == (0.5, 0.5, 0.5, 0.5)
    assert _bounded(3.0, 1.0) == 1.0 and _bounded(3.0, None) == 3.0


def test_in_process_issuer_refuses_a_key_it_does_not_hold(servers: Servers) -> None:
    other = Issuer(servers.issuer.name, rsa.generate_private_key(65537, 2048))
    answer = choose_challenge([_header(other, other.name)], other.name)
    with pytest.raises(ClientAuthError, match="does not hold"):
        TokenSource(servers.issuer).token(answer)


def test_cookie_merge() -> None:
    names = set_cookie_names(["a=1; Path=/", "b=; Max-Age=0", " ; junk"])
    assert names == {"a", "b"}
    assert merge_cookie_header("a=0; b=2; c=3", names, "a=1") == "c=3; a=1"
    assert merge_cookie_header(None, names, "a=1") == "a=1"
    assert merge_cookie_header("b=2", names, None) is None


def test_type_1_challenges_are_answered_too() -> None:
    """A joint origin and issuer with a VOPRF key: the client obtains a type-1 token."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP384R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    late = LateApp()
    with serve_asgi(late) as issuer_url:
        issuer = Issuer(issuer_url.removeprefix("http://"), private)
        late.app = create_issuer_app(issuer)
        import os

        os.environ["PAT_TEST_TYPE1_KEY"] = pem
        try:
            settings = Settings.from_mapping(
                {
                    "issuers": [{"name": issuer.name, "private_key_env": "PAT_TEST_TYPE1_KEY"}],
                    "token_types": [1],
                    "secret": secrets.token_urlsafe(32),
                    "cookie_secure": False,
                    "protect": ["/protected"],
                }
            )
        finally:
            del os.environ["PAT_TEST_TYPE1_KEY"]
        policy = Policy(settings)
        try:
            with (
                serve_asgi(origin_app(policy)) as origin_url,
                httpx.Client(auth=PrivateTokenAuth(issuer_url), timeout=10) as client,
            ):
                first = client.get(origin_url + "/protected")
                assert first.status_code == 200, first.text
                assert first.json()["via_session"] is False
        finally:
            policy.close()
