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
with a small leeway (``expired``: outside the validity window, either side), and
``redeeming_origin`` is one of the origins it accepts (``wrong_origin``). The same RR is
accepted again while it lives; ``jti`` lets a consumer rate-limit one record.

Every failure is a :class:`~pat_middleware.errors.TokenError` (with a :class:`Reason`) or a
:class:`~pat_middleware.errors.DecodeError`; nothing else escapes. No I/O happens here:
fetching a JWK Set is the caller's business.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import math
import re
import secrets
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import http_sf
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import DecodeError, Reason, TokenError
from .codec import b64url_decode_strict, b64url_encode

#: The request header Chromium forwards records in, and the parameter that carries one.
REDEMPTION_RECORD_HEADER = "Sec-Redemption-Record"
RECORD_PARAMETER = "redemption-record"
#: JWS header values of every record (RFC 7515 §4.1; ``typ`` per RFC 8725 §3.11).
RECORD_ALG = "EdDSA"
RECORD_TYP = "pst-rr+jwt"
#: Where an issuer publishes its record verification keys, and their media type (RFC 7517 §8.5).
JWKS_PATH = "/.well-known/private-state-token/redemption-record-keys"
JWKS_MEDIA_TYPE = "application/jwk-set+json"

#: Bounds on what a peer may make us read. A record is about 420 characters; Chromium sends
#: at most two issuers per top-level site, but the header is the peer's to fill.
MAX_HEADER_LENGTH = 8192
MAX_RECORD_LENGTH = 2048
MAX_HEADER_ENTRIES = 16
MAX_JWKS_LENGTH = 64 * 1024
MAX_JWKS_KEYS = 32
MAX_KID_LENGTH = 128
MAX_ORIGIN_LENGTH = 512
#: Default tolerance on ``iat`` and ``exp`` for clocks that disagree a little.
DEFAULT_LEEWAY = 60
RECORD_ID_BYTES = 16
ED25519_KEY_LENGTH = 32
ED25519_SIGNATURE_LENGTH = 64
UINT32_MAX = 2**32 - 1
#: JSON integers we read as times: seconds up to the year 10000.
_MAX_TIME = 253_402_300_800

_HEADER_FIELDS = frozenset({"alg", "kid", "typ"})
_CLAIM_FIELDS = ("iss", "redeeming_origin", "key_id", "iat", "exp", "jti")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_DEFAULT_PORTS = {"http": 80, "https": 443}


# ------------------------------------------------------------------------------- origins


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


def _origin_set(origins: Iterable[str]) -> frozenset[str]:
    return frozenset(normalize_origin(o) for o in origins)


# --------------------------------------------------------------------------- base64url


def _b64url_decode(part: str, what: str) -> bytes:
    """Strict unpadded base64url, canonical (re-encodes to the same text)."""
    if not part or _B64URL.fullmatch(part) is None:
        raise DecodeError(f"{what} is not unpadded base64url")
    try:
        raw = b64url_decode_strict(part.encode("ascii"))
    except (binascii.Error, ValueError) as e:
        raise DecodeError(f"{what} is not unpadded base64url") from e
    if b64url_encode(raw, padded=False) != part:
        raise DecodeError(f"{what} is not canonical base64url")
    return raw


def _b64(data: bytes) -> str:
    return b64url_encode(data, padded=False)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DecodeError(f"duplicate member {key[:32]!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise DecodeError(f"{name} is not JSON")


def _strict_json(data: bytes | str, what: str) -> Any:
    """JSON with duplicate names, NaN and Infinity refused (RFC 7515 §5.2 step 4)."""
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except DecodeError as e:
        raise DecodeError(f"{what}: {e}") from None
    except (ValueError, RecursionError) as e:  # JSONDecodeError, bad UTF-8, huge ints
        raise DecodeError(f"{what} is not JSON") from e


def _is_uint(value: object, limit: int) -> bool:
    return type(value) is int and 0 <= value <= limit


# --------------------------------------------------------------------------------- keys


def jwk_thumbprint(public_key: Ed25519PublicKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url) of an Ed25519 key: its ``kid``."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _b64(public_key.public_bytes_raw())},
        separators=(",", ":"),
        sort_keys=True,
    )
    return _b64(hashlib.sha256(canonical.encode("ascii")).digest())


@dataclass(frozen=True, slots=True)
class RecordKey:
    """One record verification key: an Ed25519 public key and its ``kid``."""

    kid: str
    public_key: Ed25519PublicKey = field(compare=False)
    raw: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check_kid(self.kid)
        object.__setattr__(self, "raw", self.public_key.public_bytes_raw())

    @classmethod
    def from_public_key(cls, public_key: Ed25519PublicKey) -> RecordKey:
        """Name the key by its RFC 7638 thumbprint."""
        return cls(jwk_thumbprint(public_key), public_key)

    def to_jwk(self) -> dict[str, str]:
        """The public JWK (RFC 8037 §2): OKP, Ed25519, with ``kid``, ``alg`` and ``use``."""
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": _b64(self.raw),
            "kid": self.kid,
            "alg": RECORD_ALG,
            "use": "sig",
        }


def _check_kid(kid: object) -> None:
    if (
        not isinstance(kid, str)
        or not 0 < len(kid) <= MAX_KID_LENGTH
        or not all("!" <= c <= "~" for c in kid)
    ):
        raise DecodeError("kid is 1 to 128 printable ASCII characters")


def _parse_jwk(obj: object) -> RecordKey:
    if not isinstance(obj, dict):
        raise DecodeError("a JWK is a JSON object")
    if obj.get("kty") != "OKP" or obj.get("crv") != "Ed25519":
        raise DecodeError("only OKP Ed25519 keys (RFC 8037) verify redemption records")
    if "d" in obj:
        raise DecodeError("the JWK Set holds private key material")
    if obj.get("alg", RECORD_ALG) != RECORD_ALG or obj.get("use", "sig") != "sig":
        raise DecodeError("a record key has alg EdDSA and use sig when it says")
    ops = obj.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise DecodeError("a record key's key_ops must allow verify")
    x = obj.get("x")
    if not isinstance(x, str):
        raise DecodeError("a JWK needs x")
    raw = _b64url_decode(x, "JWK x")
    if len(raw) != ED25519_KEY_LENGTH:
        raise DecodeError("an Ed25519 key is 32 bytes")
    kid = obj.get("kid")
    _check_kid(kid)
    assert isinstance(kid, str)
    try:
        public_key = Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as e:  # pragma: no cover - every 32-byte string loads
        raise DecodeError("not an Ed25519 public key") from e
    return RecordKey(kid, public_key)


@dataclass(frozen=True, slots=True)
class RecordKeySet:
    """An issuer's record verification keys (a JWK Set, RFC 7517 §5), looked up by ``kid``."""

    keys: tuple[RecordKey, ...]
    _by_kid: dict[str, RecordKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_kid = {key.kid: key for key in self.keys}
        if len(by_kid) != len(self.keys):
            raise DecodeError("two keys share a kid")
        if len(self.keys) > MAX_JWKS_KEYS:
            raise DecodeError(f"more than {MAX_JWKS_KEYS} keys")
        object.__setattr__(self, "_by_kid", by_kid)

    def get(self, kid: str) -> RecordKey | None:
        return self._by_kid.get(kid)

    def to_json(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [key.to_jwk() for key in self.keys]}

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode("ascii")

    @classmethod
    def from_bytes(cls, data: bytes | str) -> RecordKeySet:
        """Parse a JWK Set strictly: bounded, no duplicate names or kids, every key an
        Ed25519 public key with a kid, no private members. Raises :class:`DecodeError`."""
        if len(data) > MAX_JWKS_LENGTH:
            raise DecodeError(f"JWK Set is longer than {MAX_JWKS_LENGTH} bytes")
        return cls.from_json(_strict_json(data, "JWK Set"))

    @classmethod
    def from_json(cls, obj: object) -> RecordKeySet:
        if not isinstance(obj, dict) or not isinstance(obj.get("keys"), list):
            raise DecodeError("a JWK Set is an object with a keys list")
        entries = obj["keys"]
        if not 0 < len(entries) <= MAX_JWKS_KEYS:
            raise DecodeError(f"a JWK Set holds 1 to {MAX_JWKS_KEYS} keys")
        return cls(tuple(_parse_jwk(entry) for entry in entries))


# ------------------------------------------------------------------------------ records


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
    return _b64(secrets.token_bytes(RECORD_ID_BYTES))


def sign_redemption_record(
    record: RedemptionRecord, private_key: Ed25519PrivateKey, *, kid: str | None = None
) -> str:
    """The compact JWS of ``record`` (module docstring), signed with ``private_key``.

    ``kid`` defaults to the key's RFC 7638 thumbprint. The result is printable ASCII, as
    Chromium needs to store and re-send it (pst-notes §4).
    """
    if kid is None:
        kid = jwk_thumbprint(private_key.public_key())
    _check_kid(kid)
    header = {"alg": RECORD_ALG, "kid": kid, "typ": RECORD_TYP}
    signing_input = (
        _b64(json.dumps(header, separators=(",", ":")).encode("ascii"))
        + "."
        + _b64(json.dumps(record.claims(), separators=(",", ":")).encode("utf-8"))
    )
    signature = private_key.sign(signing_input.encode("ascii"))
    return signing_input + "." + _b64(signature)


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
    header = _strict_json(_b64url_decode(parts[0], "JWS header"), "JWS header")
    if not isinstance(header, dict) or set(header) != _HEADER_FIELDS:
        raise DecodeError("the JWS header has exactly alg, kid and typ")
    if header["alg"] != RECORD_ALG or header["typ"] != RECORD_TYP:
        raise DecodeError(f"the JWS header must say alg {RECORD_ALG} and typ {RECORD_TYP}")
    kid = header["kid"]
    _check_kid(kid)
    claims = _strict_json(_b64url_decode(parts[1], "JWS payload"), "JWS payload")
    signature = _b64url_decode(parts[2], "JWS signature")
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
) -> RedemptionRecord:
    """Verify one record from ``issuer`` (whose JWK Set is ``keys``) at time ``now``.

    ``accepted_origins`` are the redeeming (top-level) origins this consumer accepts, as
    serialized origins; a record for any other is refused with ``wrong_origin``. Raises
    :class:`TokenError` with the reasons listed in the module docstring, in that order.
    """
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
        expected_issuer = normalize_origin(issuer)
    except DecodeError as e:
        raise TokenError(Reason.MALFORMED, f"issuer: {e}") from None
    if record.issuer != expected_issuer:
        raise TokenError(Reason.UNTRUSTED_ISSUER, "the record names another issuer")
    if not math.isfinite(now) or now > record.expires_at + leeway:
        raise TokenError(Reason.EXPIRED, "the record has expired")
    if now < record.issued_at - leeway:
        raise TokenError(Reason.EXPIRED, "the record is not valid yet (iat in the future)")
    try:
        accepted = _origin_set(accepted_origins)
    except DecodeError as e:
        raise TokenError(Reason.MALFORMED, f"accepted origin: {e}") from None
    if record.redeeming_origin not in accepted:
        raise TokenError(Reason.WRONG_ORIGIN, "the record was redeemed for another origin")
    return record


# ------------------------------------------------------------------------------- header


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


def verify_redemption_record_header(
    value: str | bytes | None,
    *,
    trusted: Mapping[str, RecordKeySet],
    accepted_origins: Collection[str],
    now: float,
    leeway: float = DEFAULT_LEEWAY,
) -> RedemptionRecord | None:
    """The trust-signal entry point: header text in, a verified record (or a reason) out.

    ``trusted`` maps issuer origins to their JWK Sets. Returns the first record that
    verifies, or ``None`` when the header is absent or empty (the browser has no record: no
    signal, as opposed to a bad one). Raises :class:`TokenError`: ``malformed`` for a header
    that does not parse, the reason of the first trusted issuer's record that failed, else
    ``untrusted_issuer`` when only untrusted issuers sent records.
    """
    if value is None:
        return None
    try:
        entries = parse_redemption_record_header(value)
        trusted_by_origin = {normalize_origin(o): keys for o, keys in trusted.items()}
    except DecodeError as e:
        raise TokenError(Reason.MALFORMED, str(e)) from None
    first_error: TokenError | None = None
    for entry in entries:
        keys = trusted_by_origin.get(entry.issuer)
        if keys is None:
            continue
        try:
            return verify_redemption_record(
                entry.record,
                issuer=entry.issuer,
                keys=keys,
                accepted_origins=accepted_origins,
                now=now,
                leeway=leeway,
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
    trusted issuers' JWK Sets and the accepted origins, normalized at construction (a bad
    origin is a :class:`DecodeError` here, not on every request). What a policy holds."""

    trusted: Mapping[str, RecordKeySet]
    accepted_origins: frozenset[str]
    leeway: float = DEFAULT_LEEWAY

    def __post_init__(self) -> None:
        trusted = {normalize_origin(o): keys for o, keys in self.trusted.items()}
        object.__setattr__(self, "trusted", trusted)
        object.__setattr__(self, "accepted_origins", _origin_set(self.accepted_origins))

    def verify(self, value: str | bytes | None, *, now: float) -> RedemptionRecord | None:
        """A verified record, None when the header is absent or empty, else
        :class:`TokenError` (see :func:`verify_redemption_record_header`)."""
        return verify_redemption_record_header(
            value,
            trusted=self.trusted,
            accepted_origins=self.accepted_origins,
            now=now,
            leeway=self.leeway,
        )


__all__ = [
    "DEFAULT_LEEWAY",
    "JWKS_MEDIA_TYPE",
    "JWKS_PATH",
    "MAX_HEADER_LENGTH",
    "MAX_JWKS_LENGTH",
    "MAX_RECORD_LENGTH",
    "RECORD_ALG",
    "RECORD_PARAMETER",
    "RECORD_TYP",
    "REDEMPTION_RECORD_HEADER",
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
