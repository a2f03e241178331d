"""The strict reading JOSE asks for (RFC 7515 §2, §5.2): canonical unpadded base64url, and JSON
without duplicate member names, NaN or Infinity.

Shared by the redemption-record JWS and the JWK Sets that verify it. Every failure is a
:class:`~pat_middleware.errors.DecodeError`.
"""

from __future__ import annotations

import binascii
import json
import re
from typing import Any

from ..errors import DecodeError
from .codec import b64url_decode_strict, b64url_encode

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url(data: bytes) -> str:
    """Unpadded base64url text of ``data`` (RFC 7515 §2)."""
    return b64url_encode(data, padded=False)


def b64url_decode_canonical(part: str, what: str) -> bytes:
    """Strict unpadded base64url, canonical (re-encodes to the same text); ``what`` names the
    value in the error."""
    if not part or _B64URL.fullmatch(part) is None:
        raise DecodeError(f"{what} is not unpadded base64url")
    try:
        raw = b64url_decode_strict(part.encode("ascii"))
    except (binascii.Error, ValueError) as e:
        raise DecodeError(f"{what} is not unpadded base64url") from e
    if b64url(raw) != part:
        raise DecodeError(f"{what} is not canonical base64url")
    return raw


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DecodeError(f"duplicate member {key[:32]!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise DecodeError(f"{name} is not JSON")


def strict_json(data: bytes | str, what: str) -> Any:
    """JSON with duplicate names, NaN and Infinity refused (RFC 7515 §5.2 step 4)."""
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except DecodeError as e:
        raise DecodeError(f"{what}: {e}") from None
    except (ValueError, RecursionError) as e:  # JSONDecodeError, bad UTF-8, huge ints
        raise DecodeError(f"{what} is not JSON") from e


__all__ = ["b64url", "b64url_decode_canonical", "strict_json"]
