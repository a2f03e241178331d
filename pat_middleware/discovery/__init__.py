"""Issuer key discovery: documents fetched over HTTP and kept fresh, without I/O in the rules.

* :mod:`.fetch`: what a fetch is (request, response, fetcher, outcomes, hooks).
* :mod:`.resource`: the sans-IO HTTP half of every state machine (freshness, ETag, back-off,
  content type, grace for removed keys); :mod:`.source`: the refresh runner (one deadline
  per fetch, one fetch per document at a time, the unknown-key refresh).
* :mod:`.directory_state`: the state machine of one issuer directory (RFC 9578 §4);
  :mod:`.key_source`: every configured issuer's token keys.
* :mod:`.refresher`: the httpx fetcher and the background thread (imports httpx).
"""

from __future__ import annotations

from .directory_state import MAX_LISTED_KEYS, DirectoryState, IssuerKeys, ListedKey
from .fetch import (
    DirectoryFetchError,
    DirectoryRequest,
    DirectoryResponse,
    Fetcher,
    Refresh,
    RefreshHooks,
    RefreshResult,
)
from .key_source import KeySelection, KeySource
from .source import RefreshingSource

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
    "RefreshingSource",
]
