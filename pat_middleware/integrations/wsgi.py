"""WSGI middleware for any WSGI app (Flask and Django included). No framework import here.

The verification result goes into ``environ["private_token"]``; the policy's cookies are
added to the app's response headers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

from ..core.headers import MAX_HEADER_BYTES, private_cache_control
from ..core.paths import wsgi_paths
from ..errors import DecodeError
from ..policy import SCOPE_KEY, Decision, Policy, RequestInfo
from ..policy.observe import MetricsHook
from ..settings import Settings
from ._common import is_preflight, passed, resolve_policy

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIEnviron = dict[str, Any]
WSGIApp = Callable[[WSGIEnviron, StartResponse], Iterable[bytes]]

#: Environ key holding the policy, so view decorators find it.
POLICY_ENVIRON_KEY = "pat_middleware.policy"

_STATUS_TEXT = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    421: "Misdirected Request",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


def status_line(status: int) -> str:
    return f"{status} {_STATUS_TEXT.get(status, 'Error')}"


def _header(
    environ: Mapping[str, Any], key: str, limit: int | None = MAX_HEADER_BYTES
) -> str | None:
    value = environ.get(key)
    if not isinstance(value, str) or not value or (limit is not None and len(value) > limit):
        return None
    return value


def request_method(environ: Mapping[str, Any]) -> str:
    return str(environ.get("REQUEST_METHOD", "GET"))


def request_paths(environ: Mapping[str, Any], *routed: str, strict: bool = True) -> tuple[str, ...]:
    """Every spelling of the request path the ``protect`` patterns are matched against:
    ``PATH_INFO`` (what frameworks route on), ``SCRIPT_NAME + PATH_INFO``, the raw target,
    and ``routed``, the paths the framework itself computed (see :mod:`pat_middleware.core.paths`).
    Raises :class:`DecodeError` for bytes that are not UTF-8 when ``strict``.
    """
    paths = wsgi_paths(environ, strict=strict)
    return (*paths, *routed) if routed else paths


def request_info(environ: Mapping[str, Any], *routed: str) -> RequestInfo:
    """Read method, path spellings, Host, Authorization and Cookie from a WSGI environ.

    ``routed`` adds the framework's own reading of the path (Django's ``request.path_info``
    and ``request.path``, Flask's ``request.path``).
    """
    paths = request_paths(environ, *routed, strict=False)
    return RequestInfo(
        method=request_method(environ),
        path=paths[0],
        paths=paths[1:],
        host=_header(environ, "HTTP_HOST") or _header(environ, "SERVER_NAME"),
        scheme=_header(environ, "wsgi.url_scheme"),
        # Any size: the policy refuses an over-long one as malformed, before parsing it.
        authorization=_header(environ, "HTTP_AUTHORIZATION", limit=None),
        cookie=_header(environ, "HTTP_COOKIE"),
        redemption_record=_header(environ, "HTTP_SEC_REDEMPTION_RECORD", limit=None),
    )


def several_processes(environ: Mapping[str, Any]) -> bool:
    """What the server says: ``wsgi.multiprocess`` (PEP 3333: another process may call the
    same application at the same time), except from wsgiref's server, which says so while
    it serves from one process (Django's ``runserver`` is built on it)."""
    if not environ.get("wsgi.multiprocess"):
        return False
    software = environ.get("SERVER_SOFTWARE")
    return not (isinstance(software, str) and software.startswith("WSGIServer/"))


def note_server(policy: Policy, environ: Mapping[str, Any]) -> None:
    """Tell ``policy`` what the server says of itself, the first time only (see
    :meth:`Policy.note_server`): a per-process replay store fails closed under a server
    with several processes."""
    if not policy.server_noted:
        policy.note_server(multiprocess=several_processes(environ))


#: Replaces the refusal the middleware sends: given the environ and the policy's decision,
#: the decision to send instead. It cannot let a request through.
OnError = Callable[[WSGIEnviron, Decision], Decision]


def respond(decision: Decision, start_response: StartResponse, method: str = "GET") -> list[bytes]:
    """Answer with a non-pass decision (headers only for HEAD, RFC 9110 §9.3.2)."""
    headers = [*decision.header_lines(), ("Content-Length", str(len(decision.body)))]
    start_response(status_line(decision.status), headers)
    return [] if method == "HEAD" else [decision.body]


def private_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` with their Cache-Control lines merged into one that is ``private``
    (see :func:`~pat_middleware.core.headers.private_cache_control`)."""
    existing = [v for k, v in headers if k.lower() == "cache-control"]
    value = private_cache_control(", ".join(existing) if existing else None)
    kept = [(k, v) for k, v in headers if k.lower() != "cache-control"] if existing else headers
    return [*kept, ("Cache-Control", value)]


def preflight(environ: Mapping[str, Any]) -> bool:
    """Whether a request is a CORS preflight (see :func:`~._common.is_preflight`)."""
    return is_preflight(
        environ.get("REQUEST_METHOD"),
        environ.get("HTTP_ORIGIN"),
        environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD"),
    )


def _discard(data: bytes) -> None:
    """The ``write`` callable of a response whose body is dropped."""


def headers_only(app: WSGIApp, environ: WSGIEnviron, start_response: StartResponse) -> list[bytes]:
    """Call ``app`` and send on only its status and headers (``Content-Length: 0``): the
    answer to a CORS preflight passed to an app, whatever the app answered."""
    started: list[bool] = []

    def start(
        status: str, headers: list[tuple[str, str]], exc_info: _ExcInfo | None = None
    ) -> Callable[[bytes], object]:
        kept = [
            (k, v) for k, v in headers if k.lower() not in ("content-length", "transfer-encoding")
        ]
        kept.append(("Content-Length", "0"))
        started.append(True)
        if exc_info is not None:
            start_response(status, kept, exc_info)
        else:
            start_response(status, kept)
        return _discard

    body = app(environ, start)
    try:
        if not started:  # an app that calls start_response lazily, on its first chunk
            for _ in body:
                if started:
                    break
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return []


def start_response_with(start_response: StartResponse, decision: Decision) -> StartResponse:
    """Wrap ``start_response`` so the app's response carries a pass's cookies, and a
    Cache-Control that keeps it out of shared caches (:attr:`Decision.private`)."""
    private = decision.private
    if not decision.cookies and not private:
        return start_response
    extra = decision.header_lines()

    def wrapped(
        status: str, headers: list[tuple[str, str]], exc_info: _ExcInfo | None = None
    ) -> Callable[[bytes], object]:
        headers = [*headers, *extra]
        if private:
            headers = private_headers(headers)
        if exc_info is not None:
            return start_response(status, headers, exc_info)
        return start_response(status, headers)

    return wrapped


class PrivateTokenWSGIMiddleware:
    """Protect a WSGI app with Private Access Tokens (paths from the settings' ``protect``).

    Options as for :class:`pat_middleware.integrations.asgi.PrivateTokenMiddleware`.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        policy: Policy | None = None,
        settings: Settings | None = None,
        settings_file: str | None = None,
        metrics: MetricsHook | None = None,
        on_error: OnError | None = None,
    ) -> None:
        self.app = app
        self.policy = resolve_policy(policy, settings, settings_file, metrics)
        self.on_error = on_error

    def _refuse(
        self, environ: WSGIEnviron, decision: Decision, start_response: StartResponse
    ) -> list[bytes]:
        if self.on_error is not None:
            replaced = self.on_error(environ, decision)
            if not replaced.allowed:
                decision = replaced
        return respond(decision, start_response, request_method(environ))

    def __repr__(self) -> str:
        return f"PrivateTokenWSGIMiddleware({self.policy!r})"

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        environ[POLICY_ENVIRON_KEY] = self.policy
        if passed(environ.get(SCOPE_KEY)) is not None:
            return self.app(environ, start_response)  # an outer layer already passed it
        method = request_method(environ)
        try:
            protected = self.policy.protects(method, *wsgi_paths(environ))
        except DecodeError:
            return self._refuse(environ, self.policy.bad_path(), start_response)
        if not protected:
            environ[SCOPE_KEY] = None
            return self.app(environ, start_response)
        if preflight(environ):
            environ[SCOPE_KEY] = None
            return headers_only(self.app, environ, start_response)
        note_server(self.policy, environ)
        decision = self.policy.evaluate(request_info(environ), force=True)
        if not decision.allowed:
            return self._refuse(environ, decision, start_response)
        environ[SCOPE_KEY] = decision.token
        return self.app(environ, start_response_with(start_response, decision))


__all__ = [
    "POLICY_ENVIRON_KEY",
    "OnError",
    "PrivateTokenWSGIMiddleware",
    "headers_only",
    "note_server",
    "preflight",
    "private_headers",
    "request_info",
    "request_method",
    "request_paths",
    "respond",
    "several_processes",
    "start_response_with",
]
