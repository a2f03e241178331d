"""A small Privacy Pass issuer and client (token types 2, Blind RSA, and 1, VOPRF P-384),
for tests, demos, tooling and small joint deployments.

Everything re-exported here is sans-IO and framework-free. The HTTP pieces are imported
explicitly: :func:`pat_middleware.issuer.server.create_issuer_app` (Starlette) and
:func:`pat_middleware.issuer.client.fetch_token` (httpx).

Python big-int arithmetic is not constant-time (type-1 secrets stay in OpenSSL); this issuer
is not a hardened production issuer.
"""

from __future__ import annotations

from ..tokens import rsabssa as blindrsa
from ..tokens.rsabssa import BlindRSAPrivateKey, BlindRSAPublicKey
from .protocol import (
    DEFAULT_REQUEST_PATH,
    DIRECTORY_PATH,
    ISSUER_DIRECTORY_MEDIA_TYPE,
    LEGACY_DIRECTORY_PATH,
    TOKEN_REQUEST_MEDIA_TYPE,
    TOKEN_RESPONSE_MEDIA_TYPE,
    ClientState,
    DirectoryKey,
    IssuanceState,
    Issuer,
    IssuerDirectory,
    SigningKey,
    TokenRequest,
    TokenResponse,
    begin_issuance,
    can_issue,
    finalize_issuance,
    issue_token_locally,
    parse_directory,
    start_issuance,
)
from .voprf import (
    VOPRFIssuanceState,
    VOPRFIssuingKey,
    VOPRFTokenRequest,
    VOPRFTokenResponse,
    begin_voprf_issuance,
)

__all__ = [
    "DEFAULT_REQUEST_PATH",
    "DIRECTORY_PATH",
    "ISSUER_DIRECTORY_MEDIA_TYPE",
    "LEGACY_DIRECTORY_PATH",
    "TOKEN_REQUEST_MEDIA_TYPE",
    "TOKEN_RESPONSE_MEDIA_TYPE",
    "BlindRSAPrivateKey",
    "BlindRSAPublicKey",
    "ClientState",
    "DirectoryKey",
    "IssuanceState",
    "Issuer",
    "IssuerDirectory",
    "SigningKey",
    "TokenRequest",
    "TokenResponse",
    "VOPRFIssuanceState",
    "VOPRFIssuingKey",
    "VOPRFTokenRequest",
    "VOPRFTokenResponse",
    "begin_issuance",
    "begin_voprf_issuance",
    "blindrsa",
    "can_issue",
    "finalize_issuance",
    "issue_token_locally",
    "parse_directory",
    "start_issuance",
]
