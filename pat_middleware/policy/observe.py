"""A metrics hook: the policy reports every decision to it, once. Sans-IO, no dependencies.

Pass any object with a ``record(event)`` method as ``Policy(settings, metrics=...)`` (or the
``metrics=`` option of an adapter). :mod:`pat_middleware.integrations.prometheus` is a ready one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..errors import Reason

#: The outcomes a decision is reported with, in logs and metrics.
CHALLENGE = "challenge"  # no token: 401 with challenges
PASS = "pass"  # noqa: S105 - a valid token was accepted (not a password)
SESSION = "session"  # no token, passed on a verified session
REJECT = "reject"  # a token (or the Host) was refused; ``reason`` says why
UNAVAILABLE = "unavailable"  # the replay store could not answer, or no issuer key yet
OUTCOMES = (CHALLENGE, PASS, SESSION, REJECT, UNAVAILABLE)


@dataclass(frozen=True, slots=True)
class DecisionEvent:
    """One decision, as reported to a :class:`MetricsHook`.

    Nothing in it identifies a user: no path, address, cookie, session id, nonce or token.
    """

    outcome: str  #: one of :data:`OUTCOMES`
    reason: Reason | None  #: why a token was refused (``reject`` only)
    issuer: str | None  #: the configured issuer whose key the token named, if trusted
    key_id: str | None  #: that key's ``token_key_id`` in hex
    status: int  #: the HTTP status the decision answers with (200 for a pass)
    seconds: float  #: time spent in the policy for this request (``time.perf_counter``)


@runtime_checkable
class MetricsHook(Protocol):
    """Receives one :class:`DecisionEvent` per decision, on the request's thread or task.

    Keep it quick and non-blocking. An exception it raises is logged once and otherwise
    ignored: metrics never break a request.
    """

    def record(self, event: DecisionEvent) -> None: ...


__all__ = [
    "CHALLENGE",
    "OUTCOMES",
    "PASS",
    "REJECT",
    "SESSION",
    "UNAVAILABLE",
    "DecisionEvent",
    "MetricsHook",
]
