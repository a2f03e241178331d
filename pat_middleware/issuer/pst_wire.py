"""Private State Token messages, ``PrivateStateTokenV1VOPRF``, exactly as Chromium 156 sends
and expects them (pst-notes §2-§4), without I/O. Both sides use these: the issuer
(:mod:`.pst`), our client helper (:mod:`.pst_client`) and ``pat-middleware inspect``.

* :class:`KeyCommitment`: the issuer's key commitment JSON (§2), built and parsed strictly.
* :class:`IssueRequest` / :class:`IssueResponse`: the ``Sec-Private-State-Token`` values of
  issuance (§3): ``u16 count || count x 97-byte point`` and ``u16 issued || u32 key_id ||
  issued x 97-byte Z || u16 proof_len || proof (c || s)``.
* :class:`RedeemRequest` and :class:`ClientData`: the redemption value (§4): ``u16 165 ||
  u32 key_id || 64-byte nonce || 97-byte W || u16 len || CBOR client data``.

Header values are bare base64 (standard alphabet, as Chromium writes it); surrounding double
quotes are tolerated on input. Every malformed value raises :class:`DecodeError`, whose
message never echoes the peer's bytes.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cbor2

from ..core.codec import b64_decode
from ..errors import DecodeError
from ..tokens.oprf import (
    PROOF_LENGTH,
    UNCOMPRESSED_LENGTH,
    Point,
    Proof,
    PublicKey,
    decode_uncompressed,
    encode_uncompressed,
)

#: Header names (pst-notes §3-§5).
PST_HEADER = "Sec-Private-State-Token"
CRYPTO_VERSION_HEADER = "Sec-Private-State-Token-Crypto-Version"
LIFETIME_HEADER = "Sec-Private-State-Token-Lifetime"
#: The one protocol this module speaks: RFC 9497 VOPRF(P-384, SHA-384), pst-notes §6.
PROTOCOL_VERSION = "PrivateStateTokenV1VOPRF"
#: Chromium asks for at most this many tokens per issuance (it caps batchsize at 100).
MAX_BATCH_SIZE = 100
#: Chromium drops issuance answers whose commitment lists more keys than this.
MAX_COMMITMENT_KEYS = 6
UINT32_MAX = 2**32 - 1
NONCE_LENGTH = 64
#: u32 key_id || nonce || W: the length Chromium writes in front of a redeemed token.
TOKEN_LENGTH = 4 + NONCE_LENGTH + UNCOMPRESSED_LENGTH
#: Bound on the CBOR client data (Chromium's is about 60 bytes).
MAX_CLIENT_DATA_LENGTH = 1024
#: Bounds on the base64 text of each header value, checked before decoding.
MAX_ISSUE_REQUEST_TEXT = 4 * math.ceil((2 + MAX_BATCH_SIZE * UNCOMPRESSED_LENGTH) / 3) + 2
MAX_ISSUE_RESPONSE_TEXT = (
    4 * math.ceil((2 + 4 + MAX_BATCH_SIZE * UNCOMPRESSED_LENGTH + 2 + PROOF_LENGTH) / 3) + 2
)
MAX_REDEEM_REQUEST_TEXT = 4 * math.ceil((2 + TOKEN_LENGTH + 2 + MAX_CLIENT_DATA_LENGTH) / 3) + 2
#: Bound on a key commitment document.
MAX_COMMITMENT_LENGTH = 64 * 1024
#: Client-data map keys (pst-notes §4).
REDEEMING_ORIGIN_KEY = "redeeming-origin"
REDEMPTION_TIMESTAMP_KEY = "redemption-timestamp"

_CLIENT_DATA_KEYS = frozenset({REDEEMING_ORIGIN_KEY, REDEMPTION_TIMESTAMP_KEY})
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_ISSUE_RESPONSE_HEAD = struct.Struct("!HI")
_MAX_CBOR_DEPTH = 2
#: CBOR tags have no place in the client data; these stop cbor2 from building objects for
#: the tags it knows (a regex, a date, a bignum) before our type checks would refuse them.
_NO_TAGS: dict[int, Any] = {}


def _refuse_tag(*_: object) -> Any:
    raise cbor2.CBORDecodeError("CBOR tags are not allowed in client data")


for _tag in (*range(0, 1024), 55799, 55800, 55801):
    _NO_TAGS[_tag] = _refuse_tag


def decode_header_value(value: str | bytes, *, max_length: int, what: str) -> bytes:
    """Bare base64 (standard or url-safe, padded or not), optionally in double quotes."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise DecodeError(f"{what} is not ASCII") from None
    if len(value) > max_length:
        raise DecodeError(f"{what} is longer than {max_length} characters")
    text = value.strip(" \t")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    try:
        return b64_decode(text)
    except DecodeError as e:
        raise DecodeError(f"{what}: {e}") from None


def encode_header_value(data: bytes) -> str:
    """Standard padded base64, as Chromium writes and reads these headers."""
    return base64.b64encode(data).decode("ascii")


def _points(data: bytes, count: int, what: str) -> tuple[Point, ...]:
    out = []
    for i in range(count):
        chunk = data[i * UNCOMPRESSED_LENGTH : (i + 1) * UNCOMPRESSED_LENGTH]
        try:
            out.append(decode_uncompressed(chunk))
        except DecodeError as e:
            raise DecodeError(f"{what} {i}: {e}") from None
    return tuple(out)


# --------------------------------------------------------------------------- issuance


@dataclass(frozen=True, slots=True)
class IssueRequest:
    """What the browser sends to issuance: blinded elements B_i = r_i * HashToGroup(nonce_i)."""

    blinded: tuple[Point, ...] = field(repr=False)

    def __post_init__(self) -> None:
        if not 0 < len(self.blinded) <= MAX_BATCH_SIZE:
            raise DecodeError(f"an issue request asks for 1 to {MAX_BATCH_SIZE} tokens")

    def to_bytes(self) -> bytes:
        return _U16.pack(len(self.blinded)) + b"".join(map(encode_uncompressed, self.blinded))

    def to_header(self) -> str:
        return encode_header_value(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> IssueRequest:
        """``u16 count || count x 97-byte uncompressed point``, exactly; every point on the
        curve (the identity has no such encoding)."""
        if len(data) < _U16.size:
            raise DecodeError("issue request is truncated")
        (count,) = _U16.unpack_from(data)
        if not 0 < count <= MAX_BATCH_SIZE:
            raise DecodeError(f"issue request count must be 1 to {MAX_BATCH_SIZE}")
        if len(data) != _U16.size + count * UNCOMPRESSED_LENGTH:
            raise DecodeError("issue request length does not match its count")
        return cls(_points(data[_U16.size :], count, "blinded element"))

    @classmethod
    def from_header(cls, value: str | bytes) -> IssueRequest:
        raw = decode_header_value(value, max_length=MAX_ISSUE_REQUEST_TEXT, what=PST_HEADER)
        return cls.from_bytes(raw)


@dataclass(frozen=True, slots=True)
class IssueResponse:
    """What the issuer answers: Z_i = k * B_i under key ``key_id``, and one batched DLEQ proof."""

    key_id: int
    evaluated: tuple[Point, ...] = field(repr=False)
    proof: Proof = field(repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.key_id <= UINT32_MAX:
            raise DecodeError("key_id is a uint32")
        if not 0 < len(self.evaluated) <= MAX_BATCH_SIZE:
            raise DecodeError(f"an issue response carries 1 to {MAX_BATCH_SIZE} tokens")

    def to_bytes(self) -> bytes:
        return (
            _ISSUE_RESPONSE_HEAD.pack(len(self.evaluated), self.key_id)
            + b"".join(map(encode_uncompressed, self.evaluated))
            + _U16.pack(PROOF_LENGTH)
            + self.proof.to_bytes()
        )

    def to_header(self) -> str:
        return encode_header_value(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> IssueResponse:
        if len(data) < _ISSUE_RESPONSE_HEAD.size:
            raise DecodeError("issue response is truncated")
        issued, key_id = _ISSUE_RESPONSE_HEAD.unpack_from(data)
        if not 0 < issued <= MAX_BATCH_SIZE:
            raise DecodeError(f"issue response count must be 1 to {MAX_BATCH_SIZE}")
        offset = _ISSUE_RESPONSE_HEAD.size + issued * UNCOMPRESSED_LENGTH
        if len(data) != offset + _U16.size + PROOF_LENGTH:
            raise DecodeError("issue response length does not match its count")
        (proof_length,) = _U16.unpack_from(data, offset)
        if proof_length != PROOF_LENGTH:
            raise DecodeError(f"the proof is {PROOF_LENGTH} bytes (c || s)")
        evaluated = _points(data[_ISSUE_RESPONSE_HEAD.size : offset], issued, "evaluated element")
        return cls(key_id, evaluated, Proof.from_bytes(data[offset + _U16.size :]))

    @classmethod
    def from_header(cls, value: str | bytes) -> IssueResponse:
        raw = decode_header_value(value, max_length=MAX_ISSUE_RESPONSE_TEXT, what=PST_HEADER)
        return cls.from_bytes(raw)


# ------------------------------------------------------------------------- redemption


@dataclass(frozen=True, slots=True)
class ClientData:
    """The CBOR map Chromium puts after a redeemed token (pst-notes §4)."""

    redeeming_origin: str
    redemption_timestamp: int

    def to_cbor(self) -> bytes:
        return cbor2.dumps(
            {
                REDEEMING_ORIGIN_KEY: self.redeeming_origin,
                REDEMPTION_TIMESTAMP_KEY: self.redemption_timestamp,
            },
            canonical=True,
        )

    @classmethod
    def from_cbor(cls, data: bytes) -> ClientData:
        """Exactly a canonical CBOR map of ``redeeming-origin`` (text) and
        ``redemption-timestamp`` (unsigned integer); no tags, no other members."""
        if len(data) > MAX_CLIENT_DATA_LENGTH:
            raise DecodeError(f"client data is longer than {MAX_CLIENT_DATA_LENGTH} bytes")
        try:
            obj = cbor2.loads(
                data,
                semantic_decoders=_NO_TAGS,
                tag_hook=_refuse_tag,
                max_depth=_MAX_CBOR_DEPTH,
                allow_indefinite=False,
                allow_duplicate_keys=False,
                strict_hashable_types=True,
            )
        except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as e:
            raise DecodeError(f"client data is not the expected CBOR: {type(e).__name__}") from None
        if not isinstance(obj, dict) or set(obj) != _CLIENT_DATA_KEYS:
            raise DecodeError("client data is a map of redeeming-origin and redemption-timestamp")
        origin = obj[REDEEMING_ORIGIN_KEY]
        timestamp = obj[REDEMPTION_TIMESTAMP_KEY]
        if type(origin) is not str or type(timestamp) is not int or not 0 <= timestamp < 2**64:
            raise DecodeError("redeeming-origin is text and redemption-timestamp a uint")
        parsed = cls(origin, timestamp)
        if parsed.to_cbor() != bytes(data):
            raise DecodeError("client data is not canonical CBOR")
        return parsed


@dataclass(frozen=True, slots=True)
class RedeemRequest:
    """A token offered for redemption: key id, nonce, W = k * HashToGroup(nonce), client data."""

    key_id: int
    nonce: bytes = field(repr=False)
    w: Point = field(repr=False)
    client_data: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.key_id <= UINT32_MAX:
            raise DecodeError("key_id is a uint32")
        if len(self.nonce) != NONCE_LENGTH:
            raise DecodeError(f"the nonce is {NONCE_LENGTH} bytes")
        if self.w.is_identity:
            raise DecodeError("the identity is not a token")
        if len(self.client_data) > MAX_CLIENT_DATA_LENGTH:
            raise DecodeError(f"client data is longer than {MAX_CLIENT_DATA_LENGTH} bytes")

    def parsed_client_data(self) -> ClientData:
        return ClientData.from_cbor(self.client_data)

    def to_bytes(self) -> bytes:
        return (
            _U16.pack(TOKEN_LENGTH)
            + _U32.pack(self.key_id)
            + self.nonce
            + encode_uncompressed(self.w)
            + _U16.pack(len(self.client_data))
            + self.client_data
        )

    def to_header(self) -> str:
        return encode_header_value(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> RedeemRequest:
        head = _U16.size + TOKEN_LENGTH + _U16.size
        if len(data) < head:
            raise DecodeError("redeem request is truncated")
        (token_length,) = _U16.unpack_from(data)
        if token_length != TOKEN_LENGTH:
            raise DecodeError(f"a redeemed token is {TOKEN_LENGTH} bytes")
        (key_id,) = _U32.unpack_from(data, _U16.size)
        nonce_at = _U16.size + _U32.size
        w_at = nonce_at + NONCE_LENGTH
        (client_length,) = _U16.unpack_from(data, head - _U16.size)
        if len(data) != head + client_length:
            raise DecodeError("redeem request length does not match its client data length")
        try:
            w = decode_uncompressed(data[w_at : w_at + UNCOMPRESSED_LENGTH])
        except DecodeError as e:
            raise DecodeError(f"token W: {e}") from None
        return cls(key_id, data[nonce_at:w_at], w, data[head:])

    @classmethod
    def from_header(cls, value: str | bytes) -> RedeemRequest:
        raw = decode_header_value(value, max_length=MAX_REDEEM_REQUEST_TEXT, what=PST_HEADER)
        return cls.from_bytes(raw)


# ---------------------------------------------------------------------- key commitment


@dataclass(frozen=True, slots=True)
class CommitmentKey:
    """One committed key: its id, public key and expiry (microseconds since the epoch)."""

    key_id: int
    public_key: PublicKey
    expiry_us: int

    def y(self) -> bytes:
        """The ``Y`` bytes: u32 key id || 97-byte uncompressed point (Chromium matches keys by
        this inner id)."""
        return _U32.pack(self.key_id) + self.public_key.uncompressed


@dataclass(frozen=True, slots=True)
class KeyCommitment:
    """A ``PrivateStateTokenV1VOPRF`` key commitment (pst-notes §2)."""

    commitment_id: int
    batch_size: int
    keys: tuple[CommitmentKey, ...]

    def __post_init__(self) -> None:
        if type(self.commitment_id) is not int or not 0 < self.commitment_id <= 2**53:
            raise DecodeError("the commitment id is an integer above 0")
        if type(self.batch_size) is not int or not 0 < self.batch_size <= MAX_BATCH_SIZE:
            raise DecodeError(f"batchsize is an integer from 1 to {MAX_BATCH_SIZE}")
        if len(self.keys) > MAX_COMMITMENT_KEYS:
            raise DecodeError(f"Chromium accepts at most {MAX_COMMITMENT_KEYS} keys")
        if len({key.key_id for key in self.keys}) != len(self.keys):
            raise DecodeError("two committed keys share an id")

    def find(self, key_id: int) -> CommitmentKey | None:
        for key in self.keys:
            if key.key_id == key_id:
                return key
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            PROTOCOL_VERSION: {
                "protocol_version": PROTOCOL_VERSION,
                "id": self.commitment_id,
                "batchsize": self.batch_size,
                "keys": {
                    str(key.key_id): {
                        "Y": base64.b64encode(key.y()).decode("ascii"),
                        "expiry": str(key.expiry_us),
                    }
                    for key in self.keys
                },
            }
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode("ascii")

    @classmethod
    def from_bytes(cls, data: bytes | str) -> KeyCommitment:
        if len(data) > MAX_COMMITMENT_LENGTH:
            raise DecodeError(f"key commitment is longer than {MAX_COMMITMENT_LENGTH} bytes")
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError):
            raise DecodeError("key commitment is not JSON") from None
        return cls.from_json(obj)

    @classmethod
    def from_json(cls, obj: object) -> KeyCommitment:
        """Read a commitment as Chromium does (pst-notes §2): the object under
        ``PrivateStateTokenV1VOPRF`` with a matching ``protocol_version``, integer ``id`` and
        ``batchsize`` above 0 (``1.0`` refused), uint32 key labels, ``Y`` whose inner id
        equals the label, and expiries as strings of microseconds."""
        if not isinstance(obj, dict) or not isinstance(obj.get(PROTOCOL_VERSION), dict):
            raise DecodeError(f"the commitment has no {PROTOCOL_VERSION} object")
        body = obj[PROTOCOL_VERSION]
        if body.get("protocol_version") != PROTOCOL_VERSION:
            raise DecodeError("protocol_version does not match its key")
        keys = body.get("keys")
        if not isinstance(keys, dict):
            raise DecodeError("keys is an object")
        if len(keys) > MAX_COMMITMENT_KEYS:
            raise DecodeError(f"Chromium accepts at most {MAX_COMMITMENT_KEYS} keys")
        parsed = tuple(_parse_commitment_key(label, entry) for label, entry in keys.items())
        return cls(body.get("id"), body.get("batchsize"), parsed)


def _is_uint32_text(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 10 and int(text) <= UINT32_MAX


def _parse_commitment_key(label: str, entry: object) -> CommitmentKey:
    if not _is_uint32_text(label):
        raise DecodeError("a key label is a uint32 in decimal")
    if not isinstance(entry, Mapping):
        raise DecodeError("a committed key is an object")
    y_text, expiry = entry.get("Y"), entry.get("expiry")
    if not isinstance(y_text, str) or not isinstance(expiry, str):
        raise DecodeError("a committed key has Y and expiry strings")
    if not expiry.isascii() or not expiry.isdigit() or len(expiry) > 19:
        raise DecodeError("expiry is a string of microseconds")
    y = b64_decode(y_text, max_length=256)
    if len(y) != _U32.size + UNCOMPRESSED_LENGTH:
        raise DecodeError("Y is a u32 key id and a 97-byte uncompressed point")
    (inner_id,) = _U32.unpack_from(y)
    if inner_id != int(label):
        raise DecodeError("Y's key id differs from its label")
    return CommitmentKey(inner_id, PublicKey.from_uncompressed(y[_U32.size :]), int(expiry))


__all__ = [
    "CRYPTO_VERSION_HEADER",
    "LIFETIME_HEADER",
    "MAX_BATCH_SIZE",
    "MAX_COMMITMENT_KEYS",
    "NONCE_LENGTH",
    "PROTOCOL_VERSION",
    "PST_HEADER",
    "TOKEN_LENGTH",
    "ClientData",
    "CommitmentKey",
    "IssueRequest",
    "IssueResponse",
    "KeyCommitment",
    "RedeemRequest",
    "decode_header_value",
    "encode_header_value",
]
