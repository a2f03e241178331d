"""The policy: request in, decision out, through trust signals and one store spend."""

from __future__ import annotations

from .policy import (
    SCOPE_KEY,
    Decision,
    Outcome,
    Policy,
    RequestInfo,
    TokenInfo,
)

__all__ = [
    "SCOPE_KEY",
    "Decision",
    "Outcome",
    "Policy",
    "RequestInfo",
    "TokenInfo",
]
