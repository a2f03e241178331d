"""Items 1 and 2: the verification core against raw RSA-PSS, and 401 challenges by hand."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time
from typing import Any

from itsdangerous import TimestampSigner

from pat_middleware.core.headers import parse_authorization
from pat_middleware.core.verify import verify_token
from pat_middleware.policy import Outcome, Policy, RequestInfo
from pat_middleware.policy.contexts import ContextMode
from pat_middleware.stores.memory import MemoryReplayStore

from .common import (
    ISSUER,
    NONE_MODE,
    ORIGIN,
    PSS,
    SHA384,
    Issuer,
    Options,
    Result,
    Row,
    authorizations,
    paired,
    session_challenge,
)

_U64 = struct.Struct("!Q")


_NONE_NOTE = (
    "Policy.evaluate with a fresh token per call: Authorization parse, type, key lookup, "
    "length, challenge digest (constant-time), RSA-PSS, one spend on the memory "
    "store; no cookies. Raw: `RSAPublicKey.verify(authenticator, input, PSS(MGF1(SHA384), "
    "48), SHA384)` on the same tokens."
)
_SESSION_NOTE = (
    "as above plus the session cookie check, context derivation for the live windows, and "
    "the verified-session cookie signed for the response."
)


def verification(issuer: Issuer, opts: Options) -> list[Result]:
    """Item 1: Policy.evaluate with a fresh token per call against the bare verify call."""
    none = Row(
        "1",
        "verification core, `none` mode",
        "Policy.evaluate",
        "raw verify",
        target=0.85,
        target_text=">= 0.85",
        note=_NONE_NOTE,
    )
    session = Row(
        "1",
        "verification core, per-session mode, default settings",
        "Policy.evaluate",
        "raw verify",
        target=0.65,
        target_text=">= 0.65",
        note=_SESSION_NOTE,
    )
    return [
        _verification(issuer, opts, none, NONE_MODE),
        _steps(issuer, opts),
        _verification(issuer, opts, session, {}),
    ]


def _steps(issuer: Issuer, opts: Options) -> Row:
    """The steps item 1 names, called directly: what the policy's glue costs on top."""
    row = Row(
        "1",
        "verification core, the named steps only",
        "parse + verify_token + spend",
        "raw verify",
        note=(
            "no target (the row above is the figure): `parse_authorization`, `verify_token` "
            "(type, key lookup, length, digest, RSA-PSS) and `MemoryReplayStore.spend` "
            "called in a loop, without `Policy.evaluate`'s path check, decision and report."
        ),
    )
    setup = Policy(issuer.settings(**NONE_MODE))
    challenge = setup.templates[0][0].challenge(b"")
    count = (6 if opts.quick else 60) * _CHUNK
    tokens = issuer.mint(challenge, count)
    headers = authorizations(tokens)
    split = [(t[98:], t[:98]) for t in tokens]
    ring = setup.keys
    accepted = (challenge,)
    verify = issuer.key.public_key.verify
    store = [MemoryReplayStore()]

    def new_round() -> None:
        store[0] = MemoryReplayStore()

    def ours(chunk: int) -> None:
        spend = store[0].spend
        for header in headers[chunk * _CHUNK : (chunk + 1) * _CHUNK]:
            for raw in parse_authorization(header):
                result = verify_token(raw, keys=ring, challenges=accepted)
                if not spend(b"n" + result.nonce, 60.0):
                    raise AssertionError("a fresh token was seen as spent")

    def raw(chunk: int) -> None:
        for authenticator, token_input in split[chunk * _CHUNK : (chunk + 1) * _CHUNK]:
            verify(authenticator, token_input, PSS, SHA384)

    return paired(opts.rounds, count // _CHUNK, ours, raw, _CHUNK, row, new_round)


_CHUNK = 50


def _verification(issuer: Issuer, opts: Options, row: Row, overrides: dict[str, Any]) -> Row:
    chunks = 6 if opts.quick else 60
    count = chunks * _CHUNK
    # One policy mints the session and challenge and judges the tokens; each round first
    # forgets their nonces, so every call spends a new one. (A fresh policy would have a
    # fresh store, whose epoch no longer matches the challenge's context.)
    setup = Policy(issuer.settings(**overrides))
    if setup.mode is ContextMode.NONE:
        cookie, challenge = None, setup.templates[0][0].challenge(b"")
    else:
        cookie, challenge = session_challenge(setup)
    tokens = issuer.mint(challenge, count)
    requests = [
        RequestInfo("GET", "/protected", authorization=a, cookie=cookie)
        for a in authorizations(tokens)
    ]
    split = [(t[98:], t[:98]) for t in tokens]
    verify = issuer.key.public_key.verify

    def new_round() -> None:
        store = setup.store
        if not isinstance(store, MemoryReplayStore):
            raise AssertionError("the verification rows run on the memory store")
        store.clear()

    def ours(chunk: int) -> None:
        evaluate = setup.evaluate
        for request in requests[chunk * _CHUNK : (chunk + 1) * _CHUNK]:
            if evaluate(request).outcome is not Outcome.PASS:
                raise AssertionError("a valid token was refused")

    def raw(chunk: int) -> None:
        for authenticator, token_input in split[chunk * _CHUNK : (chunk + 1) * _CHUNK]:
            verify(authenticator, token_input, PSS, SHA384)

    return paired(opts.rounds, chunks, ours, raw, _CHUNK, row, new_round)


def challenges(issuer: Issuer, opts: Options) -> list[Result]:
    """Item 2: per-session 401s from Policy.evaluate against the same bytes built by hand."""
    now = time.time()
    policy = Policy(issuer.settings(), clock=lambda: now)
    cookie, _ = session_challenge(policy)
    request = RequestInfo("GET", "/protected", cookie=cookie)
    settings = policy.settings
    decision = policy.evaluate(request)
    assert decision.status == 401

    # By hand: the same derivations a hand-written origin would do, from the same secret
    # (and, with a per-process store, the store's epoch folded into the context key).
    secret = settings.secret
    context_key = hmac.digest(secret, b"pat-middleware/v1/redemption-context", "sha256")
    epoch = policy.store.epoch if isinstance(policy.store, MemoryReplayStore) else b""
    if epoch:
        context_key = hmac.digest(context_key, b"pat-middleware/v1/store-epoch/" + epoch, "sha256")
    cookie_key = hmac.digest(secret, b"pat-middleware/v1/cookies", "sha256")
    signer = TimestampSigner(
        cookie_key, salt="pat-middleware/session", digest_method=hashlib.sha256
    )
    cookie_value = cookie.split("=", 1)[1]
    issuer_name = ISSUER.encode()
    origin = ORIGIN.encode()
    prefix = b"\x00\x02" + struct.pack("!H", len(issuer_name)) + issuer_name + b"\x20"
    suffix = struct.pack("!H", len(origin)) + origin
    token_key = issuer.key.token_key
    window_seconds = -(-settings.max_age // 4)
    body = settings.challenge_body.encode()
    content_type = settings.challenge_content_type

    def by_hand(session_id: bytes) -> tuple[int, tuple[tuple[str, str], ...], bytes]:
        window = int(now // window_seconds)
        context = hmac.digest(context_key, session_id + _U64.pack(window), "sha256")
        raw = prefix + context + suffix
        max_age = int((window + 1) * window_seconds + settings.max_age - now)
        b64 = base64.urlsafe_b64encode(raw).decode()
        header = f'PrivateToken challenge="{b64}", token-key="{token_key}", max-age="{max_age}"'
        return (
            401,
            (
                ("WWW-Authenticate", header),
                ("Content-Type", content_type),
                ("Cache-Control", "no-store"),
            ),
            body,
        )

    def session_id_of(value: str) -> bytes:
        raw = signer.unsign(value, max_age=settings.session_lifetime)
        return base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))

    known_id = session_id_of(cookie_value)
    assert by_hand(known_id) == (decision.status, decision.headers, decision.body), (
        "the hand-built 401 differs from the policy's"
    )

    repeat = 200

    def ours(_: int) -> None:
        evaluate = policy.evaluate
        for _ in range(repeat):
            evaluate(request)

    def hand_with_cookie(_: int) -> None:
        for _ in range(repeat):
            by_hand(session_id_of(cookie_value))

    def hand_bytes_only(_: int) -> None:
        for _ in range(repeat):
            by_hand(known_id)

    with_cookie = Row(
        "2",
        "401 challenge, per-session mode",
        "Policy.evaluate",
        "by hand, cookie checked",
        note=(
            "a request with a valid session cookie and no token. By hand: unsign the session "
            "cookie (itsdangerous), HMAC the context, concatenate, base64, format; the output "
            "is asserted byte-equal to the policy's. Target: a 401 costs no more than a 200 "
            "(item 3c)."
        ),
    )
    bytes_only = Row(
        "2",
        "401 challenge, per-session mode",
        "Policy.evaluate",
        "by hand, bytes only",
        note="the same with the session id already known: no cookie check by hand.",
    )
    chunks = 10 if opts.quick else 100
    return [
        paired(opts.rounds, chunks, ours, hand_with_cookie, repeat, with_cookie),
        paired(opts.rounds, chunks, ours, hand_bytes_only, repeat, bytes_only),
    ]
