"""Flask extension: ``PrivateTokens(app)`` or ``tokens = PrivateTokens(); tokens.init_app(app)``.

Configuration comes from ``app.config``: either ``PAT_SETTINGS_FILE`` (a TOML settings file)
or one ``PAT_<KEY>`` per settings key (``PAT_ISSUERS``, ``PAT_SECRET``, ``PAT_PROTECT``,
``PAT_MAX_AGE``...), not both. A relative ``PAT_SETTINGS_FILE``, and relative paths in
``PAT_*`` keys, resolve against ``app.root_path``; paths inside the file against the file.
:meth:`PrivateTokens.init_app` validates it all and raises
:class:`~pat_middleware.ConfigurationError` naming the config key.

Paths matching ``PAT_PROTECT`` (and ``PAT_PROTECT_METHODS``) are checked before the view
runs; ``@tokens.required`` or :func:`private_token_required` protect single views, and
:meth:`PrivateTokens.protect_blueprint` every view of a blueprint. A passed request finds
its :class:`~pat_middleware.policy.TokenInfo` in ``flask.g.private_token`` and
``request.environ["private_token"]``. Importing this module imports Flask.

The decorator goes *under* the route decorator. Above it, Flask has already registered the
undecorated function and the route is open; that order is refused with a
:class:`~pat_middleware.ConfigurationError` naming the endpoint: when ``required`` wraps a
function the app already routes to, in ``init_app`` for routes registered before it, and
on each request while a route registered later (a blueprint) still serves such a function.
"""

from __future__ import annotations

import difflib
import functools
import weakref
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, ParamSpec, Protocol, overload

from flask import (
    Blueprint,
    Flask,
    Response,
    after_this_request,
    current_app,
    g,
    has_app_context,
    make_response,
    request,
)
from flask.typing import ResponseReturnValue

from ..core.headers import CACHE_CONTROL, private_cache_control
from ..errors import ConfigurationError, DecodeError
from ..policy import SCOPE_KEY, Decision, Policy, TokenInfo
from ..policy.observe import MetricsHook
from ..settings import KNOWN_KEYS, Settings
from ._common import (
    ACCESS_CONTROL_REQUEST_METHOD,
    ORIGIN,
    PREFLIGHT_STATUS,
    MethodFilter,
    accept_names,
    accepts,
    is_preflight,
    load_settings_file,
    passed,
    set_cookies,
)
from .wsgi import (
    POLICY_ENVIRON_KEY,
    note_server,
    request_info,
    request_method,
    request_paths,
)

#: ``app.extensions`` key holding the :class:`PrivateTokens` instance.
EXTENSION_KEY = "pat_middleware"
#: ``app.extensions`` key holding the app's :class:`Policy`.
POLICY_KEY = "pat_middleware.policy"
CONFIG_PREFIX = "PAT_"
SETTINGS_FILE_CONFIG = "PAT_SETTINGS_FILE"
_CONFIG_KEYS = {CONFIG_PREFIX + key.upper(): key for key in KNOWN_KEYS}
#: ``app.extensions`` key: True once every routed view has been checked (see _check_views).
_CHECKED_KEY = "pat_middleware.checked"

#: Every function a ``required`` decorator wrapped (the undecorated view), and every wrapper
#: it returned: a routed function in the first set and not the second is an open route.
_GUARDED: weakref.WeakSet[Callable[..., object]] = weakref.WeakSet()
_WRAPPERS: weakref.WeakSet[Callable[..., object]] = weakref.WeakSet()
#: The apps that called init_app: ``required`` looks in their routes at decoration time.
_APPS: weakref.WeakSet[Flask] = weakref.WeakSet()

_P = ParamSpec("_P")
_Q = ParamSpec("_Q")  # the returned decorator's own, so it stays generic
#: What a view returns: a response value, or an awaitable of one (an async view).
_ViewResult = ResponseReturnValue | Awaitable[ResponseReturnValue]


class ViewDecorator(Protocol):
    """What ``required(methods=...)`` returns: a decorator for one view."""

    def __call__(self, view: Callable[_P, _ViewResult], /) -> Callable[_P, Response]: ...


def config_name(setting: str) -> str:
    """The Flask config key for a settings name: ``issuers[0].name`` -> ``PAT_ISSUERS[0].name``."""
    head, sep, rest = setting.partition("[")
    if not sep:
        head, sep, rest = setting.partition(".")
    if head in KNOWN_KEYS:
        return CONFIG_PREFIX + head.upper() + sep + rest
    return setting


def settings_from_config(config: Mapping[str, Any], *, root_path: str | Path) -> Settings:
    """Validated :class:`Settings` from a Flask config (``PAT_SETTINGS_FILE`` or ``PAT_*``)."""
    values = {key: config[name] for name, key in _CONFIG_KEYS.items() if name in config}
    for name in config:
        if name.startswith(CONFIG_PREFIX) and name not in _CONFIG_KEYS:
            close = difflib.get_close_matches(name, _CONFIG_KEYS, n=1, cutoff=0.85)
            if close:  # other PAT_* keys may belong to the app; near misses are typos
                raise ConfigurationError(name, f"unknown setting; did you mean {close[0]}?")
    settings_file = config.get(SETTINGS_FILE_CONFIG)
    if settings_file is not None:
        if values:
            first = CONFIG_PREFIX + sorted(values)[0].upper()
            raise ConfigurationError(
                first, f"give {SETTINGS_FILE_CONFIG} or PAT_* settings, not both"
            )
        if not isinstance(settings_file, str | Path):
            raise ConfigurationError(SETTINGS_FILE_CONFIG, "expected a file path")
        file = Path(settings_file)
        path = file if file.is_absolute() else Path(root_path) / file
        return load_settings_file(path, SETTINGS_FILE_CONFIG)
    try:
        return Settings.from_mapping(values, base_dir=Path(root_path), source="Flask config")
    except ConfigurationError as e:
        raise ConfigurationError(config_name(e.setting), e.message) from e


def _refusal(decision: Decision) -> Response:
    response = Response(decision.body, status=decision.status, headers=list(decision.headers))
    set_cookies(response.set_cookie, decision.cookies, lower_same_site=False)
    return response


def _evaluate(policy: Policy, accept: Collection[str] | None = None) -> Decision:
    """Judge the current request as protected, unless something already passed it (with a
    signal in ``accept``)."""
    environ = request.environ
    token = environ.get(SCOPE_KEY)
    done = (
        passed(token) if accepts(token if isinstance(token, TokenInfo) else None, accept) else None
    )
    if done is not None:  # the WSGI middleware or a hook passed it already
        g.private_token = done.token
        return done
    note_server(policy, environ)
    decision = policy.evaluate(request_info(environ, *_routed_paths()), force=True, accept=accept)
    if decision.allowed:
        environ[SCOPE_KEY] = decision.token
        g.private_token = decision.token
    return decision


def _routed_paths() -> tuple[str, ...]:
    """What Werkzeug routed on: ``request.path`` (leading slashes merged, UTF-8 decoded) and
    the matched rule when it is a plain path (``strict_slashes=False`` serves ``/x/`` for
    the rule ``/x``)."""
    rule = request.url_rule
    if rule is not None and "<" not in rule.rule:
        return (request.path, rule.rule)
    return (request.path,)


def _apply(response: Response, decision: Decision) -> Response:
    """A pass's cookies on the view's response, and Cache-Control made private."""
    set_cookies(response.set_cookie, decision.cookies, lower_same_site=False)
    if decision.private:
        existing = response.headers.getlist(CACHE_CONTROL)
        response.headers[CACHE_CONTROL] = private_cache_control(
            ", ".join(existing) if existing else None
        )
    return response


def _preflight() -> bool:
    headers = request.headers
    return is_preflight(
        request.method, headers.get(ORIGIN), headers.get(ACCESS_CONTROL_REQUEST_METHOD)
    )


def _headers_only(response: Response) -> Response:
    """A preflight's answer without its body: whatever the view sent, only the status and
    headers go out."""
    response.set_data(b"")
    return response


def _pass_preflight() -> None:
    """Let a CORS preflight on to Flask (its automatic OPTIONS answer, a CORS extension)
    unjudged, with nothing but status and headers coming back."""
    request.environ.setdefault(SCOPE_KEY, None)
    g.private_token = None
    after_this_request(_headers_only)


def _current_policy() -> Policy:
    found = current_app.extensions.get(POLICY_KEY) or request.environ.get(POLICY_ENVIRON_KEY)
    if not isinstance(found, Policy):
        raise ConfigurationError(
            "policy",
            "private_token_required needs PrivateTokens(app) or PrivateTokenWSGIMiddleware",
        )
    return found


def _open_route(endpoint: str) -> ConfigurationError:
    return ConfigurationError(
        f"view {endpoint!r}",
        "the route is open: the token decorator sits above the route decorator, so Flask "
        "registered the undecorated view; put @app.route (or @bp.route) on top",
    )


def _refuse_if_routed(view: Callable[..., object]) -> None:
    """``required`` placed above ``@app.route``: the app already routes to ``view`` itself."""
    for app in list(_APPS):
        for endpoint, routed in app.view_functions.items():
            if routed is view:
                raise _open_route(endpoint)


def _check_views(app: Flask) -> None:
    """Every routed view that a ``required`` decorator wrapped must be routed wrapped."""
    if app.extensions.get(_CHECKED_KEY):
        return
    for endpoint, routed in app.view_functions.items():
        if routed in _GUARDED and routed not in _WRAPPERS:
            raise _open_route(endpoint)


def _decorate(
    view: Callable[_P, _ViewResult],
    methods: Iterable[str] | None,
    get_policy: Callable[[], Policy],
    accept: Iterable[str] | None,
    policy: Policy | None = None,
) -> Callable[_P, Response]:
    names = accept_names(accept, policy)
    methods_filter = MethodFilter(methods)
    _refuse_if_routed(view)

    @functools.wraps(view)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Response:
        if _preflight():
            return Response(status=PREFLIGHT_STATUS)
        # Flask runs an async view through ensure_sync only when it is the routed function:
        # wrapped, it must be run so here (else every request is a 500).
        run = current_app.ensure_sync(view)
        if methods_filter.exempt(request.method):
            return make_response(run(*args, **kwargs))
        decision = _evaluate(get_policy(), names)
        if not decision.allowed:
            return _refusal(decision)
        return _apply(make_response(run(*args, **kwargs)), decision)

    _GUARDED.add(view)
    _WRAPPERS.add(wrapper)
    return wrapper


class PrivateTokens:
    """The Flask extension. ``policy`` or ``settings`` override the app's ``PAT_*`` config;
    ``metrics`` is the :class:`~pat_middleware.policy.observe.MetricsHook` of the policies it
    builds.

    Both forms of Flask's extension pattern work: ``PrivateTokens(app)``, or
    ``tokens = PrivateTokens()`` at import and ``tokens.init_app(app)`` in the application
    factory (one instance can serve several apps, each with its own config and policy in
    ``app.extensions``).
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        policy: Policy | None = None,
        settings: Settings | None = None,
        metrics: MetricsHook | None = None,
    ) -> None:
        if policy is not None and settings is not None:
            raise ConfigurationError("policy", "give policy or settings, not both")
        if policy is not None and metrics is not None:
            raise ConfigurationError("metrics", "give it to the Policy passed as policy=")
        self._policy = policy
        self._settings = settings
        self._metrics = metrics
        self.app = app
        if app is not None:
            self.init_app(app)

    def __repr__(self) -> str:
        return f"PrivateTokens(app={self.app!r})"

    def init_app(self, app: Flask) -> None:
        """Validate the app's settings, build its policy and install the request hooks;
        refuse views routed undecorated under a ``required`` decorator (see above)."""
        policy = self._policy
        if policy is None:
            settings = self._settings or settings_from_config(app.config, root_path=app.root_path)
            policy = Policy(settings, metrics=self._metrics)
        _check_views(app)
        app.extensions[EXTENSION_KEY] = self
        app.extensions[POLICY_KEY] = policy
        app.before_request(self._before_request)
        _APPS.add(app)

    @property
    def policy(self) -> Policy:
        """The policy of the current app, else of the app given to the constructor."""
        app = current_app if has_app_context() else self.app
        if app is None:
            raise RuntimeError("PrivateTokens.policy needs an application context")
        found = app.extensions.get(POLICY_KEY)
        if not isinstance(found, Policy):
            raise RuntimeError("PrivateTokens.init_app was not called for this application")
        return found

    def _get_policy(self) -> Policy:
        return self.policy

    @overload
    def required(
        self,
        view: Callable[_P, _ViewResult],
        *,
        methods: Iterable[str] | None = None,
        accept: Iterable[str] | None = None,
    ) -> Callable[_P, Response]: ...

    @overload
    def required(
        self,
        view: None = None,
        *,
        methods: Iterable[str] | None = None,
        accept: Iterable[str] | None = None,
    ) -> ViewDecorator: ...

    def required(
        self,
        view: Callable[_P, _ViewResult] | None = None,
        *,
        methods: Iterable[str] | None = None,
        accept: Iterable[str] | None = None,
    ) -> Callable[_P, Response] | ViewDecorator:
        """Decorate a view so it needs a valid token; ``methods`` limits that to those
        methods, ``accept`` to those trust signals (e.g. ``["private-token"]``). Place it
        under the route decorator. A CORS preflight gets ``204`` without running the view."""
        if view is not None:
            return _decorate(view, methods, self._get_policy, accept, self._policy)
        accept_names(accept, self._policy)  # a typo fails here, at import

        def decorator(func: Callable[_Q, _ViewResult], /) -> Callable[_Q, Response]:
            return _decorate(func, methods, self._get_policy, accept, self._policy)

        return decorator

    def protect_blueprint(
        self,
        blueprint: Blueprint,
        *,
        methods: Iterable[str] | None = None,
        accept: Iterable[str] | None = None,
    ) -> Blueprint:
        """Make every view of ``blueprint`` (and of blueprints nested in it) need a valid
        token, before the view runs; call it before the blueprint is registered. A CORS
        preflight goes on unjudged, with only status and headers coming back."""
        if blueprint._got_registered_once:  # Flask would raise a bare AssertionError
            raise ConfigurationError(
                f"protect_blueprint({blueprint.name!r})",
                "the blueprint is already registered, so its views would stay open; "
                "call protect_blueprint before app.register_blueprint",
            )
        names = accept_names(accept, self._policy)
        methods_filter = MethodFilter(methods)

        def guard() -> Response | None:
            if _preflight():
                _pass_preflight()
                return None
            if methods_filter.exempt(request.method):
                return None
            decision = _evaluate(self.policy, names)
            if not decision.allowed:
                return _refusal(decision)
            after_this_request(functools.partial(_apply, decision=decision))
            return None

        blueprint.before_request(guard)
        return blueprint

    def _before_request(self) -> Response | None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        _check_views(app)  # raises on each request while a route is open
        app.extensions[_CHECKED_KEY] = True  # Flask adds no route after the first request
        policy = self.policy
        environ = request.environ
        # Every spelling of the path the server and Werkzeug read: an unprotected request
        # (most of them) costs a few lookups and a pattern match, and no after-request hook.
        if passed(environ.get(SCOPE_KEY)) is None:
            try:
                protected = policy.protects(
                    request_method(environ), *request_paths(environ, *_routed_paths())
                )
            except DecodeError:
                return _refusal(policy.bad_path())
            if not protected:
                environ.setdefault(SCOPE_KEY, None)
                g.private_token = None
                return None
            if _preflight():
                _pass_preflight()
                return None
        decision = _evaluate(policy)
        if not decision.allowed:
            return _refusal(decision)
        after_this_request(functools.partial(_apply, decision=decision))
        return None


@overload
def private_token_required(
    view: Callable[_P, _ViewResult],
    *,
    methods: Iterable[str] | None = None,
    accept: Iterable[str] | None = None,
) -> Callable[_P, Response]: ...


@overload
def private_token_required(
    view: None = None, *, methods: Iterable[str] | None = None, accept: Iterable[str] | None = None
) -> ViewDecorator: ...


def private_token_required(
    view: Callable[_P, _ViewResult] | None = None,
    *,
    methods: Iterable[str] | None = None,
    accept: Iterable[str] | None = None,
) -> Callable[_P, Response] | ViewDecorator:
    """Decorate a view so it needs a valid token, using the current app's :class:`PrivateTokens`.

    Without the extension, the policy of an enclosing
    :class:`~pat_middleware.integrations.wsgi.PrivateTokenWSGIMiddleware` is used.
    """
    if view is not None:
        return _decorate(view, methods, _current_policy, accept)
    accept_names(accept)

    def decorator(func: Callable[_Q, _ViewResult], /) -> Callable[_Q, Response]:
        return _decorate(func, methods, _current_policy, accept)

    return decorator


__all__ = [
    "EXTENSION_KEY",
    "POLICY_KEY",
    "PrivateTokens",
    "ViewDecorator",
    "private_token_required",
    "settings_from_config",
]
