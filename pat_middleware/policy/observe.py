"""Observation: every decision on a protected request makes one log record and one metrics
event, in one vocabulary (:class:`~pat_middleware.policy.decision.Outcome`).

Pass any object with a ``record(event)`` method as ``Policy(settings, metrics=...)`` (or the
``metrics=`` option of an adapter). :mod:`pat_middleware.integrations.prometheus` is a ready
one. Nothing that identifies a user (path, address, cookie, session id, nonce, token) goes
into either.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..errors import Reason
from .decision import Outcome

logger = logging.getLogger("pat_middleware")
#: One record per decision (see docs/logging-and-metrics.md); a child of "pat_middleware".
decision_logger = logging.getLogger("pat_middleware.decision")

#: The outcomes a decision on a protected request is reported with (``skip`` never is).
CHALLENGE = Outcome.CHALLENGE
PASS = Outcome.PASS
SESSION = Outcome.SESSION
REJECT = Outcome.REJECT
UNAVAILABLE = Outcome.UNAVAILABLE
OUTCOMES = (CHALLENGE, PASS, SESSION, REJECT, UNAVAILABLE)
_LEVELS = {
    CHALLENGE: logging.DEBUG,
    PASS: logging.DEBUG,
    SESSION: logging.DEBUG,
    REJECT: logging.INFO,
    UNAVAILABLE: logging.WARNING,
}


@dataclass(frozen=True, slots=True)
class DecisionEvent:
    """One decision, as reported to a :class:`MetricsHook`.

    Nothing in it identifies a user: no path, address, cookie, session id, nonce or token.
    """

    outcome: Outcome  #: one of :data:`OUTCOMES` (a ``str`` too: ``"pass"``...)
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


class Observer:
    """Reports decisions: the log record and the metrics event, from one call."""

    __slots__ = ("_failed", "metrics")

    def __init__(self, metrics: MetricsHook | None) -> None:
        self.metrics = metrics
        self._failed = False

    def started(self) -> float:
        """The start of a decision, for its latency (0 when no hook wants it)."""
        return time.perf_counter() if self.metrics is not None else 0.0

    def report(
        self,
        outcome: Outcome,
        status: int,
        *,
        started: float = 0.0,
        reason: Reason | None = None,
        detail: str = "",
        issuer: str | None = None,
        key_id: bytes | None = None,
    ) -> None:
        """One decision: one metrics event (when a hook is set) and one log record (when
        its level is on: otherwise one level check)."""
        hook = self.metrics
        if hook is not None:
            event = DecisionEvent(
                outcome,
                reason,
                issuer,
                key_id.hex() if key_id is not None else None,
                status,
                time.perf_counter() - started if started else 0.0,
            )
            try:
                hook.record(event)
            except Exception:
                if not self._failed:  # once: a broken hook must not flood the log
                    self._failed = True
                    logger.error(
                        "metrics hook %r raised; requests go on, its errors are not logged again",
                        type(hook).__name__,
                        exc_info=True,
                    )
        level = _LEVELS[outcome]
        if not decision_logger.isEnabledFor(level):
            return
        key_hex = key_id.hex() if key_id is not None else None
        parts = [outcome.value]
        if reason is not None:
            parts.append(f"reason={reason.value}")
        parts.append(f"status={status}")
        if issuer is not None:
            parts.append(f"issuer={issuer} key_id={key_hex}")
        message = " ".join(parts) + (f": {detail}" if detail else "")
        decision_logger.log(
            level,
            message,
            extra={
                "pat_outcome": outcome.value,
                "pat_reason": reason.value if reason is not None else None,
                "pat_status": status,
                "pat_issuer": issuer,
                "pat_key_id": key_hex,
                "pat_detail": detail or None,
            },
        )


__all__ = [
    "CHALLENGE",
    "OUTCOMES",
    "PASS",
    "REJECT",
    "SESSION",
    "UNAVAILABLE",
    "DecisionEvent",
    "MetricsHook",
    "Observer",
]
