"""``PrivateTokenMiddleware``: protects the paths ``PAT_MIDDLEWARE`` lists, sync or async.

``PAT_MIDDLEWARE`` is a dict with the keys of the TOML settings file, or
``{"settings_file": path}`` (a relative path resolves against ``BASE_DIR`` when it is set).
``PAT_METRICS`` (optional) is a :class:`~pat_middleware.policy.observe.MetricsHook`, or the dotted
path of one (a class is instantiated once). Both are read on every request and the policy
rebuilt when they change, so ``override_settings`` works; a rebuilt policy starts a new
in-memory replay store (with a new epoch: challenges sent before are not redeemable).

A passed request carries its :class:`~pat_middleware.policy.TokenInfo` as
``request.private_token`` (``None`` on unprotected paths); refusals are answered here. A
decision taken inside a view by code that never holds the response (Django REST
framework's authentication and permission classes) is handed over with
:func:`defer_decision`: the middleware writes its cookies (and ``Cache-Control``) on the
response on the way out. A CORS preflight on a protected path goes on to the view unjudged,
and only its status and headers come back.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from os import PathLike, fspath
from pathlib import Path
from typing import cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings as django_settings
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase, StreamingHttpResponse
from django.utils.module_loading import import_string

from ...core.headers import CACHE_CONTROL, private_cache_control
from ...core.paths import raw_target
from ...errors import ConfigurationError, DecodeError
from ...policy import SCOPE_KEY, Decision, Policy, RequestInfo, SetCookie, TokenInfo
from ...policy.observe import MetricsHook
from ...settings import Settings
from .. import _common, wsgi
from .._common import accepts, is_preflight, load_settings_file, passed

#: The Django setting holding pat-middleware's settings.
SETTING = "PAT_MIDDLEWARE"
#: The ``PAT_MIDDLEWARE`` key naming a TOML settings file instead of inline settings.
SETTINGS_FILE_KEY = "settings_file"
#: The Django setting holding the metrics hook (or its dotted path).
METRICS_SETTING = "PAT_METRICS"

#: Request attribute the middleware sets (to None) on every request: decisions taken inside
#: the view wait there for the way out (see :func:`defer_decision`).
DEFERRED_ATTR = "_pat_middleware_deferred"

SyncGetResponse = Callable[[HttpRequest], HttpResponseBase]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]

_MISSING = object()


def _base_dir() -> Path:
    base = getattr(django_settings, "BASE_DIR", None)
    return Path(base) if isinstance(base, str | PathLike) else Path.cwd()


def read_settings(raw: object = _MISSING) -> Settings:
    """Validated :class:`Settings` from ``PAT_MIDDLEWARE`` (or ``raw``, a value for it)."""
    if raw is _MISSING:
        raw = getattr(django_settings, SETTING, _MISSING)
    if raw is _MISSING:
        raise ConfigurationError(SETTING, "is not set")
    if not isinstance(raw, Mapping):
        raise ConfigurationError(SETTING, "expected a dict of settings or {'settings_file': path}")
    if SETTINGS_FILE_KEY not in raw:
        return Settings.from_mapping(raw, base_dir=_base_dir(), source=f"settings.{SETTING}")
    if len(raw) > 1:
        raise ConfigurationError(SETTINGS_FILE_KEY, "give settings_file alone, or inline settings")
    path = raw[SETTINGS_FILE_KEY]
    if not isinstance(path, str | PathLike):
        raise ConfigurationError(SETTINGS_FILE_KEY, "expected a file path")
    file = Path(fspath(path))
    return load_settings_file(file if file.is_absolute() else _base_dir() / file, SETTINGS_FILE_KEY)


def read_metrics(raw: object = _MISSING) -> MetricsHook | None:
    """The hook ``PAT_METRICS`` names (or ``raw``, a value for it); None when unset."""
    if raw is _MISSING:
        raw = getattr(django_settings, METRICS_SETTING, None)
    if raw is None:
        return None
    hook = raw
    if isinstance(raw, str):
        try:
            hook = import_string(raw)
        except ImportError as e:
            raise ConfigurationError(METRICS_SETTING, f"cannot import {raw!r}: {e}") from e
        if isinstance(hook, type):
            hook = hook()
    if not isinstance(hook, MetricsHook):
        raise ConfigurationError(
            METRICS_SETTING, "expected an object with a record(event) method, or its dotted path"
        )
    return hook


@dataclass(frozen=True, slots=True)
class _Entry:
    raw: object  # the PAT_MIDDLEWARE object the policy was built from
    snapshot: object  # a deep copy, so changes made in place are noticed too
    metrics: object  # the PAT_METRICS value it was built with
    policy: Policy


class _PolicyCache:
    """One policy for the current ``PAT_MIDDLEWARE``, rebuilt when the setting changes."""

    def __init__(self) -> None:
        self._entry: _Entry | None = None
        self._lock = threading.Lock()

    def _current(self, raw: object, metrics: object) -> Policy | None:
        entry = self._entry
        if (
            entry is not None
            and entry.raw is raw
            and entry.snapshot == raw
            and entry.metrics is metrics
        ):
            return entry.policy
        return None

    def get(self) -> Policy:
        raw = getattr(django_settings, SETTING, _MISSING)
        metrics = getattr(django_settings, METRICS_SETTING, None)
        policy = self._current(raw, metrics)
        if policy is not None:
            return policy
        with self._lock:  # one build, so concurrent requests share one replay store
            policy = self._current(raw, metrics)
            if policy is None:
                policy = Policy(read_settings(raw), metrics=read_metrics(metrics))
                self._entry = _Entry(raw, copy.deepcopy(raw), metrics, policy)
            return policy


_cache = _PolicyCache()


def get_policy() -> Policy:
    """The :class:`Policy` for the current ``PAT_MIDDLEWARE`` (built once per value)."""
    return _cache.get()


def request_paths(request: HttpRequest, *, strict: bool = True) -> tuple[str, ...]:
    """The spellings of a Django request's path (see :mod:`pat_middleware.core.paths`):
    ``request.path_info`` (what the URL resolver routes on), ``request.path`` (with the
    script prefix) and the raw target as the server received it. Django has already decoded
    ``META["PATH_INFO"]`` into text, so it is not read as WSGI bytes again."""
    spellings = [request.path_info or "/", request.path or "/"]
    target = raw_target(request.META, strict=strict)
    if target is not None:
        spellings.append(target)
    return tuple(spellings)


def request_info(request: HttpRequest) -> RequestInfo:
    """Method, path spellings and headers of a Django request (never calls ``get_host()``)."""
    info = wsgi.request_info(request.META)
    paths = request_paths(request, strict=False)
    return dataclasses.replace(info, path=paths[0], paths=paths[1:])


def _note_server(policy: Policy, request: HttpRequest) -> None:
    """Tell the policy what the WSGI server says of itself, once (see
    :func:`pat_middleware.integrations.wsgi.note_server`). Django writes
    ``wsgi.multiprocess = True`` into every ASGI request and every test-client request
    whatever runs them: only a WSGI request from a real server is heard."""
    if policy.server_noted:
        return
    meta = request.META
    heard = (
        isinstance(request, WSGIRequest)
        and type(meta.get("wsgi.input")).__module__ != "django.test.client"
        and wsgi.several_processes(meta)
    )
    policy.note_server(multiprocess=heard)


def passed_token(request: HttpRequest) -> TokenInfo | None:
    """The TokenInfo this request already passed with (this middleware or the WSGI one)."""
    for found in (getattr(request, SCOPE_KEY, None), request.META.get(SCOPE_KEY)):
        done = passed(found)
        if done is not None:
            return done.token
    return None


def _already(request: HttpRequest, accept: Collection[str] | None = None) -> Decision | None:
    for found in (getattr(request, SCOPE_KEY, None), request.META.get(SCOPE_KEY)):
        done = passed(found)
        if done is not None and accepts(done.token, accept):
            setattr(request, SCOPE_KEY, done.token)
            return done
    return None


def preflight(request: HttpRequest) -> bool:
    """Whether a request is a CORS preflight (see :func:`~.._common.is_preflight`)."""
    meta = request.META
    return is_preflight(
        request.method, meta.get("HTTP_ORIGIN"), meta.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD")
    )


def defer_decision(request: HttpRequest, decision: Decision) -> bool:
    """Hand a decision taken inside a view to :class:`PrivateTokenMiddleware`, which writes
    its cookies (a pass's, or the session cookie a challenge is bound to) and its
    ``Cache-Control`` on the response. False when the middleware is not installed."""
    if not hasattr(request, DEFERRED_ATTR):
        return False
    if getattr(request, DEFERRED_ATTR) is None:
        setattr(request, DEFERRED_ATTR, decision)
    return True


def _finish(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """Write a decision deferred by the view on its response."""
    deferred = getattr(request, DEFERRED_ATTR, None)
    if isinstance(deferred, Decision):
        setattr(request, DEFERRED_ATTR, None)
        if deferred.allowed:
            apply_decision(response, deferred)
        else:  # the view rendered the refusal (its own body): add the policy's headers
            for name, value in deferred.headers:
                if name.lower() != "content-type":
                    response.headers[name] = value
            set_cookies(response, deferred.cookies)
    return response


def headers_only(response: HttpResponseBase) -> HttpResponseBase:
    """A preflight's answer without its body (``Content-Length: 0``), whatever the view
    sent."""
    if isinstance(response, StreamingHttpResponse):
        response.streaming_content = []
    elif isinstance(response, HttpResponse):
        response.content = b""
    response.headers["Content-Length"] = "0"
    return response


def _record(request: HttpRequest, decision: Decision) -> Decision:
    if decision.allowed:
        setattr(request, SCOPE_KEY, decision.token)
    return decision


def check_request(
    request: HttpRequest, policy: Policy | None = None, accept: Collection[str] | None = None
) -> Decision:
    """Judge ``request`` as protected; on a pass sets ``request.private_token``. ``accept``:
    the trust signals that count (None: all), for this judgement and for a pass already
    decided by an outer layer."""
    done = _already(request, accept)
    if done is not None:
        return done
    active = policy or get_policy()
    _note_server(active, request)
    return _record(request, active.evaluate(request_info(request), force=True, accept=accept))


async def acheck_request(
    request: HttpRequest, policy: Policy | None = None, accept: Collection[str] | None = None
) -> Decision:
    """:func:`check_request` for async views and middleware."""
    done = _already(request, accept)
    if done is not None:
        return done
    active = policy or get_policy()
    _note_server(active, request)
    info = request_info(request)
    return _record(request, await active.evaluate_async(info, force=True, accept=accept))


def refusal_response(decision: Decision, method: str | None = "GET") -> HttpResponse:
    """The policy's 401/4xx/503 answer as a Django response (no body for HEAD)."""
    body = b"" if method == "HEAD" else decision.body
    response = HttpResponse(body, status=decision.status)
    for name, value in decision.headers:
        response.headers[name] = value
    set_cookies(response, decision.cookies)
    return response


def apply_decision(response: HttpResponseBase, decision: Decision) -> None:
    """A pass's cookies on the view's response, and its Cache-Control made private."""
    set_cookies(response, decision.cookies)
    if decision.private:
        response.headers[CACHE_CONTROL] = private_cache_control(response.headers.get(CACHE_CONTROL))


def set_cookies(response: HttpResponseBase, cookies: tuple[SetCookie, ...]) -> None:
    """The policy's cookies, through Django's own cookie API."""
    _common.set_cookies(response.set_cookie, cookies, lower_same_site=False)


class PrivateTokenMiddleware:
    """Protect the paths (and methods) ``PAT_MIDDLEWARE`` lists; serves sync and async."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: SyncGetResponse | AsyncGetResponse) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)
        get_policy()  # fail at start-up, not on the first request, when settings are wrong

    def __repr__(self) -> str:
        return f"PrivateTokenMiddleware(async_mode={self.async_mode})"

    def _policy_if_protected(self, request: HttpRequest) -> Policy | Decision | bool:
        """The policy when this request is protected; False (and no token) when it is not;
        True for a CORS preflight on a protected path; the 400 decision when its path does
        not decode."""
        setattr(request, DEFERRED_ATTR, None)
        policy = get_policy()
        if passed_token(request) is not None:
            return policy
        try:
            protected = policy.protects(request.method or "GET", *request_paths(request))
        except DecodeError:
            return policy.bad_path()
        if not protected or preflight(request):
            setattr(request, SCOPE_KEY, None)
            return protected
        return policy

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.async_mode:
            return self.__acall__(request)
        get_response = cast(SyncGetResponse, self.get_response)
        policy = self._policy_if_protected(request)
        if policy is False:
            return _finish(request, get_response(request))
        if policy is True:
            return headers_only(get_response(request))
        decision = policy if isinstance(policy, Decision) else check_request(request, policy)
        if not decision.allowed:
            return refusal_response(decision, request.method)
        response = get_response(request)
        apply_decision(response, decision)
        return _finish(request, response)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        get_response = cast(AsyncGetResponse, self.get_response)
        policy = self._policy_if_protected(request)
        if policy is False:
            return _finish(request, await get_response(request))
        if policy is True:
            return headers_only(await get_response(request))
        if isinstance(policy, Decision):
            decision = policy
        else:
            decision = await acheck_request(request, policy)
        if not decision.allowed:
            return refusal_response(decision, request.method)
        response = await get_response(request)
        apply_decision(response, decision)
        return _finish(request, response)


__all__ = [
    "DEFERRED_ATTR",
    "METRICS_SETTING",
    "SETTING",
    "SETTINGS_FILE_KEY",
    "PrivateTokenMiddleware",
    "acheck_request",
    "apply_decision",
    "check_request",
    "defer_decision",
    "get_policy",
    "headers_only",
    "passed_token",
    "preflight",
    "read_metrics",
    "read_settings",
    "refusal_response",
    "request_info",
    "set_cookies",
]
