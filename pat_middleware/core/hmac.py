"""HMAC-SHA256 under one fixed key, with the key's pads hashed once (RFC 2104).

``hmac.digest`` starts from the raw key on every call (on OpenSSL 3 about 2.2 us for a
short message); keeping the SHA-256 states after the inner and outer pads and copying them
costs about 0.8 us. The request path computes three or four of these per redemption. The
output is exactly ``hmac.digest(key, message, "sha256")`` (tested).
"""

from __future__ import annotations

import hashlib

_BLOCK = 64  # SHA-256's block size
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


class HmacSha256:
    """``digest(message)`` is HMAC-SHA256(key, message) for the key given once."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def __repr__(self) -> str:
        return "HmacSha256(<key hidden>)"

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()
