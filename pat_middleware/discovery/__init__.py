"""Issuer key discovery: documents fetched over HTTP and kept fresh, without I/O in the rules.

* :mod:`.fetch`: what a fetch is (request, response, fetcher, outcomes, hooks).
* :mod:`.resource`: the sans-IO HTTP half of every state machine (freshness, ETag, back-off,
  content type, grace for removed keys); :mod:`.source`: the refresh runner (one deadline
  per fetch, one fetch per document at a time, the unknown-key refresh).
* :mod:`.directory_state`: the state machine of one issuer directory (RFC 9578 §4);
  :mod:`.key_source`: every configured issuer's token keys.
* :mod:`.jwks_state`: the state machine of one PST issuer's record-key JWK Set;
  :mod:`.record_keys`: every trusted PST issuer's record keys, and the per-request snapshot.
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
from .jwks_state import JwksState
from .key_source import KeySelection, KeySource
from .record_keys import RecordKeys, RecordKeySource
from .source import RefreshingSource

__all__ = [
    "MAX_LISTED_KEYS",
    "DirectoryFetchError",
    "DirectoryRequest",
    "DirectoryResponse",
    "DirectoryState",
    "Fetcher",
    "IssuerKeys",
    "JwksState",
    "KeySelection",
    "KeySource",
    "ListedKey",
    "RecordKeySource",
    "RecordKeys",
    "Refresh",
    "RefreshHooks",
    "RefreshResult",
    "RefreshingSource",
]
