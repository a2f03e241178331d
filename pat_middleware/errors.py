"""Every exception pat-middleware raises, in one place, under one base.

``PrivateTokenError`` is the base. Like h11, "you misused it" stays apart from "the peer
sent garbage":

* ``ConfigurationError``: the operator's settings or keys are wrong. Raised at start-up and
  names the setting. ``UsageError``: bad command-line input (exit 2).
* ``PeerError``: the peer (a client, an issuer) sent something we refuse. ``DecodeError``
  (bytes or text that do not follow the wire format), ``TokenError`` (a token refused, with
  a :class:`Reason` from a closed set: what gets logged and counted), ``IssuanceError``
  (the issuer side refused a token request: a 4xx).
* What the outside world did: ``StoreUnavailable`` (the replay store could not answer:
  callers fail closed), ``DirectoryFetchError`` (a key document could not be fetched),
  ``ClientAuthError`` (a client could not answer a challenge).

The framework integrations raise their framework's HTTP exceptions so the framework renders
them; those classes also derive from :class:`PrivateTokenError`.
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


class UsageError(PrivateTokenError):
    """Bad command-line input: the command exits with status 2."""


class PeerError(PrivateTokenError):
    """The peer (a client or an issuer) sent something we refuse: answered with a 4xx and
    one log line, never a 5xx."""


class DecodeError(PeerError, ValueError):
    """Bytes or text from a peer do not follow the wire format."""


class TokenError(PeerError):
    """A token was refused. ``reason`` says why; the message never contains token bytes."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)


class IssuanceError(PeerError):
    """The issuer refused a token request. ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        self.status = status
        super().__init__(message)


class StoreUnavailable(PrivateTokenError):
    """The replay store could not record or check a key (down, slow, or full). Fail closed:
    the request gets ``store_unavailable_status`` with ``Retry-After``."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class DirectoryFetchError(PrivateTokenError):
    """A directory (or any document discovery fetches, such as a JWK Set) could not be
    fetched: a transport failure, or a body refused while reading. The message is one line."""


class ClientAuthError(PrivateTokenError):
    """A client could not answer a ``PrivateToken`` challenge: none names its issuer (or a
    type it can obtain), the issuer could not be reached or refused, or the challenge's
    max-age ran out first. ``status`` and ``url`` are those of the challenged response."""

    def __init__(self, message: str, *, status: int | None = None, url: str | None = None) -> None:
        self.message = message
        self.status = status
        self.url = url
        super().__init__(f"{message} (answering {status} from {url})" if url else message)


__all__ = [
    "ClientAuthError",
    "ConfigurationError",
    "DecodeError",
    "DirectoryFetchError",
    "IssuanceError",
    "PeerError",
    "PrivateTokenError",
    "Reason",
    "StoreUnavailable",
    "TokenError",
    "UsageError",
]
