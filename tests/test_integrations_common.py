"""What the integrations share (pat_middleware.integrations._common and the ASGI/WSGI
helpers every adapter uses), unit by unit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pat_middleware.errors import ConfigurationError
from pat_middleware.integrations._common import (
    accept_names,
    accepts,
    built_late,
    carries_signal,
    is_preflight,
)
from pat_middleware.integrations.asgi import HeadersOnly, LateDecision, defer_decision
from pat_middleware.integrations.wsgi import headers_only
from pat_middleware.policy import Decision, Outcome, Policy, RequestInfo, SetCookie, TokenInfo
from pat_middleware.tokens.blind_rsa import IssuerKey

from ._origin import VERIFIED_COOKIE, make_settings

TOKEN = TokenInfo("issuer.example", 2, "00", signal="private-token")


def test_accept_names() -> None:
    assert accept_names(None) is None
    assert accept_names("session") == frozenset({"session"})  # one name, not five letters
    assert accept_names(["private-token", "session"]) == frozenset({"private-token", "session"})
    for bad in ([], ["Session"], ["private_token"]):
        with pytest.raises(ConfigurationError) as caught:
            accept_names(bad)
        assert caught.value.setting == "accept"


def test_accepts() -> None:
    assert accepts(TOKEN, None) and accepts(TOKEN, {"private-token"})
    assert not accepts(TOKEN, {"session"}) and not accepts(None, None)


@pytest.mark.parametrize(
    ("method", "origin", "request_method", "expected"),
    [
        ("OPTIONS", "https://a.example", "POST", True),
        ("OPTIONS", None, "POST", False),
        ("OPTIONS", "https://a.example", None, False),
        ("OPTIONS", "https://a.example", "", False),
        ("GET", "https://a.example", "POST", False),
        ("options", "https://a.example", "POST", False),  # methods are case-sensitive
    ],
)
def test_is_preflight(method: str, origin: Any, request_method: Any, expected: bool) -> None:
    assert is_preflight(method, origin, request_method) is expected


def test_carries_signal(issuer_key: IssuerKey) -> None:
    policy = Policy(make_settings(issuer_key, cookie_secure=False))
    assert not carries_signal(RequestInfo("GET", "/"), policy)
    assert not carries_signal(RequestInfo("GET", "/", authorization="Basic eA=="), policy)
    assert not carries_signal(RequestInfo("GET", "/", cookie="pat_session=x; other=y"), policy)
    assert carries_signal(RequestInfo("GET", "/", authorization="privatetoken token=x"), policy)
    assert carries_signal(RequestInfo("GET", "/", cookie=f"a=b; {VERIFIED_COOKIE}=x"), policy)
    assert carries_signal(RequestInfo("GET", "/", redemption_record='"a";r="b"'), policy)


def test_built_late() -> None:
    assert built_late() is False

    async def inside() -> bool:
        return built_late()

    assert asyncio.run(inside()) is True


# ---------------------------------------------------------------------- ASGI sends


def _run(send: Callable[[dict[str, Any]], Any], messages: list[dict[str, Any]]) -> None:
    async def main() -> None:
        for message in messages:
            await send(message)

    asyncio.run(main())


def _start(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http.response.start", "status": 200, "headers": list(headers)}


def test_late_decision_writes_a_pass_once() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    cookie = SetCookie("pat_verified", "v", 300, secure=False)
    late = LateDecision(send)
    scope: dict[str, Any] = {"pat_middleware.late": late}
    refused = Decision(Outcome.CHALLENGE, status=401)
    assert defer_decision(scope, refused) and late.decision is None  # refusals are not kept
    assert defer_decision(scope, Decision(Outcome.PASS, cookies=(cookie,), token=TOKEN))
    assert not defer_decision({}, Decision(Outcome.PASS))  # no middleware around
    body = {"type": "http.response.body", "body": b"x"}
    _run(late, [_start((b"cache-control", b"public, max-age=5")), body])
    headers = dict(sent[0]["headers"])
    assert headers[b"cache-control"] == b"private, max-age=5"
    assert headers[b"set-cookie"].startswith(b"pat_verified=v;")
    assert sent[1] is body


def test_headers_only_drops_every_body_chunk() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    _run(
        HeadersOnly(send),
        [
            _start((b"content-length", b"9"), (b"x-kept", b"1")),
            {"type": "http.response.body", "body": b"SECRET", "more_body": True},
            {"type": "http.response.body", "body": b"!!!"},
        ],
    )
    assert sent[0]["headers"] == [(b"x-kept", b"1"), (b"content-length", b"0")]
    assert sent[1:] == [{"type": "http.response.body", "body": b""}]


# ---------------------------------------------------------------------- WSGI body


def test_wsgi_headers_only_with_a_lazy_app() -> None:
    closed: list[bool] = []

    class Body:
        def __init__(self, start_response: Callable[..., Any]) -> None:
            self.start_response = start_response

        def __iter__(self) -> Iterator[bytes]:
            self.start_response("200 OK", [("Content-Length", "6"), ("X-Kept", "1")])
            yield b"SECRET"

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Body:
        return Body(start_response)

    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started.append((status, headers))
        return lambda data: None

    assert headers_only(app, {}, start_response) == []
    assert started == [("200 OK", [("X-Kept", "1"), ("Content-Length", "0")])]
    assert closed == [True]
