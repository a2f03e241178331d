"""``WWW-Authenticate`` and ``Authorization`` for the PrivateToken scheme (RFC 9577 §2.1.2, §2.2.2).

Strict out, lenient in. Built headers quote every value (a padded base64url value is only
valid HTTP inside quotes), with a bare-value mode for clients that reject quotes. Parsing
follows RFC 9110 §11 loosely: scheme and parameter names in any case, quoted or bare values,
several challenges or credentials in one value, unknown parameters ignored, bounded length.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import DecodeError
from .codec import b64_decode, b64url_encode, decode_checked_body

AUTH_SCHEME = "PrivateToken"
WWW_AUTHENTICATE = "WWW-Authenticate"
AUTHORIZATION = "Authorization"

#: A type-2 token with a 4096-bit key is 610 bytes, 816 base64 characters; leave room for the
#: scheme, quoting and a few unknown parameters, but not for megabytes.
DEFAULT_MAX_AUTHORIZATION_LENGTH = 2048
DEFAULT_MAX_WWW_AUTHENTICATE_LENGTH = 16384
#: Adapters drop a Cookie or Host line longer than this before the policy sees it (read as
#: absent). Authorization is passed on: the policy refuses it by length before parsing.
MAX_HEADER_BYTES = 16384
#: More challenges or credentials than this in one header is not a real client.
MAX_ITEMS = 32

_WS = frozenset(" \t")
# Compiled scanners: a token (RFC 9110 tchar*), optional white space, a whole quoted-string
# (escapes consume two characters; no closing quote means no match), a bare value.
_TOKEN_RUN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]*")
_WS_RUN = re.compile(r"[ \t]*")
_QUOTED = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"', re.DOTALL)
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)
_BARE = re.compile(r"[^, \t]*")
_SCHEME_LOWER = AUTH_SCHEME.lower()
#: What clients send: exactly one PrivateToken credential with only a token parameter,
#: quoted (without escapes) or bare. Gives what the general parser would, without it.
#: Case-insensitive only where names are: IGNORECASE on the whole pattern would fold every
#: one of the ~500 token characters (8 us a header instead of 1).
_SINGLE_TOKEN = re.compile(
    r"[ \t]*(?i:PrivateToken)[ \t]+(?i:token)[ \t]*=[ \t]*"
    r'(?:"([A-Za-z0-9_+/-]+=*)"|([A-Za-z0-9_+/-]+=*))[ \t]*',
    re.ASCII,
)


#: What clients send and :func:`build_authorization` writes: ``PrivateToken token="..."``.
_CANONICAL_HEAD = AUTH_SCHEME + ' token="'
_CANONICAL_BODY = len(_CANONICAL_HEAD)
_SHORTEST = _CANONICAL_BODY + 1  # the head, a non-empty value and the closing quote
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


@dataclass(frozen=True, slots=True)
class AuthItem:
    """One challenge or credential: a scheme and its parameters (names lower-cased)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def is_private_token(self) -> bool:
        return self.scheme.lower() == _SCHEME_LOWER


@dataclass(frozen=True, slots=True)
class ChallengeParams:
    """One ``PrivateToken`` challenge as it travels in ``WWW-Authenticate``.

    ``challenge`` holds the raw TokenChallenge bytes, which may be a grease challenge that
    does not parse; ``token_key`` the raw published key bytes.
    """

    challenge: bytes
    token_key: bytes | None = None
    max_age: int | None = None


def parse_auth_items(value: str, *, max_length: int) -> list[AuthItem]:
    """Split a header value into challenges/credentials (RFC 9110 §11.2, leniently)."""
    if len(value) > max_length:
        raise DecodeError(f"header value is longer than {max_length} characters")
    items: list[AuthItem] = []
    current: AuthItem | None = None
    pos, n = 0, len(value)
    while pos < n:
        ch = value[pos]
        if ch in _WS or ch == ",":
            pos += 1
            continue
        start = pos
        pos = _TOKEN_RUN.match(value, pos).end()  # type: ignore[union-attr]  # matches ""
        name = value[start:pos]
        if not name:
            # Not a token: junk (or a token68 character such as '/'). Skip to the next item.
            pos = _skip_junk(value, pos)
            continue
        after = _WS_RUN.match(value, pos).end()  # type: ignore[union-attr]
        if after < n and value[after] == "=" and current is not None:
            pos = _WS_RUN.match(value, after + 1).end()  # type: ignore[union-attr]
            param, pos = _read_value(value, pos)
            # RFC 9110: a name occurs once per challenge. Keep the first, ignore repeats.
            current.params.setdefault(name.lower(), param)
            continue
        current = AuthItem(scheme=name)
        items.append(current)
        if len(items) > MAX_ITEMS:
            raise DecodeError(f"more than {MAX_ITEMS} challenges or credentials")
        pos = after
    return items


def _read_value(value: str, pos: int) -> tuple[str, int]:
    if value.startswith('"', pos):
        end = value.find('"', pos + 1)
        if end != -1 and "\\" not in value[pos + 1 : end]:
            return value[pos + 1 : end], end + 1  # the usual case: no escapes
        quoted = _QUOTED.match(value, pos)
        if quoted is None:
            raise DecodeError("unterminated quoted-string")
        text = quoted.group(1)
        if "\\" in text:
            text = _ESCAPED.sub(_unescape, text)
        return text, quoted.end()
    end = _BARE.match(value, pos).end()  # type: ignore[union-attr]  # matches ""
    return value[pos:end], end


def _unescape(match: re.Match[str]) -> str:
    return match.group(1)


def _skip_junk(value: str, pos: int) -> int:
    n = len(value)
    while pos < n and value[pos] != "," and value[pos] not in _WS:
        if value[pos] == '"':
            _, pos = _read_value(value, pos)
            continue
        pos += 1
    return pos


def parse_authorization(
    value: str, *, max_length: int = DEFAULT_MAX_AUTHORIZATION_LENGTH
) -> list[bytes]:
    """The decoded ``token`` of every ``PrivateToken`` credential in an Authorization value.

    Other schemes are ignored, so the result may be empty. A PrivateToken credential without
    a decodable ``token`` raises :class:`DecodeError`, unless another credential decodes.
    """
    if len(value) <= max_length:
        if value.startswith(_CANONICAL_HEAD) and value.endswith('"') and len(value) > _SHORTEST:
            # Straight line for exactly what build_authorization writes: strict base64 with
            # exact padding, either alphabet; anything else (white space, quotes inside,
            # another padding, an empty value) goes the general way below.
            try:
                body = value[_CANONICAL_BODY:-1].encode("ascii").translate(_URLSAFE_TO_STANDARD)
                return [binascii.a2b_base64(body, strict_mode=True)]
            except (UnicodeEncodeError, binascii.Error):
                pass
        single = _SINGLE_TOKEN.fullmatch(value)
        if single is not None:
            # The pattern admits only base64 characters and trailing '=': what b64_decode
            # would check is checked.
            return [decode_checked_body((single.group(1) or single.group(2)).rstrip("="))]
    return _parse_authorization_items(value, max_length)


def _parse_authorization_items(value: str, max_length: int) -> list[bytes]:
    """:func:`parse_authorization` the general way (RFC 9110 auth-params, any credential
    list), without the two shortcuts: what they must agree with (``tests/test_fast_paths.py``)."""
    tokens: list[bytes] = []
    error: DecodeError | None = None
    for item in parse_auth_items(value, max_length=max_length):
        if not item.is_private_token:
            continue
        raw = item.params.get("token")
        if raw is None:
            error = error or DecodeError("PrivateToken credential has no token parameter")
            continue
        try:
            tokens.append(b64_decode(raw, max_length=max_length))
        except DecodeError as e:
            error = error or e
    if not tokens and error is not None:
        raise error
    return tokens


def parse_www_authenticate(
    value: str, *, max_length: int = DEFAULT_MAX_WWW_AUTHENTICATE_LENGTH
) -> list[ChallengeParams]:
    """Every ``PrivateToken`` challenge in a WWW-Authenticate value, others skipped.

    A PrivateToken challenge whose ``challenge`` is missing or not base64 is skipped, as a
    client would; ``token-key`` and ``max-age`` are optional.
    """
    out: list[ChallengeParams] = []
    for item in parse_auth_items(value, max_length=max_length):
        if not item.is_private_token or "challenge" not in item.params:
            continue
        try:
            challenge = b64_decode(item.params["challenge"], max_length=max_length)
            key_text = item.params.get("token-key")
            token_key = b64_decode(key_text, max_length=max_length) if key_text else None
        except DecodeError:
            continue
        out.append(
            ChallengeParams(
                challenge=challenge,
                token_key=token_key,
                max_age=_parse_max_age(item.params.get("max-age")),
            )
        )
    return out


def _parse_max_age(text: str | None) -> int | None:
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    return int(text)


def challenge_pieces(token_key_b64: str, *, quoted: bool = True) -> tuple[str, str, str]:
    """``(head, middle, tail)``: ``head + challenge_b64 + middle + str(max_age) + tail`` is
    :func:`format_challenge` with a token-key and a max-age. The policy renders these once
    per key and adds only the two values per request."""
    q = '"' if quoted else ""
    return f"{AUTH_SCHEME} challenge={q}", f"{q}, token-key={q}{token_key_b64}{q}, max-age={q}", q


def format_challenge(
    challenge_b64: str, token_key_b64: str | None, max_age: int | None, *, quoted: bool = True
) -> str:
    """One ``PrivateToken`` challenge from already-encoded values."""
    if token_key_b64 is not None and max_age is not None:
        head, middle, tail = challenge_pieces(token_key_b64, quoted=quoted)
        return f"{head}{challenge_b64}{middle}{max_age}{tail}"
    q = '"' if quoted else ""
    parts = [f"{AUTH_SCHEME} challenge={q}{challenge_b64}{q}"]
    if token_key_b64 is not None:
        parts.append(f"token-key={q}{token_key_b64}{q}")
    if max_age is not None:
        parts.append(f"max-age={q}{max_age}{q}")
    return ", ".join(parts)


def build_www_authenticate(challenges: Iterable[ChallengeParams], *, quoted: bool = True) -> str:
    """A WWW-Authenticate value holding one PrivateToken challenge per item, in order.

    Values are base64url with padding, quoted unless ``quoted`` is false.
    """
    rendered: list[str] = []
    for c in challenges:
        if c.max_age is not None and c.max_age < 0:
            raise ValueError("max_age must be non-negative")
        key = b64url_encode(c.token_key) if c.token_key is not None else None
        rendered.append(format_challenge(b64url_encode(c.challenge), key, c.max_age, quoted=quoted))
    if not rendered:
        raise ValueError("at least one challenge is needed")
    return ", ".join(rendered)


CACHE_CONTROL = "Cache-Control"
#: Directives a response passed on a protected route loses: they let shared caches store it.
_SHARED_CACHE_DIRECTIVES = frozenset({"public", "private", "s-maxage"})


def private_cache_control(existing: str | None) -> str:
    """The ``Cache-Control`` value of a response passed on a protected route.

    ``private`` (RFC 9111 §5.2.2.7) is added so no shared cache hands the response to a
    client that has no token; ``public``, ``s-maxage`` and a field-qualified ``private``
    (which lets shared caches store the rest) give way to it. A stronger value stays as it
    is: ``no-store``, or a bare ``private`` without ``public``.
    """
    if not existing or not existing.strip():
        return "private"
    parts = [p.strip() for p in existing.split(",")]
    parts = [p for p in parts if p]
    names = [p.partition("=")[0].strip().lower() for p in parts]
    if "no-store" in names:
        return existing
    bare_private = any(p.lower() == "private" for p in parts)
    if bare_private and "public" not in names and "s-maxage" not in names:
        return existing
    kept = [p for p, n in zip(parts, names, strict=True) if n not in _SHARED_CACHE_DIRECTIVES]
    return ", ".join(("private", *kept))


def build_authorization(token: bytes, *, quoted: bool = True) -> str:
    """An Authorization value carrying one token."""
    q = '"' if quoted else ""
    return f"{AUTH_SCHEME} token={q}{b64url_encode(token)}{q}"


__all__ = [
    "AUTHORIZATION",
    "AUTH_SCHEME",
    "CACHE_CONTROL",
    "DEFAULT_MAX_AUTHORIZATION_LENGTH",
    "WWW_AUTHENTICATE",
    "AuthItem",
    "ChallengeParams",
    "build_authorization",
    "build_www_authenticate",
    "challenge_pieces",
    "format_challenge",
    "parse_auth_items",
    "parse_authorization",
    "parse_www_authenticate",
    "private_cache_control",
]
