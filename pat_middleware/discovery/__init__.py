"""Issuer key discovery: the sans-IO directory state machine, the key source, the refresher."""

from __future__ import annotations

from .state import (
    MAX_LISTED_KEYS,
    DirectoryFetchError,
    DirectoryRequest,
    DirectoryResponse,
    DirectoryState,
    Fetcher,
    IssuerKeys,
    KeySelection,
    KeySource,
    ListedKey,
    Refresh,
    RefreshHooks,
    RefreshResult,
)

__all__ = [
    "MAX_LISTED_KEYS",
    "DirectoryFetchError",
    "DirectoryRequest",
    "DirectoryResponse",
    "DirectoryState",
    "Fetcher",
    "IssuerKeys",
    "KeySelection",
    "KeySource",
    "ListedKey",
    "Refresh",
    "RefreshHooks",
    "RefreshResult",
]
