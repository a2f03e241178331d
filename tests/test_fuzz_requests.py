"""Whole requests with random methods, paths, headers and cookies: never an exception or 5xx."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pat_middleware import IssuerKey, b64url_encode
from pat_middleware.asgi import PrivateTokenMiddleware
from pat_middleware.policy import Policy, RequestInfo
from pat_middleware.settings import Settings
from pat_middleware.stores import MemoryReplayStore
from pat_middleware.wsgi import PrivateTokenWSGIMiddleware

from .vectors import TYPE2_ISSUANCE, h

RFC_KEY = IssuerKey.from_spki(h(TYPE2_ISSUANCE[0]["pkS"]))
STORE = MemoryReplayStore(max_entries=1000)


def _policy(mode: str) -> Policy:
    settings = Settings.from_mapping(
        {
            "issuers": [{"name": "issuer.example", "token_key": RFC_KEY.token_key}],
            "secret": "f" * 40,
            "protect": ["/*"],
            "redemption_context": mode,
            "origin_info": ["origin.example"],
        }
    )
    return Policy(settings, replay_store=STORE)


POLICIES = {mode: _policy(mode) for mode in ("per-session", "per-request", "none")}

header_chars = st.characters(min_codepoint=0x20, max_codepoint=0xFF)
token_like = st.one_of(
    st.binary(max_size=400).map(lambda b: b64url_encode(b)),
    st.just(b64url_encode(h(TYPE2_ISSUANCE[0]["token"]))),
    st.text(header_chars, max_size=60),
)
authorization = st.one_of(
    st.none(),
    st.text(header_chars, max_size=300),
    token_like.map(lambda t: f"PrivateToken token={t}"),
    token_like.map(lambda t: f'PrivateToken token="{t}", PrivateToken token={t}'),
)
cookie = st.one_of(
    st.none(),
    st.text(header_chars, max_size=300),
    st.text(header_chars, max_size=200).map(lambda v: f"pat_session={v}; pat_verified={v}"),
    st.text(header_chars, max_size=200).map(lambda v: f"pat_session_c={v}"),
)
requests = st.builds(
    RequestInfo,
    method=st.sampled_from(["GET", "POST", "HEAD", "PUT", "weird", ""]),
    path=st.text(header_chars, max_size=60).map(lambda p: "/" + p),
    host=st.one_of(st.none(), st.text(header_chars, max_size=40)),
    authorization=authorization,
    cookie=cookie,
)


@pytest.mark.parametrize("mode", POLICIES)
@given(request=requests)
def test_policy_never_raises(mode: str, request: RequestInfo) -> None:
    decision = POLICIES[mode].evaluate(request)
    assert decision.status < 500 or decision.status == 503
    for _name, value in decision.headers:
        value.encode("latin-1")  # every header value is sendable
        assert "\r" not in value and "\n" not in value


def _ok_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@given(request=requests)
def test_wsgi_adapter_never_5xx(request: RequestInfo) -> None:
    app = PrivateTokenWSGIMiddleware(_ok_app, policy=POLICIES["per-session"])
    environ: dict[str, Any] = {"REQUEST_METHOD": request.method, "PATH_INFO": request.path}
    for key, value in (
        ("HTTP_HOST", request.host),
        ("HTTP_AUTHORIZATION", request.authorization),
        ("HTTP_COOKIE", request.cookie),
    ):
        if value is not None:
            environ[key] = value
    statuses: list[str] = []

    def start_response(status: str, headers: Any, *exc: Any) -> Any:
        statuses.append(status)
        return lambda data: None

    body = b"".join(app(environ, start_response))
    assert statuses and int(statuses[0][:3]) < 500
    assert body


async def _asgi_ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@given(request=requests)
def test_asgi_adapter_never_5xx(request: RequestInfo) -> None:
    app = PrivateTokenMiddleware(_asgi_ok, policy=POLICIES["per-session"])
    headers = [
        (name, value.encode("latin-1"))
        for name, value in (
            (b"host", request.host),
            (b"authorization", request.authorization),
            (b"cookie", request.cookie),
        )
        if value is not None
    ]
    scope = {"type": "http", "method": request.method, "path": request.path, "headers": headers}
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] < 500
