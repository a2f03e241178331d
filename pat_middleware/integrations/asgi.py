"""Pure ASGI middleware (Starlette, FastAPI, Litestar, any ASGI app). No framework import here.

Translate the scope into a :class:`RequestInfo`, ask the policy, and either answer (401,
refusal, 503) or call the app with ``scope["private_token"]`` set and the policy's cookies
added to the app's response. A pass decided deeper in the app (a FastAPI dependency, an
authentication backend, a Litestar guard: code that never holds the response) is handed
to the middleware with :func:`defer_decision`, which writes its cookies and
``Cache-Control: private`` on whatever response the app sends.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from ..core.headers import MAX_HEADER_BYTES, private_cache_control
from ..core.paths import asgi_paths
from ..errors import ConfigurationError, DecodeError
from ..policy import SCOPE_KEY, Decision, Policy, RequestInfo
from ..policy.observe import MetricsHook
from ..settings import Settings
from ._common import MISCONFIGURED, built_late, is_preflight, resolve_policy

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Scope key holding the policy, so endpoint decorators find it.
POLICY_SCOPE_KEY = "pat_middleware.policy"
#: Scope key holding the :class:`LateDecision` of a request (see :func:`defer_decision`).
LATE_SCOPE_KEY = "pat_middleware.late"
#: WebSocket close code for a refused handshake (RFC 6455 §7.4.1: policy violation).
WS_POLICY_VIOLATION = 1008

logger = logging.getLogger("pat_middleware")


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (``name`` lower-cased), else None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


def preflight(scope: Scope) -> bool:
    """Whether an HTTP scope is a CORS preflight (see :func:`~._common.is_preflight`)."""
    if scope.get("method") != "OPTIONS":
        return False
    return is_preflight(
        "OPTIONS", header(scope, b"origin"), header(scope, b"access-control-request-method")
    )


_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


def request_info(scope: Scope, paths: tuple[str, ...] | None = None) -> RequestInfo:
    """Read method, path, Host, Authorization, Cookie and Sec-Redemption-Record from an HTTP
    scope (only the headers the policy reads); ``paths``: the scope's :func:`asgi_paths`,
    when already read.

    Cookie and Host lines longer than ``MAX_HEADER_BYTES`` are dropped (no session, no host).
    Authorization is kept whatever its size: the policy refuses one longer than
    ``max_authorization_length`` as malformed before parsing it, rather than ignoring it.
    Repeated Authorization and Sec-Redemption-Record lines are joined with ``, ``, repeated
    Cookie lines with ``; ``; the first Host counts.
    """
    host: str | None = None
    authorization: str | None = None
    cookie: str | None = None
    records: str | None = None
    for name, value in scope.get("headers", ()):
        # One pass; a line is decoded only when its name is one the policy reads.
        if name == b"authorization":
            text = value.decode("latin-1")
            authorization = text if authorization is None else f"{authorization}, {text}"
        elif name == b"cookie":
            if len(value) <= MAX_HEADER_BYTES:
                text = value.decode("latin-1")
                cookie = text if cookie is None else f"{cookie}; {text}"
        elif name == b"host":
            if host is None and len(value) <= MAX_HEADER_BYTES:
                host = value.decode("latin-1")
        elif name == b"sec-redemption-record":  # any size: its parser bounds it
            text = value.decode("latin-1")
            records = text if records is None else f"{records}, {text}"
    if paths is None:
        paths = asgi_paths(scope, strict=False)
    return RequestInfo(
        scope.get("method", "GET"),
        paths[0],
        host,
        _SCHEMES.get(scope.get("scheme", "")),
        paths[1:],
        authorization or None,
        cookie or None,
        records or None,
    )


#: Replaces the refusal the middleware sends (a JSON body, other headers): given the scope
#: and the policy's decision, the decision to send instead. It cannot let a request through.
OnError = Callable[[Scope, Decision], Decision]


def encode_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """ASGI raw headers (lower-cased names, latin-1) from header pairs."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


async def send_decision(decision: Decision, send: Send, method: str = "GET") -> None:
    """Answer with a non-pass decision (headers only for HEAD, RFC 9110 §9.3.2)."""
    headers = encode_headers(decision.header_lines())
    headers.append((b"content-length", str(len(decision.body)).encode()))
    await send({"type": "http.response.start", "status": decision.status, "headers": headers})
    body = b"" if method == "HEAD" else decision.body
    await send({"type": "http.response.body", "body": body})


def private_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with their Cache-Control lines merged into one that is ``private``
    (see :func:`~pat_middleware.core.headers.private_cache_control`)."""
    existing = [v.decode("latin-1") for k, v in headers if k.lower() == b"cache-control"]
    value = private_cache_control(", ".join(existing) if existing else None)
    kept = [(k, v) for k, v in headers if k.lower() != b"cache-control"] if existing else headers
    return [*kept, (b"cache-control", value.encode("latin-1"))]


_CACHE_CONTROL = b"cache-control"
_PRIVATE = (_CACHE_CONTROL, b"private")


def _with_pass_headers(headers: Iterable[tuple[bytes, bytes]], decision: Decision) -> list[Any]:
    """The app's response headers with a pass's cookies and, when the pass is private,
    Cache-Control merged into one that is (:func:`private_headers`, with its common case
    of an app that sent no Cache-Control written out)."""
    out = list(headers)
    if decision.cookies or decision.headers:
        out += encode_headers(decision.header_lines())
    if not decision.private:
        return out
    for key, _ in out:
        if key.lower() == _CACHE_CONTROL:
            return private_headers(out)
    out.append(_PRIVATE)
    return out


class LateDecision:
    """The ``send`` of a request whose pass may be decided deeper in the app: writes that
    pass's cookies and ``Cache-Control: private`` on the response the app starts."""

    __slots__ = ("decision", "send")

    def __init__(self, send: Send, decision: Decision | None = None) -> None:
        self.send = send
        self.decision = decision

    def __call__(self, message: Message) -> Awaitable[None]:
        # Not a coroutine: the server's own send is returned to be awaited, so each message
        # of every response (most of them on routes no pass was decided for) costs one
        # call here, not a coroutine frame more.
        decision = self.decision
        if decision is not None and message["type"] == "http.response.start":
            self.decision = None  # once
            if decision.cookies or decision.private:
                message = dict(message)
                message["headers"] = _with_pass_headers(message.get("headers", ()), decision)
        return self.send(message)


def defer_decision(scope: Scope, decision: Decision) -> bool:
    """Hand a pass decided inside the app to the :class:`PrivateTokenMiddleware` around it,
    which writes its cookies and ``Cache-Control: private`` on the response. False when
    no middleware is there to do it (the caller must then write them itself)."""
    late = scope.get(LATE_SCOPE_KEY)
    if not isinstance(late, LateDecision):
        return False
    if late.decision is None and decision.allowed:
        late.decision = decision
    return True


class HeadersOnly:
    """The ``send`` of a CORS preflight passed to the app: status and headers go out, the
    body does not (``Content-Length: 0``), whatever the app answered."""

    __slots__ = ("send",)

    def __init__(self, send: Send) -> None:
        self.send = send

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            kept = [
                (k, v)
                for k, v in message.get("headers", ())
                if k.lower() not in (b"content-length", b"transfer-encoding")
            ]
            message["headers"] = [*kept, (b"content-length", b"0")]
        elif message["type"] == "http.response.body":
            if message.get("more_body", False):
                return
            message = {"type": "http.response.body", "body": b""}
        await self.send(message)


class PrivateTokenMiddleware:
    """Protect an ASGI app with Private Access Tokens.

    Pass a ready :class:`Policy`, validated :class:`Settings`, or a settings file path
    (``None`` reads ``$PAT_SETTINGS``), and optionally a
    :class:`~pat_middleware.policy.observe.MetricsHook` for the policy built from them. Paths are
    protected by the settings' ``protect`` patterns; endpoints can also be protected with
    :func:`pat_middleware.integrations.starlette.require_private_token`.

    Wrong settings raise :class:`ConfigurationError` here, unless the middleware is built
    while an event loop runs (``app.add_middleware``: Starlette builds middleware on the
    first call; uvicorn imports the app in its loop), where raising would not stop the
    server: then the lifespan start-up fails with the error's one line (uvicorn logs it and
    exits non-zero), and without a lifespan every request is refused with ``503`` and the
    line is logged once, never the app, never a traceback.
    """

    policy: Policy

    def __init__(
        self,
        app: ASGIApp,
        *,
        policy: Policy | None = None,
        settings: Settings | None = None,
        settings_file: str | None = None,
        metrics: MetricsHook | None = None,
        on_error: OnError | None = None,
    ) -> None:
        self.app = app
        self.on_error = on_error
        self.problem: ConfigurationError | None = None
        try:
            self.policy = resolve_policy(policy, settings, settings_file, metrics)
        except ConfigurationError as e:
            if not built_late():
                raise
            self.problem = e
        self._logged = False

    async def _refuse(self, scope: Scope, decision: Decision, send: Send) -> None:
        if self.on_error is not None:
            replaced = self.on_error(scope, decision)
            if not replaced.allowed:
                decision = replaced
        await send_decision(decision, send, scope.get("method", "GET"))

    def __repr__(self) -> str:
        if self.problem is not None:
            return f"PrivateTokenMiddleware(misconfigured: {self.problem.setting})"
        return f"PrivateTokenMiddleware({self.policy!r})"

    async def _misconfigured(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Fail the lifespan start-up with the configuration error; refuse everything else."""
        problem = self.problem
        if scope["type"] == "lifespan":
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.failed", "message": str(problem)})
            return
        if not self._logged:  # lifespan off: the first request is the first chance to say it
            self._logged = True
            logger.error("pat-middleware is not configured: %s", problem)
        if scope["type"] == "http":
            await send_decision(MISCONFIGURED, send, scope.get("method", "GET"))
        elif scope["type"] == "websocket":
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.problem is not None:
            await self._misconfigured(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policy
        scope[POLICY_SCOPE_KEY] = policy
        try:
            paths = asgi_paths(scope)
            protected = policy.protects(scope.get("method", "GET"), *paths)
        except DecodeError:
            await self._refuse(scope, policy.bad_path(), send)
            return
        if not protected:
            scope[SCOPE_KEY] = None
            late = scope[LATE_SCOPE_KEY] = LateDecision(send)
            await self.app(scope, receive, late)
            return
        if preflight(scope):
            scope[SCOPE_KEY] = None
            await self.app(scope, receive, HeadersOnly(send))
            return
        # The paths read strictly decoded (or the request was refused above): the same
        # spellings request_info would read again.
        decision = await policy.evaluate_async(request_info(scope, paths), force=True)
        if not decision.allowed:
            await self._refuse(scope, decision, send)
            return
        scope[SCOPE_KEY] = decision.token
        late = scope[LATE_SCOPE_KEY] = LateDecision(send, decision)
        await self.app(scope, receive, late)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Start-up fails, so the server stops, where this process cannot accept tokens
        (a per-process replay store beside other worker processes: see
        :meth:`Policy.check_process`); otherwise the app has the lifespan."""
        problem = self.policy.check_process()
        if problem is None:
            await self.app(scope, receive, send)
            return
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.failed", "message": problem})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A handshake on a protected path needs a verified session (or a token).

        Browsers cannot answer a challenge on a WebSocket, so there is no 401 here: the
        handshake is closed with 1008 before it is accepted, which servers send as a 403.
        """
        scope[POLICY_SCOPE_KEY] = self.policy
        decision: Decision | None = None
        try:
            protected = self.policy.protects("GET", *asgi_paths(scope))
        except DecodeError:
            protected, decision = True, self.policy.bad_path()
        if not protected:
            scope[SCOPE_KEY] = None
            await self.app(scope, receive, send)
            return
        if decision is None:
            decision = await self.policy.evaluate_async(request_info(scope), force=True)
        if not decision.allowed:
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION})
            return
        scope[SCOPE_KEY] = decision.token
        await self.app(scope, receive, send)


__all__ = [
    "LATE_SCOPE_KEY",
    "POLICY_SCOPE_KEY",
    "HeadersOnly",
    "LateDecision",
    "OnError",
    "PrivateTokenMiddleware",
    "defer_decision",
    "encode_headers",
    "header",
    "preflight",
    "private_headers",
    "request_info",
    "send_decision",
]
