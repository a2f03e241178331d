"""Signed cookies: the session that binds per-session contexts, and the verified mark.

Both are itsdangerous ``TimestampSigner`` values under sub-keys of the operator's secret,
with different salts so one can never stand in for the other. The verified mark carries the
session id it was issued to, so copying it into another session is useless.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from itsdangerous import BadSignature, TimestampSigner
from itsdangerous.encoding import base64_decode, want_bytes

from ..core.codec import b64_decode, b64url_bytes, b64url_decode_strict, b64url_encode
from ..core.hmac import HmacSha256
from ..errors import DecodeError

SESSION_ID_LENGTH = 16
#: A Cookie header longer than this is not parsed at all. Sites with large analytics cookies
#: send several KiB, so the bound is generous; the adapters drop longer header lines first.
DEFAULT_MAX_COOKIE_HEADER = 16384
MAX_COOKIE_VALUE = 512
#: Per-request mode remembers this many outstanding challenges per session (parallel 401s).
MAX_PENDING_CHALLENGES = 4
#: itsdangerous writes a timestamp as at most 8 bytes, which is 11 base64 characters.
_MAX_TIMESTAMP_TEXT = 11
_U64 = struct.Struct(">Q")


class _ClockSigner(TimestampSigner):
    """A TimestampSigner whose clock can be set (tests of expiry run on a fake clock).

    It derives its HMAC key once, not on every call as itsdangerous does, and keeps the
    key's HMAC pads hashed: the same signatures, without re-hashing the secret for every
    cookie on the request path.
    """

    def __init__(self, secret: bytes, salt: str, clock: Callable[[], float]) -> None:
        super().__init__(secret, salt=salt, digest_method=hashlib.sha256)
        self._clock = clock
        self._mac = HmacSha256(self.derive_key())  # this signer has exactly one secret key

    def get_timestamp(self) -> int:
        return int(self._clock())

    def get_signature(self, value: str | bytes) -> bytes:
        return b64url_bytes(self._mac.digest(want_bytes(value)))

    def sign(self, value: str | bytes) -> bytes:
        """``value.timestamp.signature``, byte for byte what itsdangerous writes."""
        signed = (
            want_bytes(value) + b"." + b64url_bytes(_U64.pack(self.get_timestamp()).lstrip(b"\0"))
        )
        return signed + b"." + b64url_bytes(self._mac.digest(signed))

    def verify_signature(self, value: str | bytes, sig: str | bytes) -> bool:
        try:
            raw = base64_decode(sig)
        except Exception:  # itsdangerous's own rule: an undecodable signature is just wrong
            return False
        return hmac.compare_digest(raw, self._mac.digest(want_bytes(value)))

    def check(self, value: str, max_age: int) -> tuple[bytes, int]:
        """``(payload, timestamp)`` of a value this signer signed at most ``max_age`` seconds
        ago; raises :class:`BadSignature` otherwise.

        ``unsign(max_age=...)`` on the request path, minus its detours (datetime objects,
        decoding the signature): the signature's canonical text is compared in constant
        time, which accepts exactly what :meth:`sign` produces.
        """
        try:
            raw = value.encode("ascii")
        except UnicodeEncodeError as e:
            raise BadSignature("not ASCII") from e
        signed, dot, signature = raw.rpartition(b".")
        payload, dot_ts, stamp_text = signed.rpartition(b".")
        if not dot or not dot_ts:
            raise BadSignature("not a timestamped value")
        expected = b64url_bytes(self._mac.digest(signed))
        if not hmac.compare_digest(expected, signature):
            raise BadSignature("signature does not match")
        if not 0 < len(stamp_text) <= _MAX_TIMESTAMP_TEXT:
            raise BadSignature("malformed timestamp")
        try:
            stamp = int.from_bytes(b64url_decode_strict(stamp_text))
        except ValueError as e:
            raise BadSignature("malformed timestamp") from e
        age = self.get_timestamp() - stamp
        if age > max_age or age < 0:
            raise BadSignature("expired")
        return payload, stamp


@dataclass(frozen=True, slots=True)
class Session:
    """A session read from (or about to be written to) the session cookie."""

    session_id: bytes
    issued_at: int

    def __repr__(self) -> str:
        return f"Session(issued_at={self.issued_at})"


class SessionCodec:
    """Reads and writes the session cookie and the verified-session cookie."""

    __slots__ = ("_clock", "_lifetime", "_pending", "_session", "_verified")

    def __init__(
        self, key: bytes, *, lifetime: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._session = _ClockSigner(key, "pat-middleware/session", clock)
        self._verified = _ClockSigner(key, "pat-middleware/verified", clock)
        self._pending = _ClockSigner(key, "pat-middleware/pending", clock)
        self._lifetime = lifetime
        self._clock = clock

    def __repr__(self) -> str:
        return "SessionCodec(<key hidden>)"

    def new_session(self) -> Session:
        return Session(secrets.token_bytes(SESSION_ID_LENGTH), int(self._clock()))

    def dump_session(self, session: Session) -> str:
        return self._session.sign(b64url_encode(session.session_id, padded=False)).decode()

    def load_session(self, value: str | None) -> Session | None:
        """The session in a cookie value, or None if absent, forged, tampered or expired."""
        if not value or len(value) > MAX_COOKIE_VALUE:
            return None
        try:
            raw, issued = self._session.check(value, self._lifetime)
            # Authentic (our own encoding), and still decoded strictly.
            session_id = b64url_decode_strict(raw)
        except (BadSignature, ValueError):
            return None
        if len(session_id) != SESSION_ID_LENGTH:
            return None
        return Session(session_id, issued)

    def dump_verified(self, session: Session) -> str:
        return self._verified.sign(b64url_encode(session.session_id, padded=False)).decode()

    def is_verified(self, value: str | None, session: Session | None, duration: int) -> bool:
        """True when ``value`` is a verified mark, younger than ``duration``, for ``session``."""
        if not value or session is None or duration <= 0 or len(value) > MAX_COOKIE_VALUE:
            return False
        try:
            raw, _ = self._verified.check(value, duration)
            session_id = b64url_decode_strict(raw)
        except (BadSignature, ValueError):
            return False
        return hmac.compare_digest(session_id, session.session_id)

    def dump_pending(self, session: Session, slots: Sequence[int]) -> str:
        """Per-request mode: the time slots (ms) of the challenges sent to this session."""
        sid = b64url_encode(session.session_id, padded=False)
        return self._pending.sign(sid + "." + ".".join(str(s) for s in slots)).decode()

    def load_pending(self, value: str | None, session: Session | None, max_age: int) -> list[int]:
        if not value or session is None or len(value) > MAX_COOKIE_VALUE:
            return []
        try:
            raw = self._pending.check(value, max_age)[0].decode("ascii")
            sid_text, _, rest = raw.partition(".")
            if not hmac.compare_digest(b64_decode(sid_text, max_length=64), session.session_id):
                return []
            slots = [int(s) for s in rest.split(".")[:MAX_PENDING_CHALLENGES] if s.isdigit()]
        except (BadSignature, DecodeError, ValueError, UnicodeError):
            return []
        return slots


def parse_cookie_header(
    header: str | None, *, max_length: int = DEFAULT_MAX_COOKIE_HEADER
) -> Mapping[str, str]:
    """Name -> value for a Cookie header (RFC 6265 §5.4); first occurrence wins.

    Oversized headers are ignored whole, which reads as "no session": a new one starts.
    """
    if not header or len(header) > max_length:
        return {}
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        if not sep:
            continue
        name = name.strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if name and name not in out and len(value) <= MAX_COOKIE_VALUE:
            out[name] = value
    return out
