"""Web origins as records and JWK Sets name them: the ASCII serialization of an http(s) origin.

Pure text in, text out: no I/O, no DNS. Used by the redemption-record format (its ``iss`` and
``redeeming_origin``), the ``Sec-Redemption-Record`` header (issuer origins) and the settings
of trusted PST issuers.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from ..errors import DecodeError

MAX_ORIGIN_LENGTH = 512
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(text: str) -> str:
    """The ASCII serialization of an http(s) origin: ``scheme://host[:port]``, lower case,
    default port dropped, one trailing ``/`` tolerated. Anything else (a path, a query,
    credentials, another scheme) is a :class:`DecodeError`."""
    if not isinstance(text, str) or not 0 < len(text) <= MAX_ORIGIN_LENGTH or not text.isascii():
        raise DecodeError("an origin is a non-empty ASCII string")
    if any(c <= " " or c == "\x7f" for c in text):
        raise DecodeError("an origin has no spaces or control characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as e:
        raise DecodeError("not an origin") from e
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise DecodeError("an origin is http:// or https:// with a host")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise DecodeError("an origin has no path, query, fragment or credentials")
    if text.endswith(("?", "#")):
        raise DecodeError("an origin has no query or fragment")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def origin_set(origins: Iterable[str]) -> frozenset[str]:
    """``origins`` normalized; :class:`DecodeError` for the first that is not an origin."""
    return frozenset(normalize_origin(o) for o in origins)


__all__ = ["MAX_ORIGIN_LENGTH", "normalize_origin", "origin_set"]
