"""Base64 as Privacy Pass peers actually send it.

Out: base64url (RFC 4648 §5) with ``=`` padding, as RFC 9577 asks. In: base64url or standard
base64, padded or not; anything else (stray characters, impossible lengths, non-zero pad bits
are tolerated as the stdlib does) is a :class:`DecodeError`.
"""

from __future__ import annotations

import binascii
import re

from ..errors import DecodeError

_TO_URLSAFE = str.maketrans("+/", "-_")
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_STANDARD_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
#: The base64url alphabet, compiled: one C-level scan instead of a set test per character.
_URLSAFE_BODY = re.compile(r"[A-Za-z0-9_-]+")


def b64url_encode(data: bytes, *, padded: bool = True) -> str:
    """base64url text of ``data``, padded by default."""
    text = binascii.b2a_base64(data, newline=False).translate(_STANDARD_TO_URLSAFE).decode()
    return text if padded else text.rstrip("=")


def b64url_bytes(data: bytes) -> bytes:
    """Unpadded base64url as bytes (itsdangerous's ``base64_encode``), for signed cookies."""
    return binascii.b2a_base64(data, newline=False).translate(_STANDARD_TO_URLSAFE).rstrip(b"=")


def b64url_decode_strict(text: bytes) -> bytes:
    """Unpadded base64url bytes back, strictly (alphabet and length); raises
    :class:`binascii.Error`, a ``ValueError``. For values this library wrote itself."""
    padded = text.translate(_URLSAFE_TO_STANDARD) + b"=" * (-len(text) % 4)
    return binascii.a2b_base64(padded, strict_mode=True)


def b64_decode(text: str | bytes, *, max_length: int | None = None) -> bytes:
    """Decode base64url or standard base64, with or without padding.

    ``max_length`` bounds the input text (in characters) before any work is done.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError as e:
            raise DecodeError("base64 value is not ASCII") from e
    if max_length is not None and len(text) > max_length:
        raise DecodeError(f"base64 value is longer than {max_length} characters")
    body = text.strip().rstrip("=")
    if "+" in body or "/" in body:
        body = body.translate(_TO_URLSAFE)
    if not body:
        raise DecodeError("base64 value is empty")
    if _URLSAFE_BODY.fullmatch(body) is None:
        raise DecodeError("base64 value has characters outside the alphabet")
    return decode_checked_body(body)


def decode_checked_body(body: str) -> bytes:
    """Decode a non-empty base64 body without ``=``, its characters already checked to be in
    either alphabet (the last step of :func:`b64_decode`, for callers that checked first)."""
    if len(body) % 4 == 1:
        raise DecodeError("base64 value has an impossible length")
    raw = body.encode("ascii").translate(_URLSAFE_TO_STANDARD) + b"=" * (-len(body) % 4)
    try:
        return binascii.a2b_base64(raw)
    except (binascii.Error, ValueError) as e:  # pragma: no cover - alphabet checked before
        raise DecodeError("base64 value does not decode") from e


__all__ = ["b64_decode", "b64url_bytes", "b64url_decode_strict", "b64url_encode"]
