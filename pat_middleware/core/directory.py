"""The issuer directory (RFC 9578 §4): one document format, read by origins and clients and
written by issuers. Sans-IO: bytes in, values out.

Reading is lenient as the RFC asks: unknown fields and malformed entries are skipped, base64
may be padded or not, ``not-before`` may be seconds or milliseconds. Entries of every token
type are kept: which types a reader can use is the token registry's business
(:mod:`pat_middleware.tokens.registry`), not the document format's.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import DecodeError
from .codec import b64_decode, b64url_encode
from .wire import TOKEN_TYPE_BLIND_RSA

ISSUER_DIRECTORY_MEDIA_TYPE = "application/private-token-issuer-directory"
#: Where the directory lives (RFC 9578 §4), and the pre-RFC path some issuers still use.
DIRECTORY_PATH = "/.well-known/private-token-issuer-directory"
LEGACY_DIRECTORY_PATH = "/.well-known/token-issuer-directory"
#: Bound on a directory document; real ones are a few hundred bytes per key.
MAX_DIRECTORY_SIZE = 64 * 1024
#: ``not-before`` values above this are read as milliseconds (10**11 s is the year 5138).
NOT_BEFORE_MILLISECONDS_THRESHOLD = 10**11
_MAX_TOKEN_KEY_TEXT = 2048  # base64 of a 4096-bit PSS SPKI is 800 characters
_MAX_REQUEST_URI_LENGTH = 2048
_MAX_TOKEN_TYPE = 0xFFFF


@dataclass(frozen=True, slots=True)
class DirectoryKey:
    """One ``token-keys`` entry. ``token_key`` holds the decoded bytes as published."""

    token_type: int
    token_key: bytes = field(repr=False)
    #: Unix time in seconds from which clients may use the key; ``None`` means now.
    not_before: int | None = None

    @property
    def token_key_id(self) -> bytes:
        """SHA-256 of the published key bytes (RFC 9578 §5.5, §6.5)."""
        return hashlib.sha256(self.token_key).digest()

    def is_current(self, now: float) -> bool:
        return self.not_before is None or self.not_before <= now

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "token-type": self.token_type,
            "token-key": b64url_encode(self.token_key),
        }
        if self.not_before is not None:
            entry["not-before"] = self.not_before
        return entry


@dataclass(frozen=True, slots=True)
class IssuerDirectory:
    """An issuer directory (RFC 9578 §4). Keys earlier in ``token_keys`` are preferred."""

    issuer_request_uri: str
    token_keys: tuple[DirectoryKey, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "issuer-request-uri": self.issuer_request_uri,
            "token-keys": [key.to_json() for key in self.token_keys],
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode("ascii")

    @classmethod
    def from_bytes(cls, data: bytes | str) -> IssuerDirectory:
        """Parse a directory document. See :meth:`from_json` for what is tolerated."""
        if len(data) > MAX_DIRECTORY_SIZE:
            raise DecodeError(f"issuer directory is longer than {MAX_DIRECTORY_SIZE} bytes")
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError) as e:
            raise DecodeError("issuer directory is not valid JSON") from e
        return cls.from_json(obj)

    @classmethod
    def from_json(cls, obj: object) -> IssuerDirectory:
        """Read a decoded directory leniently.

        Unknown fields are ignored. ``token-keys`` entries are skipped when they are
        malformed (a token type that is not a u16 included); entries of any token type are
        kept, for the reader to pick; unpadded and standard base64 are accepted;
        ``not-before`` values above 10**11 are taken as milliseconds. Only a missing or
        malformed ``issuer-request-uri`` or ``token-keys`` is an error.
        """
        if not isinstance(obj, dict):
            raise DecodeError("issuer directory is not a JSON object")
        uri = obj.get("issuer-request-uri")
        if not isinstance(uri, str) or not is_uri_text(uri):
            raise DecodeError("issuer-request-uri is missing or not a URI string")
        entries = obj.get("token-keys")
        if not isinstance(entries, list):
            raise DecodeError("token-keys is missing or not a list")
        keys = tuple(key for key in map(_parse_directory_key, entries) if key is not None)
        return cls(uri, keys)

    def current_keys(
        self, token_type: int = TOKEN_TYPE_BLIND_RSA, *, now: float | None = None
    ) -> tuple[DirectoryKey, ...]:
        """Keys of ``token_type`` whose not-before has passed, most preferred first."""
        moment = time.time() if now is None else now
        return tuple(
            key
            for key in self.token_keys
            if key.token_type == token_type and key.is_current(moment)
        )

    def find(self, token_key_id: bytes) -> DirectoryKey | None:
        """The entry whose key hashes to ``token_key_id``, if any."""
        for key in self.token_keys:
            if key.token_key_id == token_key_id:
                return key
        return None


def parse_directory(data: bytes | str) -> IssuerDirectory:
    """Parse an issuer directory document leniently (see :meth:`IssuerDirectory.from_json`)."""
    return IssuerDirectory.from_bytes(data)


def is_uri_text(text: str) -> bool:
    # Printable ASCII without spaces: a URI reference, percent-encoded (RFC 3986).
    return 0 < len(text) <= _MAX_REQUEST_URI_LENGTH and all("!" <= c <= "~" for c in text)


def _parse_directory_key(entry: object) -> DirectoryKey | None:
    if not isinstance(entry, dict):
        return None
    token_type = entry.get("token-type")
    if type(token_type) is not int or not 0 <= token_type <= _MAX_TOKEN_TYPE:
        return None
    text = entry.get("token-key")
    if not isinstance(text, str):
        return None
    try:
        token_key = b64_decode(text, max_length=_MAX_TOKEN_KEY_TEXT)
    except DecodeError:
        return None
    raw = entry.get("not-before")
    not_before: int | None
    if raw is None:
        not_before = None
    elif type(raw) is int or (type(raw) is float and math.isfinite(raw)):
        not_before = int(raw)
        if not_before < 0:
            return None
        if not_before > NOT_BEFORE_MILLISECONDS_THRESHOLD:
            not_before //= 1000
    else:
        return None
    return DirectoryKey(token_type, token_key, not_before)


__all__ = [
    "DIRECTORY_PATH",
    "ISSUER_DIRECTORY_MEDIA_TYPE",
    "LEGACY_DIRECTORY_PATH",
    "MAX_DIRECTORY_SIZE",
    "NOT_BEFORE_MILLISECONDS_THRESHOLD",
    "DirectoryKey",
    "IssuerDirectory",
    "is_uri_text",
    "parse_directory",
]
