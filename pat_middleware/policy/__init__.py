"""The policy: request in, decision out, through trust signals and one store spend.

``decision`` (what goes in and out), ``policy`` (:class:`Policy`), ``strategies`` (one per
redemption-context mode), ``signals`` (trust signals), ``keys`` (the key snapshot),
``responses``, ``observe`` (logs and metrics), ``sessions`` (signed cookies), ``guard`` (one
process or several), ``contexts`` (windows and context derivation).
"""

from __future__ import annotations

from .decision import SCOPE_KEY, Decision, Outcome, RequestInfo, SetCookie, TokenInfo
from .observe import DecisionEvent, MetricsHook
from .policy import Policy
from .signals import Accepted, Refused, TrustSignal

__all__ = [
    "SCOPE_KEY",
    "Accepted",
    "Decision",
    "DecisionEvent",
    "MetricsHook",
    "Outcome",
    "Policy",
    "Refused",
    "RequestInfo",
    "SetCookie",
    "TokenInfo",
    "TrustSignal",
]
