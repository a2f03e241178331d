"""The ``Sec-Redemption-Record`` request header: the records a browser forwards, by issuer.

Chromium sends it from a top-level page's ``send-redemption-record`` fetch (pst-notes §5)::

    Sec-Redemption-Record: "https://issuer.example";redemption-record="<RR>", ...

an RFC 8941 List of sf-strings, each an issuer origin with a ``redemption-record`` sf-string
parameter; empty when the browser holds no record. Parsing only: what a record says and
whether it verifies is :mod:`pat_middleware.core.redemption_record`'s business.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import http_sf

from ..errors import DecodeError
from .origin import normalize_origin

#: The request header Chromium forwards records in, and the parameter that carries one.
REDEMPTION_RECORD_HEADER = "Sec-Redemption-Record"
RECORD_PARAMETER = "redemption-record"
#: Bounds on what a peer may make us read. Chromium sends at most two issuers per top-level
#: site, but the header is the peer's to fill.
MAX_HEADER_LENGTH = 8192
MAX_HEADER_ENTRIES = 16


@dataclass(frozen=True, slots=True)
class RecordEntry:
    """One member of ``Sec-Redemption-Record``: an issuer origin and its record text."""

    issuer: str
    record: str = field(repr=False)


def parse_redemption_record_header(
    value: str | bytes, *, max_length: int = MAX_HEADER_LENGTH
) -> tuple[RecordEntry, ...]:
    """Parse ``Sec-Redemption-Record`` (an RFC 8941 List of sf-strings, each an issuer origin
    with a ``redemption-record`` sf-string parameter; pst-notes §5) with ``http-sf``.

    An empty value (Chromium's answer when it has no record) gives ``()``. Members that are
    not strings, lack the parameter, or name no valid origin, and values over ``max_length``
    characters, raise :class:`DecodeError`. Unknown parameters are ignored (RFC 8941 §2.2).
    """
    if isinstance(value, str):
        if not value.isascii():
            raise DecodeError("Sec-Redemption-Record is not ASCII")
        value = value.encode("ascii")
    if len(value) > max_length:
        raise DecodeError(f"Sec-Redemption-Record is longer than {max_length} characters")
    if not value.strip(b" \t"):
        return ()
    try:
        members = http_sf.parse(value, tltype="list")
    except (ValueError, TypeError, IndexError, RecursionError) as e:
        raise DecodeError(f"Sec-Redemption-Record is not a structured-field list: {e}") from None
    if not isinstance(members, list):  # pragma: no cover - tltype="list" returns a list
        raise DecodeError("Sec-Redemption-Record is not a list")
    if len(members) > MAX_HEADER_ENTRIES:
        raise DecodeError(f"Sec-Redemption-Record has more than {MAX_HEADER_ENTRIES} members")
    entries: list[RecordEntry] = []
    for member in members:
        if not isinstance(member, tuple) or len(member) != 2 or not isinstance(member[1], dict):
            raise DecodeError("each Sec-Redemption-Record member is an item")  # an inner list
        bare, params = member
        if not isinstance(bare, str) or isinstance(bare, http_sf.Token):
            raise DecodeError("each Sec-Redemption-Record member is an issuer origin string")
        record = params.get(RECORD_PARAMETER)
        if not isinstance(record, str) or isinstance(record, http_sf.Token):
            raise DecodeError("a member lacks its redemption-record string parameter")
        entries.append(RecordEntry(normalize_origin(bare), record))
    return tuple(entries)


__all__ = [
    "MAX_HEADER_ENTRIES",
    "MAX_HEADER_LENGTH",
    "RECORD_PARAMETER",
    "REDEMPTION_RECORD_HEADER",
    "RecordEntry",
    "parse_redemption_record_header",
]
