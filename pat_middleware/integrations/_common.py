"""What every integration shares, so each framework module is only its framework's glue:
building the policy from the adapter's options, the "already passed" check, the method
filter and ``accept=`` names of decorators, CORS preflights, and the mapping of a
settings-file error to the adapter's own name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

from ..core.headers import CACHE_CONTROL
from ..errors import ConfigurationError
from ..policy import Decision, MetricsHook, Outcome, Policy, RequestInfo, SetCookie, TokenInfo
from ..policy.sessions import parse_cookie_header
from ..policy.signals import SIGNAL_NAMES
from ..settings import SETTINGS_ENV, Settings, load_settings, protected_methods

#: The status a preflight gets from a decorator (the view itself is not run).
PREFLIGHT_STATUS = 204
#: Request headers that make an ``OPTIONS`` request a CORS preflight (Fetch, "CORS-preflight
#: request"). Browsers send no credentials with it, so it can never answer a challenge.
ORIGIN = "Origin"
ACCESS_CONTROL_REQUEST_METHOD = "Access-Control-Request-Method"
#: The scheme name in ``Authorization: PrivateToken token=...`` (RFC 9577 §2.2), lower-cased.
_SCHEME = "privatetoken"

#: What a request gets from an adapter whose settings failed where raising could no longer
#: stop the server (see :func:`built_late`): never the app, never a traceback.
MISCONFIGURED = Decision(
    Outcome.UNAVAILABLE,
    status=503,
    headers=(("Content-Type", "text/plain; charset=utf-8"), (CACHE_CONTROL, "no-store")),
    body=b"Service unavailable: the server is misconfigured.\n",
)


def resolve_policy(
    policy: Policy | None = None,
    settings: Settings | None = None,
    settings_file: str | Path | None = None,
    metrics: MetricsHook | None = None,
) -> Policy:
    """An adapter's constructor options: a policy, settings, or a settings file (``None``
    reads ``$PAT_SETTINGS``), in that order of precedence, and a metrics hook for a policy
    built here (a ready policy brings its own). Configuration errors raise here, at start-up.
    """
    if policy is not None:
        if metrics is not None:
            raise ConfigurationError("metrics", "give it to the Policy passed as policy=")
        return policy
    if settings is None:
        if settings_file is None:
            settings = load_settings(None)  # $PAT_SETTINGS, named so in errors
        else:
            settings = load_settings_file(settings_file, "settings_file")
    return Policy(settings, metrics=metrics)


def built_late() -> bool:
    """True when an adapter is being built while an event loop runs: Starlette and FastAPI
    build their middleware on the app's first call (the lifespan start-up), and uvicorn
    imports the app inside its loop. An exception raised there no longer stops the server
    (uvicorn takes it for "lifespan unsupported" and serves 500s), so such an adapter keeps
    its :class:`ConfigurationError` and fails the lifespan start-up with it instead."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def load_settings_file(path: str | Path, setting: str) -> Settings:
    """:func:`~pat_middleware.settings.load_settings`, with a problem reading the file itself
    named after ``setting`` (the adapter's own option, e.g. ``PAT_SETTINGS_FILE``)."""
    try:
        return load_settings(path)
    except ConfigurationError as e:
        if e.setting == SETTINGS_ENV:
            raise ConfigurationError(setting, e.message) from e
        raise


def passed(token: object) -> Decision | None:
    """The pass of a request an outer layer already let through (its :class:`TokenInfo`),
    so it is not judged again (that would spend its token twice); else None."""
    if isinstance(token, TokenInfo):
        return Decision(Outcome.SESSION if token.via_session else Outcome.PASS, token=token)
    return None


def accept_names(
    accept: Iterable[str] | None, policy: Policy | None = None
) -> frozenset[str] | None:
    """A decorator's ``accept=``: the names of the trust signals a route accepts (None: all
    of them), checked at start-up. Known names are the built-in signals
    (``private-token``, ``session``, ``redemption-record``) and those of ``policy``'s own
    signals when the policy is given; a typo would otherwise accept nothing, for ever."""
    if accept is None:
        return None
    if isinstance(accept, str):  # accept="session" would be read as five one-letter names
        accept = (accept,)
    names = frozenset(accept)
    if not names:
        raise ConfigurationError("accept", "names no trust signal, so nothing could pass")
    known = set(SIGNAL_NAMES)
    if policy is not None:
        known.update(s.name for s in policy.signals)
    unknown = sorted(names - known)
    if unknown:
        raise ConfigurationError(
            "accept",
            f"unknown trust signal {unknown[0]!r}; known: {', '.join(sorted(known))} "
            "(a signal of your own is known only from the Policy that holds it: give it as "
            "policy= where the decorator takes one; Django's and DRF's take none, as their "
            "policy is built from settings and has only the built-in signals)",
        )
    return names


def accepts(token: TokenInfo | None, accept: Collection[str] | None) -> bool:
    """A pass an outer layer decided counts for a route only with a signal it accepts."""
    return token is not None and (accept is None or token.signal in accept)


def is_preflight(method: str | None, origin: object, request_method: object) -> bool:
    """A CORS preflight: ``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``.

    It is never challenged: browsers send it without credentials and never answer a 401
    to it (the CORS check fails, so the real request, which would carry the token, is not
    sent). Middleware passes it on unjudged, keeping only the status and headers of what
    comes back (a CORS layer inside the app answers it; a view that answers OPTIONS like
    GET gives nothing away); decorators answer :data:`PREFLIGHT_STATUS` without running
    the view.
    """
    return method == "OPTIONS" and bool(origin) and bool(request_method)


def carries_signal(request: RequestInfo, policy: Policy) -> bool:
    """Whether a request carries something a built-in trust signal reads: a ``PrivateToken``
    credential, a redemption record, or the verified-session cookie. Authentication
    backends judge only such requests, so public pages cost nothing and are not counted as
    challenges; a route that needs a pass judges the request in any case."""
    if request.redemption_record:
        return True
    if request.authorization and _SCHEME in request.authorization.lower():
        return True
    if request.cookie:
        return policy.settings.cookies.verified_cookie in parse_cookie_header(request.cookie)
    return False


def set_cookies(
    set_cookie: Callable[..., object], cookies: Iterable[SetCookie], *, lower_same_site: bool
) -> None:
    """The policy's cookies through a framework's own ``response.set_cookie`` (Werkzeug,
    Starlette and Django name its options alike), so the framework's cookie handling (its
    quoting, ``response.cookies``) sees them. Starlette takes SameSite lower-cased."""
    for c in cookies:
        set_cookie(
            c.name,
            c.value,
            max_age=c.max_age,
            path=c.path,
            domain=c.domain,
            secure=c.secure,
            httponly=True,
            samesite=c.same_site.lower() if lower_same_site else c.same_site,
        )


class MethodFilter:
    """A decorator's ``methods=``: protect only these (``GET`` implies ``HEAD``); None: all."""

    __slots__ = ("_methods",)

    def __init__(self, methods: Iterable[str] | None) -> None:
        self._methods = protected_methods(methods) if methods is not None else None

    def exempt(self, method: str | None) -> bool:
        return self._methods is not None and (method or "GET").upper() not in self._methods


__all__ = [
    "ACCESS_CONTROL_REQUEST_METHOD",
    "MISCONFIGURED",
    "ORIGIN",
    "PREFLIGHT_STATUS",
    "MethodFilter",
    "accept_names",
    "accepts",
    "built_late",
    "carries_signal",
    "is_preflight",
    "load_settings_file",
    "passed",
    "resolve_policy",
    "set_cookies",
]
