"""Private State Token redemption records (RRs): our format, and the origin's side.

An issuer's redemption endpoint answers a redeemed token with a *redemption record*; Chromium
stores it verbatim and later forwards it to any origin a top-level page asks it to, in the
``Sec-Redemption-Record`` request header (an RFC 8941 List, pst-notes §5)::

    Sec-Redemption-Record: "https://issuer.example";redemption-record="<RR>", ...

The spec leaves the RR's format to the issuer. Ours is a compact JWS (RFC 7515 §7.1) signed
with Ed25519 (RFC 8037, ``alg: EdDSA``), so any origin in any language can verify it with the
issuer's JWK Set. Header: ``{"alg": "EdDSA", "kid": <RFC 7638 thumbprint>, "typ":
"pst-rr+jwt"}``. Claims (all required; numbers are whole seconds since the epoch)::

    iss               the issuer origin, e.g. "https://issuer.example"
    redeeming_origin  the top-level origin the browser redeemed for (the binding)
    key_id            the PST key id the token was issued under (uint32): the trust label
    iat, exp          issued at, expires at (exp - iat is the lifetime the browser was told)
    jti               a random record id (base64url, 16 bytes), for consumers who count uses

An RR is a bearer record that the browser re-sends for its lifetime, so a consumer checks, in
this order: the header entry's issuer is trusted (``untrusted_issuer``), the JWS is well formed
(``malformed``), its ``kid`` is in that issuer's JWK Set (``unknown_key``), the signature
(``bad_signature``), ``iss`` equals the entry's issuer (``untrusted_issuer``), ``iat``/``exp``
with a small leeway (``expired``: outside the validity window, either side),
``redeeming_origin`` is one of the origins it accepts (``wrong_origin``), and, when the consumer
accepts only some trust labels from that issuer, ``key_id`` is one of them
(``untrusted_issuer``). The same RR is accepted again while it lives; ``jti`` lets a consumer
rate-limit one record.

Every failure is a :class:`~pat_middleware.errors.TokenError` (with a :class:`Reason`) or a
:class:`~pat_middleware.errors.DecodeError`; nothing else escapes. No I/O happens here:
fetching a JWK Set is the caller's business.

The pieces live in their own modules and are re-exported here, so this module stays the one
to import: :mod:`.jwks` (the keys and the JWK Set), :mod:`.record_header` (parsing
``Sec-Redemption-Record``), :mod:`.origin` (origins), :mod:`.jose` (strict base64url and JSON).
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..errors import DecodeError, Reason, TokenError
from .jose import b64url, b64url_decode_canonical, strict_json
from .jwks import (
    ED25519_KEY_LENGTH,
    JWKS_MEDIA_TYPE,
    JWKS_PATH,
    KEY_ALG,
    MAX_JWKS_KEYS,
    MAX_JWKS_LENGTH,
    MAX_KID_LENGTH,
    RecordKey,
    RecordKeySet,
    check_kid,
    jwk_thumbprint,
)
from .origin import MAX_ORIGIN_LENGTH, normalize_origin, origin_set
from .record_header import (
    MAX_HEADER_ENTRIES,
    MAX_HEADER_LENGTH,
    RECORD_PARAMETER,
    REDEMPTION_RECORD_HEADER,
    RecordEntry,
    parse_redemption_record_header,
)

#: JWS header values of every record (RFC 7515 §4.1; ``typ`` per RFC 8725 §3.11).
RECORD_ALG = KEY_ALG
RECORD_TYP = "pst-rr+jwt"
#: A record is about 420 characters.
MAX_RECORD_LENGTH = 2048
#: Default tolerance on ``iat`` and ``exp`` for clocks that disagree a little.
DEFAULT_LEEWAY = 60
RECORD_ID_BYTES = 16
ED25519_SIGNATURE_LENGTH = 64
UINT32_MAX = 2**32 - 1
#: JSON integers we read as times: seconds up to the year 10000.
_MAX_TIME = 253_402_300_800

_HEADER_FIELDS = frozenset({"alg", "kid", "typ"})
_CLAIM_FIELDS = ("iss", "redeeming_origin", "key_id", "iat", "exp", "jti")


def _is_uint(value: object, limit: int) -> bool:
    return type(value) is int and 0 <= value <= limit


@dataclass(frozen=True, slots=True)
class RedemptionRecord:
    """The claims of a redemption record (module docstring), and the ``kid`` that signed it.

    A verified record comes out of :func:`verify_redemption_record`; :func:`peek_redemption
    _record` returns one whose signature nobody checked (for display only)."""

    issuer: str
    redeeming_origin: str
    key_id: int
    issued_at: int
    expires_at: int
    record_id: str
    kid: str = ""

    def claims(self) -> dict[str, str | int]:
        return {
            "iss": self.issuer,
            "redeeming_origin": self.redeeming_origin,
            "key_id": self.key_id,
            "iat": self.issued_at,
            "exp": self.expires_at,
            "jti": self.record_id,
        }


def new_record_id() -> str:
    """A fresh ``jti``: 16 random bytes, base64url."""
    return b64url(secrets.token_bytes(RECORD_ID_BYTES))


def sign_redemption_record(
    record: RedemptionRecord, private_key: Ed25519PrivateKey, *, kid: str | None = None
) -> str:
    """The compact JWS of ``record`` (module docstring), signed with ``private_key``.

    ``kid`` defaults to the key's RFC 7638 thumbprint. The result is printable ASCII, as
    Chromium needs to store and re-send it (pst-notes §4).
    """
    if kid is None:
        kid = jwk_thumbprint(private_key.public_key())
    check_kid(kid)
    header = {"alg": RECORD_ALG, "kid": kid, "typ": RECORD_TYP}
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode("ascii"))
        + "."
        + b64url(json.dumps(record.claims(), separators=(",", ":")).encode("utf-8"))
    )
    signature = private_key.sign(signing_input.encode("ascii"))
    return signing_input + "." + b64url(signature)


@dataclass(frozen=True, slots=True)
class _ParsedRecord:
    kid: str
    record: RedemptionRecord
    signing_input: bytes
    signature: bytes


def _parse_claims(obj: object, kid: str) -> RedemptionRecord:
    if not isinstance(obj, dict):
        raise DecodeError("record claims are a JSON object")
    missing = [name for name in _CLAIM_FIELDS if name not in obj]
    if missing:
        raise DecodeError(f"record claims lack {missing[0]}")
    iss, origin, key_id = obj["iss"], obj["redeeming_origin"], obj["key_id"]
    iat, exp, jti = obj["iat"], obj["exp"], obj["jti"]
    if not isinstance(iss, str) or not isinstance(origin, str):
        raise DecodeError("iss and redeeming_origin are strings")
    if not _is_uint(key_id, UINT32_MAX):
        raise DecodeError("key_id is a uint32")
    if not _is_uint(iat, _MAX_TIME) or not _is_uint(exp, _MAX_TIME) or exp <= iat:
        raise DecodeError("iat and exp are whole seconds with iat < exp")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_KID_LENGTH:
        raise DecodeError("jti is a short string")
    return RedemptionRecord(
        issuer=normalize_origin(iss),
        redeeming_origin=normalize_origin(origin),
        key_id=key_id,
        issued_at=iat,
        expires_at=exp,
        record_id=jti,
        kid=kid,
    )


def _parse_record(text: str) -> _ParsedRecord:
    if not isinstance(text, str) or len(text) > MAX_RECORD_LENGTH:
        raise DecodeError(f"a redemption record is a string of at most {MAX_RECORD_LENGTH}")
    parts = text.split(".")
    if len(parts) != 3:
        raise DecodeError("a redemption record is a compact JWS: three dot-separated parts")
    header = strict_json(b64url_decode_canonical(parts[0], "JWS header"), "JWS header")
    if not isinstance(header, dict) or set(header) != _HEADER_FIELDS:
        raise DecodeError("the JWS header has exactly alg, kid and typ")
    if header["alg"] != RECORD_ALG or header["typ"] != RECORD_TYP:
        raise DecodeError(f"the JWS header must say alg {RECORD_ALG} and typ {RECORD_TYP}")
    kid = check_kid(header["kid"])
    claims = strict_json(b64url_decode_canonical(parts[1], "JWS payload"), "JWS payload")
    signature = b64url_decode_canonical(parts[2], "JWS signature")
    if len(signature) != ED25519_SIGNATURE_LENGTH:
        raise DecodeError("an Ed25519 signature is 64 bytes")
    return _ParsedRecord(
        kid, _parse_claims(claims, kid), (parts[0] + "." + parts[1]).encode("ascii"), signature
    )


def peek_redemption_record(text: str) -> RedemptionRecord:
    """Parse a record **without verifying it** (for display: ``pat-middleware inspect``).

    Raises :class:`DecodeError` for anything that is not our record format.
    """
    return _parse_record(text).record


def verify_redemption_record(
    text: str,
    *,
    issuer: str,
    keys: RecordKeySet,
    accepted_origins: Collection[str],
    now: float,
    leeway: float = DEFAULT_LEEWAY,
    labels: Collection[int] | None = None,
) -> RedemptionRecord:
    """Verify one record from ``issuer`` (whose JWK Set is ``keys``) at time ``now``.

    ``accepted_origins`` are the redeeming (top-level) origins this consumer accepts, as
    serialized origins; a record for any other is refused with ``wrong_origin``. ``labels``,
    when given, are the trust labels (PST key ids) accepted from this issuer. Raises
    :class:`TokenError` with the reasons listed in the module docstring, in that order.
    """
    return _verify_record(text, issuer, keys, accepted_origins, now, leeway, labels)


def _verify_record(
    text: str,
    issuer: str,
    keys: RecordKeySet,
    accepted_origins: Collection[str],
    now: float,
    leeway: float,
    labels: Collection[int] | None,
    *,
    checked: bool = False,
) -> RedemptionRecord:
    """:func:`verify_redemption_record`; with ``checked``, ``issuer`` and
    ``accepted_origins`` are already normalized (a :class:`RecordVerifier`'s)."""
    try:
        parsed = _parse_record(text)
    except DecodeError as e:
        raise TokenError(Reason.MALFORMED, str(e)) from None
    key = keys.get(parsed.kid)
    if key is None:
        raise TokenError(Reason.UNKNOWN_KEY, "no key with this kid in the issuer's JWK Set")
    try:
        key.public_key.verify(parsed.signature, parsed.signing_input)
    except InvalidSignature:
        raise TokenError(Reason.BAD_SIGNATURE, "the record's signature does not verify") from None
    record = parsed.record
    try:
        expected_issuer = issuer if checked else normalize_origin(issuer)
    except DecodeError as e:
        raise TokenError(Reason.MALFORMED, f"issuer: {e}") from None
    if record.issuer != expected_issuer:
        raise TokenError(Reason.UNTRUSTED_ISSUER, "the record names another issuer")
    if not math.isfinite(now) or now > record.expires_at + leeway:
        raise TokenError(Reason.EXPIRED, "the record has expired")
    if now < record.issued_at - leeway:
        raise TokenError(Reason.EXPIRED, "the record is not valid yet (iat in the future)")
    try:
        accepted = accepted_origins if checked else origin_set(accepted_origins)
    except DecodeError as e:
        raise TokenError(Reason.MALFORMED, f"accepted origin: {e}") from None
    if record.redeeming_origin not in accepted:
        raise TokenError(Reason.WRONG_ORIGIN, "the record was redeemed for another origin")
    if labels is not None and record.key_id not in labels:
        raise TokenError(
            Reason.UNTRUSTED_ISSUER, "the record's trust label is not accepted from this issuer"
        )
    return record


# ------------------------------------------------------------------ the header


def verify_redemption_record_header(
    value: str | bytes | None,
    *,
    trusted: Mapping[str, RecordKeySet],
    accepted_origins: Collection[str],
    now: float,
    leeway: float = DEFAULT_LEEWAY,
    labels: Mapping[str, Collection[int]] | None = None,
) -> RedemptionRecord | None:
    """The trust-signal entry point: header text in, a verified record (or a reason) out.

    ``trusted`` maps issuer origins to their JWK Sets; ``labels`` maps those of them that are
    trusted for some trust labels only to the labels accepted. Returns the first record that
    verifies, or ``None`` when the header is absent or empty (the browser has no record: no
    signal, as opposed to a bad one). Raises :class:`TokenError`: ``malformed`` for a header
    that does not parse, the reason of the first trusted issuer's record that failed, else
    ``untrusted_issuer`` when only untrusted issuers sent records; ``malformed`` too for a
    trusted or accepted origin that is not one.
    """
    if value is None:
        return None
    try:
        trusted_by_origin = {normalize_origin(o): keys for o, keys in trusted.items()}
        labels_by_origin = {normalize_origin(o): ids for o, ids in (labels or {}).items()}
        accepted = origin_set(accepted_origins)
    except DecodeError as e:
        raise TokenError(Reason.MALFORMED, f"configuration: {e}") from None
    return _verify_header(value, trusted_by_origin, accepted, now, leeway, labels_by_origin)


def _verify_header(
    value: str | bytes | None,
    trusted: Mapping[str, RecordKeySet],
    accepted: frozenset[str],
    now: float,
    leeway: float,
    labels: Mapping[str, Collection[int]],
) -> RedemptionRecord | None:
    """:func:`verify_redemption_record_header` with its configuration normalized."""
    if value is None:
        return None
    try:
        entries = parse_redemption_record_header(value)
    except DecodeError as e:
        raise TokenError(Reason.MALFORMED, str(e)) from None
    first_error: TokenError | None = None
    for entry in entries:
        keys = trusted.get(entry.issuer)
        if keys is None:
            continue
        try:
            # entry.issuer is normalized by the header parser.
            return _verify_record(
                entry.record,
                entry.issuer,
                keys,
                accepted,
                now,
                leeway,
                labels.get(entry.issuer),
                checked=True,
            )
        except TokenError as e:
            first_error = first_error or e
    if first_error is not None:
        raise first_error
    if entries:
        raise TokenError(Reason.UNTRUSTED_ISSUER, "no record from a trusted issuer")
    return None


@dataclass(frozen=True, slots=True)
class RecordVerifier:
    """:func:`verify_redemption_record_header` with its configuration checked once: the
    trusted issuers' JWK Sets, the accepted origins and the accepted trust labels per issuer
    (absent: any), normalized at construction (a bad origin is a :class:`DecodeError` here,
    not on every request). What a policy holds."""

    trusted: Mapping[str, RecordKeySet]
    accepted_origins: frozenset[str]
    leeway: float = DEFAULT_LEEWAY
    labels: Mapping[str, Collection[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        trusted = {normalize_origin(o): keys for o, keys in self.trusted.items()}
        object.__setattr__(self, "trusted", trusted)
        object.__setattr__(self, "accepted_origins", origin_set(self.accepted_origins))
        labels = {normalize_origin(o): frozenset(ids) for o, ids in self.labels.items()}
        object.__setattr__(self, "labels", labels)

    def verify(self, value: str | bytes | None, *, now: float) -> RedemptionRecord | None:
        """A verified record, None when the header is absent or empty, else
        :class:`TokenError` (see :func:`verify_redemption_record_header`)."""
        return _verify_header(
            value, self.trusted, self.accepted_origins, now, self.leeway, self.labels
        )


__all__ = [
    "DEFAULT_LEEWAY",
    "ED25519_KEY_LENGTH",
    "ED25519_SIGNATURE_LENGTH",
    "JWKS_MEDIA_TYPE",
    "JWKS_PATH",
    "MAX_HEADER_ENTRIES",
    "MAX_HEADER_LENGTH",
    "MAX_JWKS_KEYS",
    "MAX_JWKS_LENGTH",
    "MAX_KID_LENGTH",
    "MAX_ORIGIN_LENGTH",
    "MAX_RECORD_LENGTH",
    "RECORD_ALG",
    "RECORD_PARAMETER",
    "RECORD_TYP",
    "REDEMPTION_RECORD_HEADER",
    "UINT32_MAX",
    "RecordEntry",
    "RecordKey",
    "RecordKeySet",
    "RecordVerifier",
    "RedemptionRecord",
    "jwk_thumbprint",
    "new_record_id",
    "normalize_origin",
    "parse_redemption_record_header",
    "peek_redemption_record",
    "sign_redemption_record",
    "verify_redemption_record",
    "verify_redemption_record_header",
]
