"""Django REST framework: an authentication class and a permission class.

::

    MIDDLEWARE = [..., "pat_middleware.integrations.django.PrivateTokenMiddleware"]
    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "pat_middleware.integrations.drf.PrivateTokenAuthentication",  # first
            "rest_framework.authentication.SessionAuthentication",
        ],
    }

    class CommentView(APIView):
        permission_classes = [HasPrivateToken]

:class:`HasPrivateToken` is the gate: a request without a pass gets the policy's refusal
(401 with ``WWW-Authenticate: PrivateToken challenge=...``, or its 4xx/503), whatever the
authentication classes are. :class:`PrivateTokenAuthentication` judges a request that
carries a signal (a refused token is refused there) and answers DRF's question for the
``WWW-Authenticate`` of a 401 with the challenge. DRF asks only the *first* authentication
class for that header and turns the 401 into a 403 without a challenge when it has none,
so list it first (``manage.py check`` warns with ``pat_middleware.W004`` otherwise).

It never claims a user: a token says a trusted issuer vouched for the client, not who it
is, so the classes after it still identify a logged-in user. The pass is
``request.private_token`` (a :class:`~pat_middleware.policy.TokenInfo`); ``request.user``
and ``request.auth`` are what the other classes make of the request.

The policy is the Django integration's (``PAT_MIDDLEWARE``), and
:class:`~pat_middleware.integrations.django.PrivateTokenMiddleware` must be installed: DRF
gives authentication and permission classes no response, so the middleware writes the
decision's cookies (a pass's, or the session cookie a challenge is bound to) and
``Cache-Control`` on DRF's response (``pat_middleware.E005`` when it is missing).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.http import HttpRequest
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import APIException, AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from ..core.headers import WWW_AUTHENTICATE
from ..errors import ConfigurationError, PrivateTokenError
from ..policy import Decision, Outcome
from ._common import accept_names, carries_signal
from .django.middleware import (
    check_request,
    defer_decision,
    get_policy,
    passed_token,
    preflight,
    request_info,
)

#: Where the authentication class keeps a challenge for :meth:`authenticate_header`.
_CHALLENGE_ATTR = "_pat_middleware_challenge"
_RETRY_AFTER = "retry-after"


def _django(request: Request | HttpRequest) -> HttpRequest:
    inner = getattr(request, "_request", request)
    if not isinstance(inner, HttpRequest):
        raise TypeError("expected a Django or DRF request")
    return inner


def _hand_over(request: HttpRequest, decision: Decision) -> None:
    """Give the decision's cookies and headers to the middleware, which has the response."""
    if not defer_decision(request, decision):
        raise ConfigurationError(
            "MIDDLEWARE",
            "the Django REST framework classes need "
            "pat_middleware.integrations.django.PrivateTokenMiddleware in MIDDLEWARE: it "
            "writes the decision's cookies on DRF's response",
        )


def _challenge_header(decision: Decision) -> str | None:
    for name, value in decision.headers:
        if name == WWW_AUTHENTICATE:
            return value
    return None


class PrivateTokenRequired(APIException, PrivateTokenError):
    """The policy's refusal in DRF: its status, ``WWW-Authenticate`` (DRF's exception
    handler sends ``auth_header``) and ``Retry-After`` (``wait``); the middleware adds the
    cookies and ``Cache-Control: no-store``."""

    default_detail = "A Private Access Token is required."
    default_code = "private_token_required"

    def __init__(self, decision: Decision) -> None:
        super().__init__()
        self.decision = decision
        self.status_code = decision.status
        self.auth_header = _challenge_header(decision)
        retry = next((v for k, v in decision.headers if k.lower() == _RETRY_AFTER), None)
        self.wait = int(retry) if retry is not None and retry.isdigit() else None


class PrivateTokenFailed(AuthenticationFailed, PrivateTokenError):
    """A token (or another signal) was present and refused with a 401; DRF asks the first
    authentication class for the challenge to send with it."""

    default_detail = "The Private Access Token was refused."
    default_code = "private_token_refused"

    def __init__(self, decision: Decision) -> None:
        super().__init__()
        self.decision = decision


def _check_accept(cls: type[Any]) -> None:
    """A subclass's own ``accept``, checked when the class is made (as ``accepting`` does):
    a misspelt signal name would otherwise accept nothing, and refuse every request."""
    if "accept" in cls.__dict__ and cls.__dict__["accept"] is not None:
        cls.accept = accept_names(cls.__dict__["accept"])


class PrivateTokenAuthentication(BaseAuthentication):
    """Judges requests carrying a trust signal; answers DRF's ``WWW-Authenticate`` question
    with the challenge. Returns None (no user) on a pass: see the module's documentation.
    ``accept``: the names of the signals it accepts (None: all); set it on a subclass."""

    accept: ClassVar[frozenset[str] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_accept(cls)

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        django_request = _django(request)
        if preflight(django_request) or passed_token(django_request) is not None:
            return None
        policy = get_policy()
        if not carries_signal(request_info(django_request), policy):
            return None
        decision = check_request(django_request, policy, self.accept)
        if decision.allowed or decision.outcome is Outcome.CHALLENGE:
            if decision.outcome is Outcome.CHALLENGE:  # nothing usable: the view decides
                setattr(django_request, _CHALLENGE_ATTR, decision)
            else:
                _hand_over(django_request, decision)
            return None
        _hand_over(django_request, decision)
        if decision.status == 401:
            setattr(django_request, _CHALLENGE_ATTR, decision)
            raise PrivateTokenFailed(decision)
        raise PrivateTokenRequired(decision)

    def authenticate_header(self, request: Request) -> str | None:
        """The challenge for DRF's 401 (a fresh one, its session cookie handed over)."""
        django_request = _django(request)
        decision = getattr(django_request, _CHALLENGE_ATTR, None)
        if not isinstance(decision, Decision):
            decision = check_request(django_request, get_policy(), self.accept)
            if decision.allowed:
                return None  # it passed after all: the 401 is about something else
            _hand_over(django_request, decision)
        else:
            _hand_over(django_request, decision)  # (the first hand-over wins)
        return _challenge_header(decision)


class HasPrivateToken(BasePermission):
    """Allows a request with a pass (a token, or another signal in ``accept``), and answers
    any other with the policy's refusal, whatever the authentication classes: a 401 with the
    challenge, never DRF's 403 for an authenticated user. A CORS preflight is allowed (DRF
    answers OPTIONS with its metadata, not the view). ``HasPrivateToken.accepting("...")``
    makes a class for some signals only."""

    accept: ClassVar[frozenset[str] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_accept(cls)

    @classmethod
    def accepting(cls, *names: str) -> type[HasPrivateToken]:
        """A permission class accepting only these trust signals (checked at import)."""
        chosen = accept_names(names)
        return type(f"HasPrivateToken[{','.join(sorted(names))}]", (cls,), {"accept": chosen})

    def has_permission(self, request: Request, view: Any) -> bool:
        django_request = _django(request)
        if preflight(django_request):
            return True
        decision = check_request(django_request, get_policy(), self.accept)
        _hand_over(django_request, decision)
        if decision.allowed:
            return True
        raise PrivateTokenRequired(decision)


__all__ = [
    "HasPrivateToken",
    "PrivateTokenAuthentication",
    "PrivateTokenFailed",
    "PrivateTokenRequired",
]
