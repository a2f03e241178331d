"""A small type-2 (Blind RSA) Privacy Pass issuer and client, for tests, demos and tooling.

Everything re-exported here is sans-IO and framework-free. The HTTP pieces are imported
explicitly: :func:`pat_middleware.issuer.server.create_issuer_app` (Starlette) and
:func:`pat_middleware.issuer.client.fetch_token` (httpx).

Python big-int arithmetic is not constant-time; this issuer is not a hardened production
issuer.
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
    DirectoryKey,
    IssuanceState,
    Issuer,
    IssuerDirectory,
    SigningKey,
    TokenRequest,
    TokenResponse,
    begin_issuance,
    finalize_issuance,
    issue_token_locally,
    parse_directory,
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
    "DirectoryKey",
    "IssuanceState",
    "Issuer",
    "IssuerDirectory",
    "SigningKey",
    "TokenRequest",
    "TokenResponse",
    "begin_issuance",
    "blindrsa",
    "finalize_issuance",
    "issue_token_locally",
    "parse_directory",
]
