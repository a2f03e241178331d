"""Each shortcut on the request path gives exactly what the general code it stands in for
gives: compiled path rules, pre-rendered challenges, the single-token Authorization match,
base64 and cookie signing through binascii, and tokens read by slicing."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import re
import secrets
from unittest import mock

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import example, given, settings
from hypothesis import strategies as st
from itsdangerous import TimestampSigner
from itsdangerous.encoding import base64_encode, int_to_bytes

from pat_middleware import IssuerKey, Token, TokenChallenge, encode_pss_spki
from pat_middleware.core import headers as headers_module
from pat_middleware.core.codec import b64url_encode
from pat_middleware.core.headers import (
    MAX_HEADER_BYTES,
    ChallengeParams,
    _parse_authorization_items,
    build_authorization,
    build_www_authenticate,
    parse_authorization,
    parse_www_authenticate,
)
from pat_middleware.core.paths import _target_path, asgi_paths, path_forms, wsgi_text
from pat_middleware.core.verify import KeyRing, TrustedKey, VerifiedToken, verify_token
from pat_middleware.errors import DecodeError, Reason, TokenError
from pat_middleware.integrations.asgi import _with_pass_headers, encode_headers
from pat_middleware.integrations.asgi import private_headers as asgi_private_headers
from pat_middleware.integrations.asgi import request_info as asgi_request_info
from pat_middleware.policy import Decision, Outcome, Policy, RequestInfo, SetCookie
from pat_middleware.policy import policy as policy_module
from pat_middleware.policy.contexts import EXPIRED_LOOKBACK_WINDOWS, ContextMode, Windows
from pat_middleware.policy.keys import token_info
from pat_middleware.policy.sessions import (
    DEFAULT_MAX_COOKIE_HEADER,
    MAX_COOKIE_VALUE,
    CookieHeader,
    cookie_value,
    parse_cookie_header,
)
from pat_middleware.policy.signals import VIA_SESSION
from pat_middleware.policy.signer import CookieSigner
from pat_middleware.settings import PathRule, Settings

from .conftest import sign_token

# ------------------------------------------------------------------------ path protection

_SEGMENTS = st.sampled_from(["", "a", "api", "admin", "x.y", "*", "?", "[ab]", "v1", "é"])
_PATHS = st.lists(_SEGMENTS, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
#: Rules are written in canonical form (settings refuse "//", "." and ".." in them).
_RULE_PATHS = st.lists(_SEGMENTS.filter(bool), max_size=4).map(lambda parts: "/" + "/".join(parts))
_RULES = st.lists(
    st.tuples(st.sampled_from(["exact:", "prefix:", "glob:", ""]), _RULE_PATHS).map("".join),
    max_size=5,
)
_METHODS = st.sampled_from(["GET", "get", "HEAD", "POST", "pOsT", "DELETE", "BREW"])


def _rule_by_rule(s: Settings, method: str, path: str) -> bool:
    """The protection rule read straight off the rule objects, for every form of the path
    (the reference)."""
    if s.protect_methods and method.upper() not in s.protect_methods:
        return False
    return any(rule.matches(form) for rule in s.protect for form in path_forms([path]))


@settings(max_examples=600, deadline=None)
@given(
    rules=_RULES,
    methods=st.lists(st.sampled_from(["GET", "POST", "DELETE"]), max_size=2),
    method=_METHODS,
    data=st.data(),
)
def test_compiled_protection_agrees_with_the_rule_objects(
    rules: list[str], methods: list[str], method: str, data: st.DataObject, issuer_key: IssuerKey
) -> None:
    # Paths near the rules' own patterns, so that matches are common, and random ones.
    patterns = [r.split(":", 1)[-1] for r in rules]
    near = st.sampled_from(patterns).flatmap(
        lambda p: st.sampled_from([p, p + "x", p + "/x", p.rstrip("*"), p[:-1] or "/"])
    )
    path = data.draw(near | _PATHS if patterns else _PATHS)
    s = Settings.from_mapping(
        {
            "issuers": [{"name": "issuer.example", "token_key": issuer_key.token_key}],
            "secret": "s" * 32,
            "protect": rules,
            "protect_methods": methods,
        }
    )
    assert s.protects(method, path) == _rule_by_rule(s, method, path)


# --------------------------------------------------------------------- challenge headers


@pytest.mark.parametrize("quoted", [True, False])
@pytest.mark.parametrize("mode", ["per-session", "none"])
def test_rendered_challenges_are_what_the_header_builder_writes(
    quoted: bool, mode: str, issuer_key: IssuerKey, other_rsa_2048: rsa.RSAPrivateKey
) -> None:
    other = IssuerKey.from_spki(encode_pss_spki(other_rsa_2048.public_key()))
    policy = Policy(
        Settings.from_mapping(
            {
                "issuers": [
                    {"name": "issuer.example", "token_key": issuer_key.token_key},
                    {"name": "second.example", "token_key": other.token_key},
                ],
                "secret": "s" * 32,
                "origin_info": ["origin.example"],
                "protect": ["/p"],
                "redemption_context": mode,
                "quoted_values": quoted,
                "allow_per_process_replay": mode == "none",
            }
        )
    )
    decision = policy.evaluate(RequestInfo("GET", "/p"))
    header = dict(decision.headers)["WWW-Authenticate"]
    parsed = parse_www_authenticate(header)
    assert [p.token_key for p in parsed] == [issuer_key.spki, other.spki]
    context = TokenChallenge.from_bytes(parsed[0].challenge).redemption_context
    assert len(context) == (0 if mode == "none" else 32)
    expected = build_www_authenticate(
        [
            ChallengeParams(
                challenge=template.encode(context),
                token_key=base64.urlsafe_b64decode(token_key),
                max_age=parsed[0].max_age,
            )
            for template, token_key in policy.templates
        ],
        quoted=quoted,
    )
    assert header == expected


# ------------------------------------------------------------------- Authorization values

_B64 = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/", max_size=24)
_SCHEMES = st.sampled_from(
    [
        "PrivateToken",
        "privatetoken",
        "PRIVATETOKEN",
        "PrivateToKen",
        "PrivateToken\u212a",
        "Basic",
        "",
    ]
)
_NAMES = st.sampled_from(["token", "TOKEN", "Token", "to\u212aen", "tokens"])


def _general(value: str, max_length: int = 2048) -> list[bytes] | str:
    """The general parser's answer, without either shortcut (the reference)."""
    try:
        return _parse_authorization_items(value, max_length)
    except DecodeError:
        return "error"


def _parsed(value: str, max_length: int = 2048) -> list[bytes] | str:
    """parse_authorization's answer, shortcuts and all."""
    try:
        return parse_authorization(value, max_length=max_length)
    except DecodeError:
        return "error"


@settings(max_examples=1500, deadline=None)
@given(
    lead=st.sampled_from(["", " ", "\t "]),
    scheme=_SCHEMES,
    gap=st.sampled_from([" ", "  ", "\t", ""]),
    name=_NAMES,
    eq=st.sampled_from(["=", " = ", "=\t"]),
    quote=st.sampled_from(['"', ""]),
    body=_B64,
    pad=st.sampled_from(["", "=", "==", "==="]),
    trail=st.sampled_from(["", " ", ",", ", Basic x"]),
)
def test_single_token_shortcut_agrees_with_the_general_parser(
    lead: str,
    scheme: str,
    gap: str,
    name: str,
    eq: str,
    quote: str,
    body: str,
    pad: str,
    trail: str,
) -> None:
    value = f"{lead}{scheme}{gap}{name}{eq}{quote}{body}{pad}{quote}{trail}"
    try:
        fast: list[bytes] | str = parse_authorization(value)
    except DecodeError:
        fast = "error"
    assert fast == _general(value)


_CANONICAL_BODIES = st.text(
    st.sampled_from('ABCQRSabz0189-_+/=" \t\n,\u00e9\u212a'), max_size=24
) | st.binary(min_size=1, max_size=400).map(lambda b: base64.urlsafe_b64encode(b).decode())


@settings(max_examples=3000, deadline=None)
@given(body=_CANONICAL_BODIES, tail=st.sampled_from(['"', '" ', "", '""', '", x']))
def test_canonical_credential_straight_line_agrees_with_the_general_parser(
    body: str, tail: str
) -> None:
    """``PrivateToken token="..."`` exactly as clients write it is decoded in a straight
    line (strict base64, exact padding); whatever it does not take goes the general way,
    and the answer is the general parser's either way."""
    value = f'PrivateToken token="{body}{tail}'
    try:
        fast: list[bytes] | str = parse_authorization(value)
    except DecodeError:
        fast = "error"
    assert fast == _general(value)


#: Pieces of a credential an attacker may vary: scheme and parameter case, white space
#: around each piece, quoting and escapes, base64 in either alphabet or both, padding of
#: every length and place, characters outside every alphabet, what follows the value.
_CRED_LEAD = st.sampled_from(["", " ", "\t", ",", ", ", "Basic x, "])
_CRED_SCHEME = st.sampled_from(["PrivateToken", "privatetoken", "PRIVATETOKEN", "Private Token"])
_CRED_GAP = st.sampled_from([" ", "  ", "\t", "", " ,"])
_CRED_NAME = st.sampled_from(["token", "Token", "TOKEN", "tokens", "challenge"])
_CRED_EQ = st.sampled_from(["=", " =", "= ", "==", ""])
_CRED_QUOTE = st.sampled_from([('"', '"'), ("", ""), ('"', ""), ("", '"'), ('"\\', '"')])
_CRED_BODY = st.one_of(
    st.binary(max_size=80).map(lambda b: base64.urlsafe_b64encode(b).decode()),
    st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode()),
    st.binary(max_size=80).map(lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")),
    st.text(st.sampled_from('AQgw09az-_+/=" \t,\\;\x0b\xa0\u00e9\u212a\u0130'), max_size=30),
)
_CRED_PAD = st.sampled_from(["", "=", "==", "===", "====", "=A", " ="])
_CRED_TAIL = st.sampled_from(
    ["", " ", "\t", ",", ', token="AAAA"', ", x=y", ", PrivateToken token=AAAA", ', Basic "x"']
)


@st.composite
def _credentials(draw: st.DrawFn) -> str:
    opening, closing = draw(_CRED_QUOTE)
    pieces = (
        draw(_CRED_LEAD),
        draw(_CRED_SCHEME),
        draw(_CRED_GAP),
        draw(_CRED_NAME),
        draw(_CRED_EQ),
        opening,
        draw(_CRED_BODY),
        draw(_CRED_PAD),
        closing,
        draw(_CRED_TAIL),
    )
    return "".join(pieces)


@settings(max_examples=4000, deadline=None)
@given(
    # One credential, or several Authorization lines as the ASGI and WSGI adapters join them.
    lines=st.lists(
        _credentials()
        | st.text(max_size=40)
        | st.builds(build_authorization, st.binary(max_size=80), quoted=st.booleans()),
        min_size=1,
        max_size=3,
    ),
    # max_length around the value's own length: the bound holds whichever way it is read.
    slack=st.sampled_from([None, -1, 0, 1]),
)
def test_credential_shortcuts_answer_what_the_general_parser_answers(
    lines: list[str], slack: int | None
) -> None:
    """For every Authorization value, ``parse_authorization`` (with the straight line for
    ``PrivateToken token="..."`` and the single-credential pattern) answers exactly what the
    general RFC 9110 reading answers: the same tokens in the same order, or a refusal."""
    value = ", ".join(lines)
    max_length = 2048 if slack is None else max(len(value) + slack, 0)
    assert _parsed(value, max_length) == _general(value, max_length)


@settings(max_examples=2000, deadline=None)
@given(token=st.binary(min_size=1, max_size=700), quoted=st.booleans())
def test_every_token_a_client_writes_takes_a_shortcut_and_reads_back(
    token: bytes, quoted: bool
) -> None:
    """What build_authorization writes is read back exactly, by the shortcuts alone (the
    general parser agrees); in the alphabet and padding of RFC 9577 and in the others a
    client may use."""
    written = build_authorization(token, quoted=quoted)
    standard = written.replace("-", "+").replace("_", "/")
    unpadded = written.rstrip('"').rstrip("=") + ('"' if quoted else "")
    for value in (written, standard, unpadded):
        with mock.patch.object(headers_module, "_parse_authorization_items") as general:
            assert parse_authorization(value) == [token]
        general.assert_not_called()
        assert _general(value) == [token]


# ------------------------------------------------------------------ base64 and signatures


@given(st.binary(max_size=600), st.booleans())
def test_b64url_encode_is_the_stdlib_encoding(data: bytes, padded: bool) -> None:
    expected = base64.urlsafe_b64encode(data).decode()
    assert b64url_encode(data, padded=padded) == (expected if padded else expected.rstrip("="))


_ASCII_NO_DOT = bytes(b % 128 if b % 128 != ord(".") else ord("-") for b in range(256))


@settings(max_examples=300)
@given(
    # Payloads are base64 text (ASCII, no '.'); clocks are after 1970.
    value=st.binary(max_size=120).map(lambda v: v.translate(_ASCII_NO_DOT)),
    now=st.integers(min_value=1, max_value=2**40),
)
def test_cookie_signatures_are_itsdangerous_bytes(value: bytes, now: int) -> None:
    """The signer's value is what TimestampSigner's public pieces make of the same payload
    and second: the timestamp text, then get_signature over ``payload.timestamp``."""
    key = b"k" * 32
    stock = TimestampSigner(key, salt="pat-middleware/session", digest_method=hashlib.sha256)
    signed = value + b"." + base64_encode(int_to_bytes(now))
    expected = signed + b"." + stock.get_signature(signed)
    ours = CookieSigner(key, "pat-middleware/session", lambda: float(now))
    assert ours.sign(value) == expected.decode("latin-1")
    assert ours.check(expected.decode("latin-1"), 0) == (value, now)


# ---------------------------------------------------------------------- verified tokens

CHALLENGE = TokenChallenge(2, "issuer.example", secrets.token_bytes(32), ("origin.example",))


def test_verified_token_reads_its_fields_from_the_bytes(
    rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    ring = KeyRing([TrustedKey("issuer.example", issuer_key)])
    nonce = secrets.token_bytes(32)
    data = sign_token(rsa_2048, issuer_key, CHALLENGE, nonce=nonce)
    result = verify_token(bytes(bytearray(data)), keys=ring, challenges=[CHALLENGE])
    token = Token.from_bytes(data, issuer_key.authenticator_length)
    assert result.token == token
    assert (result.token_type, result.nonce) == (2, nonce)
    assert result.token_key_id == token.token_key_id == issuer_key.token_key_id
    assert result.challenge_digest == CHALLENGE.digest
    assert nonce.hex() not in repr(result) and token.authenticator.hex() not in repr(result)
    assert isinstance(result, VerifiedToken)


def test_key_ring_groups_one_key_trusted_by_two_issuers(
    issuer_key: IssuerKey, other_rsa_2048: rsa.RSAPrivateKey
) -> None:
    other = IssuerKey.from_spki(encode_pss_spki(other_rsa_2048.public_key()))
    a, b, c = (
        TrustedKey("a.example", issuer_key),
        TrustedKey("b.example", other),
        TrustedKey("c.example", issuer_key),
    )
    ring = KeyRing([a, b, c, TrustedKey("A.example", issuer_key)])
    assert list(ring) == [a, b, c]
    assert ring.find_all(issuer_key.token_key_id) == (a, c)
    assert ring.find_all(other.token_key_id) == (b,)
    assert ring.find_all(b"\0" * 32) == () and ring.find(b"\0" * 32) is None


def test_key_ring_lookup_takes_bytes_like_ids_only(issuer_key: IssuerKey) -> None:
    """The dict lookup copies a bytes-like id into bytes, as the constant-time comparison
    took any buffer; it must not turn an int into that many zero bytes (``bytes(32)``) or a
    list of ints into bytes, which the comparison refused with TypeError."""
    key_id = issuer_key.token_key_id
    ring = KeyRing([TrustedKey("a.example", issuer_key)])
    for same in (bytearray(key_id), memoryview(key_id)):
        assert ring.find_all(same) == ring.find_all(key_id) != ()  # type: ignore[arg-type]
    for wrong in (32, list(key_id), key_id.hex()):
        with pytest.raises(TypeError):
            ring.find_all(wrong)  # type: ignore[arg-type]


def _plain_policy(issuer_key: IssuerKey) -> Policy:
    """Empty contexts, no verified mark: a token's own answer, nothing else."""
    return Policy(
        Settings.from_mapping(
            {
                "issuers": [{"name": "issuer.example", "token_key": issuer_key.token_key}],
                "secret": "s" * 32,
                "protect": ["/p"],
                "redemption_context": ContextMode.NONE.value,
                "verified_duration": 0,
                "allow_per_process_replay": True,
            }
        )
    )


def test_grease_tokens_alone_or_among_others_are_dropped(
    rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    """Grease tokens are skipped, alone or among others, and a real one after them passes;
    a one-byte token is not "no token" but a malformed one."""
    policy = _plain_policy(issuer_key)
    challenge = policy.templates[0][0].challenge(b"")
    good = sign_token(rsa_2048, issuer_key, challenge)
    grease = (0x02AA).to_bytes(2, "big") + b"\0" * 40  # a grease type (RFC 9577)

    def header(*tokens: bytes) -> str:
        return ", ".join(f"PrivateToken token={b64url_encode(t)}" for t in tokens)

    def judge(value: str) -> Decision:
        return policy.evaluate(RequestInfo("GET", "/p", authorization=value))

    assert judge(header(grease)).outcome is Outcome.CHALLENGE
    assert judge(header(grease, grease)).outcome is Outcome.CHALLENGE
    assert judge(header(grease, good)).allowed
    assert judge(header(b"x")).reason is Reason.MALFORMED
    assert judge(header(b"\0")).reason is Reason.MALFORMED  # not type 0x0000: too short
    assert judge(header(grease, b"x")).reason is Reason.MALFORMED


# ------------------------------------------------------------------ review: exact parity


@pytest.mark.parametrize("data", [5, 10**15, [0, 2, 1], "\x00\x02", None])
def test_verify_token_refuses_what_is_not_bytes_like(data: object, issuer_key: IssuerKey) -> None:
    """A non-bytes-like argument is a TypeError, as before: an int is not read as that many
    zero bytes (nor allocated: 10**15 would be a petabyte)."""
    ring = KeyRing([TrustedKey("issuer.example", issuer_key)])
    with pytest.raises(TypeError):
        verify_token(data, keys=ring, challenges=[CHALLENGE])  # type: ignore[arg-type]


def test_key_ids_group_by_token_type_too(
    rsa_2048: rsa.RSAPrivateKey, other_rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    """Only entries of the token's type are candidates, whatever else shares the key id:
    an issuer that trusts the key for another type cannot lend its name to this one."""
    typed_1 = dataclasses.replace(issuer_key, token_type=1)
    token = sign_token(rsa_2048, issuer_key, CHALLENGE)
    named = TokenChallenge(2, "b.example", CHALLENGE.redemption_context, CHALLENGE.origin_info)
    token_b = sign_token(rsa_2048, issuer_key, named)
    # The type-2 entry second: it is still found.
    ring = KeyRing([TrustedKey("a.example", typed_1), TrustedKey("issuer.example", issuer_key)])
    assert verify_token(token, keys=ring, challenges=[CHALLENGE]).issuer_name == "issuer.example"
    # b.example trusts the key for type 1 only: a type-2 challenge naming it is refused.
    ring = KeyRing([TrustedKey("issuer.example", issuer_key), TrustedKey("b.example", typed_1)])
    with pytest.raises(TokenError) as info:
        verify_token(token_b, keys=ring, challenges=[named])
    assert info.value.reason is Reason.CHALLENGE_MISMATCH
    # The id names a type-1 entry only: the key is unknown for a type-2 token.
    other = IssuerKey.from_spki(encode_pss_spki(other_rsa_2048.public_key()))
    ring = KeyRing([TrustedKey("issuer.example", typed_1), TrustedKey("issuer.example", other)])
    with pytest.raises(TokenError) as info:
        verify_token(token, keys=ring, challenges=[])
    assert info.value.reason is Reason.UNKNOWN_KEY
    # No type-2 key at all: the ring verifies no type-2 token.
    with pytest.raises(TokenError) as info:
        verify_token(token, keys=KeyRing([TrustedKey("issuer.example", typed_1)]), challenges=[])
    assert info.value.reason is Reason.UNSUPPORTED_TYPE


def test_verified_token_is_frozen_and_compares_by_value(
    rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    ring = KeyRing([TrustedKey("issuer.example", issuer_key)])
    data = sign_token(rsa_2048, issuer_key, CHALLENGE)
    first = verify_token(data, keys=ring, challenges=[CHALLENGE])
    again = verify_token(bytearray(data), keys=ring, challenges=[CHALLENGE])  # type: ignore[arg-type]
    assert first == again and hash(first) == hash(again)
    assert first != verify_token(
        sign_token(rsa_2048, issuer_key, CHALLENGE), keys=ring, challenges=[CHALLENGE]
    )
    for name in ("issuer_name", "challenge", "key", "_data", "nonce", "token"):
        with pytest.raises(AttributeError):
            setattr(first, name, "x")
    assert first.issuer_name == "issuer.example" and first.token.to_bytes() == data


def test_compiled_protection_with_rules_and_methods_built_by_hand(issuer_key: IssuerKey) -> None:
    """Settings built directly (not through from_mapping) get the same answers too: a rule
    of another kind matches as a glob, methods not upper-cased never match."""
    base = Settings.from_mapping(
        {
            "issuers": [{"name": "issuer.example", "token_key": issuer_key.token_key}],
            "secret": "s" * 32,
        }
    )
    s = dataclasses.replace(
        base,
        protect=(PathRule("Exact", "/a*"), PathRule("glob", "/g/*")),
        protect_methods=frozenset({"post", "GET"}),
    )
    for method in ("GET", "get", "post", "POST", "PUT"):
        for path in ("/a", "/ab", "/g/x", "/h"):
            assert s.protects(method, path) == _rule_by_rule(s, method, path), (method, path)


def test_a_key_added_to_the_live_ring_passes_instead_of_failing(
    rsa_2048: rsa.RSAPrivateKey, other_rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    """``policy.keys`` is the live ring: a key added to it verifies and passes (no 500)."""
    other = IssuerKey.from_spki(encode_pss_spki(other_rsa_2048.public_key()))
    policy = _plain_policy(issuer_key)
    policy.keys.add(TrustedKey("issuer.example", other))
    token = sign_token(other_rsa_2048, other, policy.templates[0][0].challenge(b""))
    decision = policy.evaluate(
        RequestInfo("GET", "/p", authorization=f"PrivateToken token={b64url_encode(token)}")
    )
    assert decision.allowed and decision.token is not None
    assert decision.token.token_key_id == other.token_key_id.hex()


# ------------------------------------------------------------------------- challenge windows


@settings(max_examples=500, deadline=None)
@given(
    max_age=st.integers(min_value=1, max_value=3600),
    now=st.floats(min_value=0, max_value=4e9, allow_nan=False),
)
def test_live_and_expired_windows_follow_the_deadlines(max_age: int, now: float) -> None:
    """Live windows are exactly those whose deadline is not past, newest first and
    contiguous; the expired ones are the lookback windows right below them."""
    windows = Windows.for_max_age(max_age)
    live = list(windows.live(now))
    assert live[0] == windows.index(now)
    assert live == list(range(live[0], live[-1] - 1, -1))
    assert all(windows.deadline(w) >= now for w in live)
    assert windows.deadline(live[-1] - 1) < now
    assert len(live) <= max_age // windows.window_seconds + 2
    expired = list(windows.expired(now))
    assert expired == [live[-1] - 1 - i for i in range(EXPIRED_LOOKBACK_WINDOWS)]


# ------------------------------------------------------------------------- cookie headers

_COOKIE_NAMES = st.sampled_from(
    ["pat_session", "pat_verified", "pat_session_c", "__Host-pat_session", "a", "é"]
)
_COOKIE_PARTS = st.one_of(
    st.tuples(
        st.sampled_from(["", " ", "\t", "\u00a0", "x", " pat_"]),
        _COOKIE_NAMES,
        st.sampled_from(["", " ", "\u2003"]),
        st.sampled_from(["=", "", "=="]),
        st.sampled_from(["", " ", '"']),
        st.text(st.sampled_from('ab.=";\\ ' + "\u00e9"), max_size=8)
        | st.sampled_from(["v" * 512, "v" * 513, '"' + "v" * 512 + '"', '"', '""']),
        st.sampled_from(["", " ", '"']),
    ).map("".join),
    st.text(max_size=12),
)
_COOKIE_HEADERS = st.lists(_COOKIE_PARTS, max_size=8).map(";".join) | st.lists(
    _COOKIE_PARTS, max_size=8
).map("; ".join)


@settings(max_examples=2000, deadline=None)
@given(header=_COOKIE_HEADERS | st.none(), name=_COOKIE_NAMES | st.text(max_size=4))
def test_cookie_scan_agrees_with_the_whole_header_parse(header: str | None, name: str) -> None:
    """One cookie found by the bounded scan is the one the dict of every cookie holds: first
    occurrence wins, quotes and white space as the parser treats them, long values
    skipped (a later occurrence may then win), oversized headers ignored whole."""
    expected = parse_cookie_header(header).get(name)
    assert cookie_value(header, name) == expected
    jar = CookieHeader(header)
    assert jar.get(name) == expected
    assert (name in jar) == (expected is not None)
    assert dict(jar) == dict(parse_cookie_header(header))


#: Our names and names that contain, extend or end like them: a scan by name must not
#: take one for another.
_NEAR_NAMES = [
    "__Host-pat_session",
    "__Host-pat_verified",
    "__Host-pat_session_c",
    "x__Host-pat_session",
    "__host-pat_session",
    "__Host-pat_sessio",
    "pat_session",
    "pat_session_c",
    "__Host-pat_session=__Host-pat_session",
    "",
]
#: HTTP's white space, and what Python's str.strip also takes for it (latin-1 range).
_COOKIE_WS = st.sampled_from(["", " ", "\t", "  ", "\xa0", "\x85", "\x0b", "\x1f", "\r"])
_LATIN_1 = st.characters(max_codepoint=0xFF)
_COOKIE_VALUE = st.one_of(
    st.text(st.sampled_from('aZ09.-_=";\\ \t\xa0\xe9'), max_size=10),
    st.sampled_from(["", '"', '""', '"v.1.s"', "v" * 512, "v" * 513, '"' + "v" * 511 + '"']),
)


@st.composite
def _cookie_lines(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.sampled_from(_NEAR_NAMES) | st.text(_LATIN_1, max_size=6))
        pair = [draw(_COOKIE_WS), name, draw(_COOKIE_WS), draw(st.sampled_from(["=", "", "=="]))]
        parts.append("".join([*pair, draw(_COOKIE_WS), draw(_COOKIE_VALUE), draw(_COOKIE_WS)]))
    return draw(st.sampled_from(["; ", ";", " ;", ";;"])).join(parts)


_COOKIE_PAIR = re.compile(r"[ \t]*([^;=]*?)[ \t]*=[ \t]*([^;]*?)[ \t]*(?:;|\Z)")


def _rfc6265_reading(header: str, name: str) -> str | None:
    """The cookie ``name`` as RFC 6265 §5.4 has a server read the pairs a browser sends (the
    reference): ``;``-separated, split at the first ``=``, only spaces and tabs trimmed, the
    first pair of that name counts; plus this library's rules: one pair of surrounding
    quotes dropped, a value over MAX_COOKIE_VALUE skipped, a header over the bound ignored."""
    if len(header) > DEFAULT_MAX_COOKIE_HEADER:
        return None
    for part in header.split(";"):
        pair = _COOKIE_PAIR.fullmatch(part + ";")
        if pair is None or pair.group(1) != name or not name:
            continue
        value = pair.group(2)
        if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
            value = value[1:-1]
        if len(value) <= MAX_COOKIE_VALUE:
            return value
    return None


@settings(max_examples=3000, deadline=None)
@given(lines=st.lists(_cookie_lines(), min_size=1, max_size=3), name=st.sampled_from(_NEAR_NAMES))
def test_cookie_scan_reads_each_name_as_a_server_per_rfc_6265_would(
    lines: list[str], name: str
) -> None:
    """The scan by name, the whole-header parse and an RFC 6265 reading agree on every
    header, including Cookie lines split as HTTP/2 sends them and joined by the adapter:
    near names are never taken for ours, only spaces and tabs are white space (0xA0, 0x85
    and control characters stay part of a name, as the browser kept them), first wins."""
    scope = {"type": "http", "headers": [(b"cookie", line.encode("latin-1")) for line in lines]}
    header = asgi_request_info(scope).cookie
    if header is None:
        return
    expected = _rfc6265_reading(header, name)
    assert cookie_value(header, name) == expected
    assert parse_cookie_header(header).get(name) == expected
    assert CookieHeader(header).get(name) == expected


def test_cookie_scan_ignores_oversized_headers_whole() -> None:
    header = "pat_session=abc; " + "x=" + "y" * DEFAULT_MAX_COOKIE_HEADER
    assert cookie_value(header, "pat_session") is None
    assert cookie_value(header, "pat_session", max_length=len(header)) == "abc"


# ------------------------------------------------------------------------ prebuilt passes


def _cookie_pairs(decision: Decision) -> str:
    return "; ".join(v.split(";", 1)[0] for k, v in decision.header_lines() if k == "Set-Cookie")


def test_prebuilt_passes_are_the_decisions_they_stand_for(
    rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    """A pass that adds no cookie is built once (per key, and for the verified session)
    and answered every time: equal to the decision built from the request's own verdict,
    and the same whichever way the policy is called."""
    policy = _plain_policy(issuer_key)
    challenge = policy.templates[0][0].challenge(b"")
    proof = token_info(TrustedKey("issuer.example", issuer_key))

    def carrying(token: bytes, cookie: str | None = None) -> RequestInfo:
        value = f"PrivateToken token={b64url_encode(token)}"
        return RequestInfo("GET", "/p", cookie=cookie, authorization=value)

    for _ in range(2):
        request = carrying(sign_token(rsa_2048, issuer_key, challenge))
        assert policy.evaluate(request) == Decision(Outcome.PASS, token=proof)
    request = carrying(sign_token(rsa_2048, issuer_key, challenge))
    assert asyncio.run(policy.evaluate_async(request)) == Decision(Outcome.PASS, token=proof)
    assert asyncio.run(policy.evaluate_async(request)).reason is Reason.REPLAYED

    session = Policy(
        Settings.from_mapping(
            {
                "issuers": [{"name": "issuer.example", "token_key": issuer_key.token_key}],
                "secret": "s" * 32,
                "protect": ["/p"],
            }
        )
    )
    first = session.evaluate(RequestInfo("GET", "/p"))
    cookie = _cookie_pairs(first)
    header = dict(first.headers)["WWW-Authenticate"]
    per_session = TokenChallenge.from_bytes(parse_www_authenticate(header)[0].challenge)
    token = sign_token(rsa_2048, issuer_key, per_session)
    passed = session.evaluate(carrying(token, cookie))
    assert passed.outcome is Outcome.PASS and passed.token == proof and passed.cookies
    both = f"{cookie}; {_cookie_pairs(passed)}"
    expected = Decision(Outcome.SESSION, token=VIA_SESSION)
    assert session.evaluate(RequestInfo("GET", "/p", cookie=both)) == expected
    assert asyncio.run(session.evaluate_async(RequestInfo("GET", "/p", cookie=both))) == expected


def _protect_settings(
    issuer_key: IssuerKey, rules: list[str], methods: tuple[str, ...] = ()
) -> Settings:
    return Settings.from_mapping(
        {
            "issuers": [{"name": "issuer.example", "token_key": issuer_key.token_key}],
            "secret": "s" * 32,
            "protect": rules,
            "protect_methods": list(methods),
        }
    )


def _memo_agrees_with_rules(
    s: Settings, calls: list[tuple[str, tuple[str, ...]]], *, size: int
) -> dict[tuple[str, ...], bool]:
    """Asks a policy's memo (of ``size`` entries) and the settings about every call, twice
    over; asserts they answer alike, a refusal included. Returns what the memo kept."""
    policy = Policy(s)
    policy_module.PROTECTS_CACHE_SIZE, saved = size, policy_module.PROTECTS_CACHE_SIZE
    try:
        for _ in range(2):
            for method, paths in calls:
                try:
                    expected: bool | str = s.protects(method, *paths)
                except DecodeError:
                    expected = "bad path"
                try:
                    answer: bool | str = policy.protects(method, *paths)
                except DecodeError:
                    answer = "bad path"
                assert answer == expected, (method, paths)
    finally:
        policy_module.PROTECTS_CACHE_SIZE = saved
    return policy._protects._known


@settings(max_examples=300, deadline=None)
@given(
    rules=_RULES,
    calls=st.lists(st.tuples(_METHODS, st.lists(_PATHS, min_size=1, max_size=3)), max_size=40),
)
def test_remembered_protect_answers_are_the_settings_answers(
    rules: list[str], calls: list[tuple[str, list[str]]], issuer_key: IssuerKey
) -> None:
    """The policy remembers what the compiled rules answered per method and path spellings
    (and forgets it all when full): every answer is still the rules' own."""
    _memo_agrees_with_rules(
        _protect_settings(issuer_key, rules), [(m, tuple(p)) for m, p in calls], size=7
    )


#: Spellings of one resource a client may choose: case, percent-encoding (of letters, of
#: '/', invalid UTF-8), dot segments, repeated and trailing slashes, over-long paths.
_SPELLED_SEGMENTS = st.sampled_from(
    [
        *("admin", "Admin", "ADMIN", "%61dmin", "%2561dmin", "adm%69n", "a", ".", "..", ""),
        *("%2f", "%2F", "%ff", "%c3%a9", "\u00e9", "api", "v1", "*", "x" * 300),
    ]
)
_SPELLED_PATHS = st.lists(_SPELLED_SEGMENTS, min_size=1, max_size=4).map(
    lambda parts: "/" + "/".join(parts)
)


@st.composite
def _asgi_scopes(draw: st.DrawFn) -> dict[str, object]:
    path = draw(_SPELLED_PATHS)
    raw = draw(st.sampled_from(["same", "none", "other", "query"]))
    scope: dict[str, object] = {"type": "http", "path": path}
    if raw == "same":
        scope["raw_path"] = path.encode("utf-8")
    elif raw == "other":
        scope["raw_path"] = draw(_SPELLED_PATHS).encode("utf-8")
    elif raw == "query":
        scope["raw_path"] = (path + "?x=/admin").encode("utf-8")
    scope["root_path"] = draw(st.sampled_from(["", "/", "/app", "/Admin", "/a"]))
    return scope


@settings(max_examples=300, deadline=None)
@given(
    rules=_RULES.map(lambda rules: [*rules, "prefix:/admin", "exact:/app/api"]),
    methods=st.sampled_from([[], ["GET"], ["post", "DELETE"]]),
    calls=st.lists(
        st.tuples(_METHODS | st.sampled_from(["X" * 40, "G" * 33]), _asgi_scopes()),
        max_size=30,
    ),
)
# One path, read with and without its mount prefix, and under a raw_path that differs:
# an answer kept for one reading must not be given for another.
@example(
    rules=["prefix:/admin", "exact:/app/api"],
    methods=[],
    calls=[
        ("GET", {"path": "/api", "root_path": "/app"}),
        ("GET", {"path": "/api", "root_path": ""}),
        ("GET", {"path": "/x", "raw_path": b"/%61dmin"}),
        ("GET", {"path": "/x", "raw_path": b"/x"}),
    ],
)
def test_protect_memo_answers_every_asgi_spelling_as_the_rules_do(
    rules: list[str],
    methods: list[str],
    calls: list[tuple[str, dict[str, object]]],
    issuer_key: IssuerKey,
) -> None:
    """The memo, asked (twice, in order, on a memo small enough to be emptied on the way)
    about requests whose path is spelled every way a client can (case, percent-encoding,
    dot segments, slashes, raw_path unlike path, a query, root_path), answers what the
    rules answer for those very spellings, and refuses the paths that do not decode as
    they do. What it keeps is bounded: never more entries than its size, no long method
    or path."""
    spelled = []
    for method, scope in calls:
        try:
            spelled.append((method, asgi_paths(scope)))
        except DecodeError:
            continue  # the middleware answers 400 before asking
    s = _protect_settings(issuer_key, rules, tuple(methods))
    known = _memo_agrees_with_rules(s, spelled, size=5)
    assert len(known) <= 5
    assert all(len(key[0]) <= policy_module.PROTECTS_CACHE_METHOD for key in known)
    assert all(len(part) <= policy_module.PROTECTS_CACHE_PATH for k in known for part in k)


def _asgi_paths_read_in_full(scope: dict[str, object], strict: bool) -> tuple[str, ...]:
    """asgi_paths as it read raw_path before the shortcut (the reference)."""
    path = scope.get("path")
    if not isinstance(path, str):
        path = "/"
    elif not path.startswith("/"):
        path = _target_path(path)
    spellings = [path]
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        text = _target_path(wsgi_text(raw.decode("latin-1"), strict=strict))
        if text != path:
            spellings.append(text)
    root = scope.get("root_path")
    if isinstance(root, str) and root and root != "/":
        if path.startswith(root):
            spellings.append(path[len(root) :] or "/")
        else:
            spellings.append(root.rstrip("/") + path)
    return tuple(spellings)


_PATH_TEXT = st.text(st.sampled_from("/ab.%2f?#\u00e9:"), max_size=10)


@settings(max_examples=2000, deadline=None)
@given(
    path=_PATH_TEXT,
    raw=st.one_of(
        st.none(),
        _PATH_TEXT.map(lambda t: t.encode("utf-8")),
        st.binary(max_size=8),
        st.sampled_from([b"/ab", b"/a\xe9", b"/a?b", b"/a#b"]),
    ),
    same=st.sampled_from([None, "utf-8", "latin-1"]),
    root=st.sampled_from(["", "/", "/ab", "/a"]),
    strict=st.booleans(),
)
def test_asgi_paths_shortcut_agrees_with_reading_raw_path_in_full(
    path: str, raw: bytes | None, same: str | None, root: str, strict: bool
) -> None:
    if same:  # raw_path is the path's own bytes (a latin-1 path may be read as itself)
        raw = path.encode(same)
    scope: dict[str, object] = {"path": path, "raw_path": raw, "root_path": root}
    try:
        expected: tuple[str, ...] | str = _asgi_paths_read_in_full(scope, strict)
    except DecodeError:
        expected = "bad path"
    try:
        got: tuple[str, ...] | str = asgi_paths(scope, strict=strict)
    except DecodeError:
        got = "bad path"
    assert got == expected


def _request_info_by_lists(scope: dict[str, object]) -> RequestInfo:
    """The ASGI request_info as it read headers before (the reference): lists, joined."""
    host: str | None = None
    authorization: list[str] = []
    cookie: list[str] = []
    records: list[str] = []
    for name, value in scope["headers"]:  # type: ignore[attr-defined]
        if name == b"authorization":
            authorization.append(value.decode("latin-1"))
        elif name == b"sec-redemption-record":
            records.append(value.decode("latin-1"))
        elif len(value) > MAX_HEADER_BYTES:
            continue
        elif name == b"cookie":
            cookie.append(value.decode("latin-1"))
        elif name == b"host" and host is None:
            host = value.decode("latin-1")
    paths = asgi_paths(scope, strict=False)
    return RequestInfo(
        method=str(scope.get("method", "GET")),
        path=paths[0],
        paths=paths[1:],
        host=host,
        scheme={"http": "http", "https": "https", "ws": "http", "wss": "https"}.get(
            str(scope.get("scheme", ""))
        ),
        authorization=", ".join(authorization) or None,
        cookie="; ".join(cookie) or None,
        redemption_record=", ".join(records) or None,
    )


_HEADER_LINES = st.lists(
    st.tuples(
        st.sampled_from(
            [b"authorization", b"cookie", b"host", b"sec-redemption-record", b"x-other"]
        ),
        st.sampled_from([b"", b"a", b"b=c", b"\xe9", b"x" * (MAX_HEADER_BYTES + 1)]),
    ),
    max_size=6,
)


@settings(max_examples=1000, deadline=None)
@given(headers=_HEADER_LINES, scheme=st.sampled_from(["http", "https", "ws", "", "ftp"]))
def test_asgi_request_info_in_one_pass_agrees_with_the_lists(
    headers: list[tuple[bytes, bytes]], scheme: str
) -> None:
    scope: dict[str, object] = {
        "type": "http",
        "method": "GET",
        "path": "/p",
        "raw_path": b"/p",
        "scheme": scheme,
        "headers": headers,
    }
    reference = _request_info_by_lists(scope)
    assert asgi_request_info(scope) == reference
    assert asgi_request_info(scope, asgi_paths(scope)) == reference
    for field in ("authorization", "cookie", "redemption_record"):
        assert getattr(asgi_request_info(scope), field) == getattr(reference, field)


@settings(max_examples=500, deadline=None)
@given(
    app_headers=st.lists(
        st.tuples(
            st.sampled_from([b"content-type", b"cache-control", b"Cache-Control", b"x"]),
            st.sampled_from([b"text/plain", b"public, max-age=60", b"no-store", b"private"]),
        ),
        max_size=4,
    ),
    outcome=st.sampled_from([Outcome.PASS, Outcome.SESSION, Outcome.SKIP]),
    cookies=st.booleans(),
)
def test_pass_headers_are_what_private_headers_made_of_them(
    app_headers: list[tuple[bytes, bytes]], outcome: Outcome, cookies: bool
) -> None:
    set_cookies = (SetCookie("pat_verified", "v.1.s", 300),) if cookies else ()
    decision = Decision(outcome, cookies=set_cookies, token=VIA_SESSION)
    merged = [*app_headers, *encode_headers(decision.header_lines())]
    expected = asgi_private_headers(merged) if decision.private else merged
    assert _with_pass_headers(app_headers, decision) == expected
