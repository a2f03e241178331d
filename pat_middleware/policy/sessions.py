"""Signed cookies: the session that binds per-session contexts, and the verified mark.

Both are timestamped HMAC values (:mod:`.signer`, itsdangerous's ``TimestampSigner``
format) under a sub-key of the operator's secret, with different salts so one can never
stand in for the other. The verified mark carries the session id it was issued to, so
copying it into another session is useless.

The request's ``Cookie`` header is read by name (:class:`CookieHeader`): the two or three
cookies the policy needs are found with a bounded scan, not a dict of every cookie.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from ..core.codec import b64_decode
from ..errors import DecodeError
from .signer import BadSignature, CookieSigner, b64, unb64

SESSION_ID_LENGTH = 16
#: A Cookie header longer than this is not parsed at all. Sites with large analytics cookies
#: send several KiB, so the bound is generous; the adapters drop longer header lines first.
DEFAULT_MAX_COOKIE_HEADER = 16384
MAX_COOKIE_VALUE = 512
#: Per-request mode remembers this many outstanding challenges per session (parallel 401s).
MAX_PENDING_CHALLENGES = 4
#: What is trimmed around a cookie's name and value: HTTP's white space (RFC 6265 §5.4),
#: not Python's. ``str.strip()`` would also drop 0x85, 0xA0 and 0x0B-0x1F, which browsers
#: keep in a name: ``\xa0__Host-x``, which any sibling host may set, would read as the
#: ``__Host-x`` that only this origin can.
_OWS = " \t"


@dataclass(frozen=True, slots=True)
class Session:
    """A session read from (or about to be written to) the session cookie."""

    session_id: bytes
    issued_at: int
    #: The session id as the cookies carry it (unpadded base64url); empty: not known yet.
    encoded: bytes = field(default=b"", repr=False, compare=False)

    def __repr__(self) -> str:
        return f"Session(issued_at={self.issued_at})"


def _encoded(session: Session) -> bytes:
    return session.encoded or b64(session.session_id)


class SessionCodec:
    """Reads and writes the session cookie and the verified-session cookie."""

    __slots__ = ("_clock", "_lifetime", "_pending", "_session", "_verified")

    def __init__(
        self, key: bytes, *, lifetime: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._session = CookieSigner(key, "pat-middleware/session", clock)
        self._verified = CookieSigner(key, "pat-middleware/verified", clock)
        self._pending = CookieSigner(key, "pat-middleware/pending", clock)
        self._lifetime = lifetime
        self._clock = clock

    def __repr__(self) -> str:
        return "SessionCodec(<key hidden>)"

    def new_session(self) -> Session:
        session_id = secrets.token_bytes(SESSION_ID_LENGTH)
        return Session(session_id, int(self._clock()), b64(session_id))

    def dump_session(self, session: Session) -> str:
        return self._session.sign(_encoded(session))

    def load_session(self, value: str | None) -> Session | None:
        """The session in a cookie value, or None if absent, forged, tampered or expired."""
        if not value or len(value) > MAX_COOKIE_VALUE:
            return None
        try:
            raw, issued = self._session.check(value, self._lifetime)
            # Authentic (our own encoding), and still decoded strictly.
            session_id = unb64(raw)
        except ValueError:  # BadSignature too
            return None
        if len(session_id) != SESSION_ID_LENGTH:
            return None
        return Session(session_id, issued, raw)

    def dump_verified(self, session: Session) -> str:
        return self._verified.sign(_encoded(session))

    def is_verified(self, value: str | None, session: Session | None, duration: int) -> bool:
        """True when ``value`` is a verified mark, younger than ``duration``, for ``session``."""
        if not value or session is None or duration <= 0 or len(value) > MAX_COOKIE_VALUE:
            return False
        try:
            raw, _ = self._verified.check(value, duration)
            session_id = unb64(raw)
        except ValueError:  # BadSignature too
            return False
        return hmac.compare_digest(session_id, session.session_id)

    def dump_pending(self, session: Session, slots: Sequence[int]) -> str:
        """Per-request mode: the time slots (ms) of the challenges sent to this session."""
        text = ".".join(str(s) for s in slots).encode("ascii")
        return self._pending.sign(_encoded(session) + b"." + text)

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
    """Name -> value for a Cookie header (RFC 6265 §5.4); first occurrence wins; names and
    values trimmed of spaces and tabs only.

    Oversized headers are ignored whole, which reads as "no session": a new one starts.
    """
    if not header or len(header) > max_length:
        return {}
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        if not sep:
            continue
        name = name.strip(_OWS)
        value = value.strip(_OWS)
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if name and name not in out and len(value) <= MAX_COOKIE_VALUE:
            out[name] = value
    return out


def cookie_value(
    header: str | None, name: str, *, max_length: int = DEFAULT_MAX_COOKIE_HEADER
) -> str | None:
    """``parse_cookie_header(header).get(name)``, without building the dict: a bounded scan
    of the header for the cookie ``name``, first occurrence wins, value unquoted, values
    longer than ``MAX_COOKIE_VALUE`` skipped, oversized headers ignored whole."""
    if not header or len(header) > max_length or not name:
        return None
    if ";" in name or "=" in name:  # no cookie is named so; let the general parser say
        return parse_cookie_header(header, max_length=max_length).get(name)
    find = header.find
    at = find(name)
    while at != -1:
        # The ';'-separated part holding this occurrence: a cookie named ``name`` there
        # has its name (stripped) before the part's first '='.
        start = header.rfind(";", 0, at) + 1
        end = find(";", at)
        if end == -1:
            end = len(header)
        key, sep, value = header[start:end].partition("=")
        if sep and key.strip(_OWS) == name:
            value = value.strip(_OWS)
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if len(value) <= MAX_COOKIE_VALUE:
                return value
        at = find(name, end)
    return None


class CookieHeader(Mapping[str, str]):
    """A request's ``Cookie`` header, read by name on demand.

    :meth:`get` scans for one cookie (:func:`cookie_value`); the policy reads two or three
    names, so no dict of every cookie is built. Iterating, ``len`` and ``[]`` parse the
    header whole (:func:`parse_cookie_header`), once. Either way the answers are what
    ``parse_cookie_header`` gives.
    """

    __slots__ = ("_header", "_parsed")

    def __init__(self, header: str | None) -> None:
        self._header = header
        self._parsed: Mapping[str, str] | None = None

    def __repr__(self) -> str:
        return "CookieHeader(<values hidden>)"

    def _all(self) -> Mapping[str, str]:
        parsed = self._parsed
        if parsed is None:
            parsed = self._parsed = parse_cookie_header(self._header)
        return parsed

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        if not isinstance(name, str):
            return default
        value = cookie_value(self._header, name)
        return default if value is None else value

    def __getitem__(self, name: str) -> str:
        return self._all()[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and cookie_value(self._header, name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())
