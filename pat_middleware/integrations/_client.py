"""The client side shared by :mod:`.httpx_auth`, :mod:`.requests_auth` and the pytest plugin:
which challenge to answer, its max-age, and the cookies a retry must carry. Imports no HTTP
client (the pytest plugin uses it with a framework's own test client).

A client answers a ``401`` whose ``WWW-Authenticate`` holds ``PrivateToken`` challenges
(RFC 9577 §2.1) with one token from *its* issuer: the challenge whose ``issuer_name`` is that
issuer's name, of a token type this package can obtain, with a ``token-key`` of that type. A
challenge carries ``max-age`` (RFC 9577 §2.1.2): a token obtained after it ran out is not
sent. The retry carries the cookies the 401 set, since a per-session challenge is only
redeemable with the session cookie that came with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..core.headers import ChallengeParams, parse_www_authenticate
from ..core.keys import PublishedKey
from ..core.wire import TOKEN_TYPE_BLIND_RSA, TOKEN_TYPE_VOPRF, TokenChallenge
from ..errors import ClientAuthError, DecodeError, PrivateTokenError
from ..tokens.registry import default_registry

if TYPE_CHECKING:
    from ..issuer.protocol import Issuer

UNAUTHORIZED = 401
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _loader(token_type: int) -> Callable[[bytes], PublishedKey]:
    entry = default_registry()[token_type]
    return lambda raw: entry.load_public_key(raw, allow_4096=True)


#: How to read a challenge's ``token-key`` for each token type the issuer client can obtain
#: (:func:`pat_middleware.issuer.client.fetch_token`: Blind RSA and VOPRF), through the
#: token-type registry.
KEY_LOADERS: dict[int, Callable[[bytes], PublishedKey]] = {
    TOKEN_TYPE_BLIND_RSA: _loader(TOKEN_TYPE_BLIND_RSA),
    TOKEN_TYPE_VOPRF: _loader(TOKEN_TYPE_VOPRF),
}


@dataclass(frozen=True, slots=True)
class Answer:
    """The challenge a client answers: its decoded form, the issuer key it names, its
    max-age, and when it was received (``time.monotonic``)."""

    challenge: TokenChallenge
    key: PublishedKey
    max_age: int | None
    received: float

    def remaining(self, now: float | None = None) -> float | None:
        """Seconds left before the origin stops accepting this challenge (None: no max-age)."""
        if self.max_age is None:
            return None
        return self.max_age - ((time.monotonic() if now is None else now) - self.received)

    def check_fresh(self, now: float | None = None) -> None:
        """Raise :class:`ClientAuthError` once max-age has run out."""
        left = self.remaining(now)
        if left is not None and left <= 0:
            raise ClientAuthError(
                f"the challenge's max-age ({self.max_age} s) ran out before a token was issued"
            )


def issuer_name_from_url(url: str) -> str:
    """The issuer name challenges carry for the issuer at ``url``: its host, with the port
    when it is not the scheme's default (``https://127.0.0.1:8443/...`` is
    ``127.0.0.1:8443``). A bare ``host[:port]`` is read as https, as the issuer client does."""
    parts = urlsplit(url if "://" in url else "https://" + url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError as e:
        raise ClientAuthError(f"issuer URL {url!r}: {e}") from e
    if not host:
        raise ClientAuthError(f"issuer URL {url!r} has no host")
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme):
        return host
    return f"{host}:{port}"


def has_private_token_challenge(status: int, www_authenticate: Iterable[str]) -> bool:
    """True for a 401 whose ``WWW-Authenticate`` values hold a ``PrivateToken`` challenge."""
    if status != UNAUTHORIZED:
        return False
    return any(_parse(value) for value in www_authenticate)


def ours_to_answer(authorized: bool, status: int, www_authenticate: Iterable[str]) -> bool:
    """Whether a client auth answers this response: a 401 with ``PrivateToken`` challenges
    to a request that carried no ``Authorization`` (one that did is the caller's own
    authentication, or already our retry: never a second one)."""
    return not authorized and has_private_token_challenge(status, www_authenticate)


def located(error: ClientAuthError, status: int, url: str) -> ClientAuthError:
    """``error`` naming the challenged response it could not answer."""
    return ClientAuthError(error.message, status=status, url=url)


def choose_challenge(
    www_authenticate: Iterable[str],
    issuer_name: str,
    *,
    token_types: Iterable[int] | None = None,
    now: float | None = None,
) -> Answer:
    """The first challenge in the ``WWW-Authenticate`` values that names ``issuer_name``
    (case-insensitively, as host names compare) and a token type we can obtain (of
    ``token_types``, when given). :class:`ClientAuthError` says what was offered
    instead."""
    wanted = issuer_name.lower()
    allowed = set(KEY_LOADERS) if token_types is None else set(token_types) & set(KEY_LOADERS)
    offered: list[str] = []
    problems: list[str] = []
    for value in www_authenticate:
        for params in _parse(value):
            try:
                challenge = TokenChallenge.from_bytes(params.challenge)
            except DecodeError as e:
                problems.append(f"undecodable challenge ({e})")
                continue
            offered.append(f"{challenge.issuer_name} (type {challenge.token_type})")
            if challenge.issuer_name.lower() != wanted:
                continue
            if challenge.token_type not in allowed:
                problems.append(f"type {challenge.token_type} is not one we can obtain")
                continue
            if params.token_key is None:
                problems.append("the challenge has no token-key")
                continue
            try:
                key = KEY_LOADERS[challenge.token_type](params.token_key)
            except DecodeError as e:
                problems.append(f"token-key: {e}")
                continue
            received = time.monotonic() if now is None else now
            return Answer(challenge, key, params.max_age, received)
    if not offered and not problems:
        raise ClientAuthError("the response holds no PrivateToken challenge")
    message = f"no PrivateToken challenge for issuer {issuer_name!r} that we can answer"
    if offered:
        message += "; the origin offered " + ", ".join(dict.fromkeys(offered))
    if problems:
        message += "; " + "; ".join(dict.fromkeys(problems))
    raise ClientAuthError(message)


def _parse(value: str) -> list[ChallengeParams]:
    try:
        return list(parse_www_authenticate(value))
    except DecodeError:
        return []


def issue_in_process(issuer: Issuer, answer: Answer) -> bytes:
    """A token for ``answer`` from an in-process :class:`~pat_middleware.issuer.Issuer`
    (no HTTP): both sides of issuance run here. The issuer must hold the challenge's key."""
    from ..issuer.protocol import issue_token_locally

    held = {key.token_key_id for key in issuer.public_keys}
    if answer.key.token_key_id not in held:
        raise ClientAuthError(
            f"issuer {issuer.name!r} does not hold the challenge's token-key (another key?)"
        )
    try:
        return issue_token_locally(issuer, answer.challenge, answer.key).to_bytes()
    except PrivateTokenError as e:
        raise ClientAuthError(f"issuer {issuer.name!r} could not issue: {e}") from e


def set_cookie_names(set_cookie: Iterable[str]) -> set[str]:
    """The cookie names ``Set-Cookie`` values set (or delete)."""
    names: set[str] = set()
    for value in set_cookie:
        name = value.split(";", 1)[0].split("=", 1)[0].strip()
        if name:
            names.add(name)
    return names


def merge_cookie_header(existing: str | None, replaced: set[str], fresh: str | None) -> str | None:
    """The ``Cookie`` value a retry sends: ``existing`` without the cookies the 401 set or
    deleted (``replaced``), then ``fresh`` (the 401's cookies that the client's jar lets
    this request carry: domain, path and Secure already checked)."""
    kept = [
        pair.strip()
        for pair in (existing or "").split(";")
        if pair.strip() and pair.split("=", 1)[0].strip() not in replaced
    ]
    if fresh:
        kept.extend(pair.strip() for pair in fresh.split(";") if pair.strip())
    return "; ".join(kept) or None


__all__ = [
    "KEY_LOADERS",
    "Answer",
    "ClientAuthError",
    "choose_challenge",
    "has_private_token_challenge",
    "issue_in_process",
    "issuer_name_from_url",
    "located",
    "merge_cookie_header",
    "ours_to_answer",
    "set_cookie_names",
]
