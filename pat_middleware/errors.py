"""Every exception pat-middleware raises, in one place.

``PrivateTokenError`` is the base. Three branches sit under it:

* ``ConfigurationError``: the operator's settings or keys are wrong. Raised at start-up and
  names the setting.
* ``DecodeError`` and ``TokenError``: the peer sent something we refuse. ``TokenError``
  carries a :class:`Reason` from a closed set, which is what gets logged and counted.
* ``IssuanceError``: the issuer side refused a token request (maps to a 4xx).
"""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    """Why a token was refused. A closed set: log lines and metrics use these values."""

    MALFORMED = "malformed"
    UNSUPPORTED_TYPE = "unsupported_type"
    UNKNOWN_KEY = "unknown_key"
    WRONG_LENGTH = "wrong_length"
    CHALLENGE_MISMATCH = "challenge_mismatch"
    EXPIRED = "expired"
    BAD_SIGNATURE = "bad_signature"
    REPLAYED = "replayed"
    #: A Private State Token redemption record from an issuer the origin does not trust.
    UNTRUSTED_ISSUER = "untrusted_issuer"
    #: A redemption record made for another (top-level) origin than the accepted ones.
    WRONG_ORIGIN = "wrong_origin"


class PrivateTokenError(Exception):
    """Base class of every error raised by pat-middleware."""


class ConfigurationError(PrivateTokenError):
    """A setting or key supplied by the operator is invalid.

    ``setting`` names the offending setting so the message can point at it.
    """

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        self.message = message
        super().__init__(f"{setting}: {message}")


class DecodeError(PrivateTokenError, ValueError):
    """Bytes or text from a peer do not follow the wire format."""


class TokenError(PrivateTokenError):
    """A token was refused. ``reason`` says why; the message never contains token bytes."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)


class IssuanceError(PrivateTokenError):
    """The issuer refused a token request. ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        self.status = status
        super().__init__(message)


__all__ = [
    "ConfigurationError",
    "DecodeError",
    "IssuanceError",
    "PrivateTokenError",
    "Reason",
    "TokenError",
]
