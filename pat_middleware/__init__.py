"""Private Access Tokens (Privacy Pass, RFC 9576/9577/9578) for Python web origins.

This module re-exports the sans-IO core. It imports no web framework and no Redis client;
adapters live in their own modules and import their framework when they are imported.
"""

from __future__ import annotations

from ._version import __version__
from .core.codec import b64_decode, b64url_encode
from .core.headers import (
    ChallengeParams,
    build_authorization,
    build_www_authenticate,
    parse_authorization,
    parse_www_authenticate,
)
from .core.verify import (
    KeyRing,
    TrustedKey,
    VerifiedToken,
    verify_authenticator,
    verify_token,
)
from .core.wire import (
    GREASE_TOKEN_TYPES,
    TOKEN_TYPE_BLIND_RSA,
    TOKEN_TYPE_VOPRF,
    Token,
    TokenChallenge,
)
from .errors import (
    ConfigurationError,
    DecodeError,
    IssuanceError,
    PrivateTokenError,
    Reason,
    TokenError,
)
from .tokens.blind_rsa import IssuerKey, encode_pss_spki

__all__ = [
    "GREASE_TOKEN_TYPES",
    "TOKEN_TYPE_BLIND_RSA",
    "TOKEN_TYPE_VOPRF",
    "ChallengeParams",
    "ConfigurationError",
    "DecodeError",
    "IssuanceError",
    "IssuerKey",
    "KeyRing",
    "PrivateTokenError",
    "Reason",
    "Token",
    "TokenChallenge",
    "TokenError",
    "TrustedKey",
    "VerifiedToken",
    "__version__",
    "b64_decode",
    "b64url_encode",
    "build_authorization",
    "build_www_authenticate",
    "encode_pss_spki",
    "parse_authorization",
    "parse_www_authenticate",
    "verify_authenticator",
    "verify_token",
]
