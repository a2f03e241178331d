"""Private Access Tokens (Privacy Pass, RFC 9576/9577/9578) and Private State Token
redemption records for Python web origins.

The curated public API: the policy and its decisions, settings, the sans-IO core (wire
formats, headers, verification), the token-type and store registries, and the errors. It
imports no web framework, server, store client or HTTP client: integrations live in
:mod:`pat_middleware.integrations` and import their framework when they are imported.
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
from .core.keys import PublishedKey, TokenKey
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
    ClientAuthError,
    ConfigurationError,
    DecodeError,
    DirectoryFetchError,
    IssuanceError,
    PeerError,
    PrivateTokenError,
    Reason,
    StoreUnavailable,
    TokenError,
    UsageError,
)
from .policy import (
    Decision,
    DecisionEvent,
    MetricsHook,
    Outcome,
    Policy,
    RequestInfo,
    SetCookie,
    TokenInfo,
    TrustSignal,
)
from .settings import Settings, load_settings
from .stores import ReplayStore, open_replay_store, register_store
from .tokens.blind_rsa import IssuerKey, encode_pss_spki
from .tokens.registry import get_token_type, register_token_type

__all__ = [
    "GREASE_TOKEN_TYPES",
    "TOKEN_TYPE_BLIND_RSA",
    "TOKEN_TYPE_VOPRF",
    "ChallengeParams",
    "ClientAuthError",
    "ConfigurationError",
    "Decision",
    "DecisionEvent",
    "DecodeError",
    "DirectoryFetchError",
    "IssuanceError",
    "IssuerKey",
    "KeyRing",
    "MetricsHook",
    "Outcome",
    "PeerError",
    "Policy",
    "PrivateTokenError",
    "PublishedKey",
    "Reason",
    "ReplayStore",
    "RequestInfo",
    "SetCookie",
    "Settings",
    "StoreUnavailable",
    "Token",
    "TokenChallenge",
    "TokenError",
    "TokenInfo",
    "TokenKey",
    "TrustSignal",
    "TrustedKey",
    "UsageError",
    "VerifiedToken",
    "__version__",
    "b64_decode",
    "b64url_encode",
    "build_authorization",
    "build_www_authenticate",
    "encode_pss_spki",
    "get_token_type",
    "load_settings",
    "open_replay_store",
    "parse_authorization",
    "parse_www_authenticate",
    "register_store",
    "register_token_type",
    "verify_authenticator",
    "verify_token",
]
