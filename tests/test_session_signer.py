"""The cookie signer writes and reads itsdangerous's ``TimestampSigner`` values, byte for byte:
itsdangerous (through its public API only) verifies ours, ours verifies its own, so sessions
signed before and after the signer became our own module stay valid."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import BadSignature as ItsdangerousBadSignature
from itsdangerous import TimestampSigner

from pat_middleware.core.codec import b64url_encode
from pat_middleware.policy.sessions import SessionCodec
from pat_middleware.policy.signer import BadSignature, CookieSigner

KEY = b"k" * 32
SALT = "pat-middleware/session"
NOW = 1_700_000_000.0
#: Payloads are base64url text (ASCII without '.'), as the cookies carry.
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_PAYLOADS = st.text(_ALPHABET, max_size=120)


def stock(salt: str = SALT) -> TimestampSigner:
    return TimestampSigner(KEY, salt=salt, digest_method=hashlib.sha256)


def at(now: float, salt: str = SALT) -> CookieSigner:
    return CookieSigner(KEY, salt, lambda: now)


@settings(max_examples=300, deadline=None)
# itsdangerous turns the timestamp into a datetime: years 1970 to 9999.
@given(payload=_PAYLOADS, now=st.integers(min_value=1, max_value=253_402_300_799))
def test_itsdangerous_verifies_ours_and_reads_the_same_timestamp(payload: str, now: int) -> None:
    ours = at(float(now)).sign(payload.encode())
    value, signed_at = stock().unsign(ours, return_timestamp=True)
    assert value == payload.encode()
    assert int(signed_at.timestamp()) == now
    assert at(float(now)).check(ours, 0) == (payload.encode(), now)


def _same_second(sign: Callable[[], tuple[bytes, str]]) -> tuple[bytes, str]:
    """Both signatures made within one wall-clock second (retried across a boundary)."""
    for _ in range(5):
        before = int(time.time())
        pair = sign()
        if int(time.time()) == before:
            return pair
    raise AssertionError("the clock kept crossing seconds")


@settings(max_examples=100, deadline=None)
@given(payload=_PAYLOADS)
def test_signs_byte_for_byte_as_itsdangerous_and_reads_its_values(payload: str) -> None:
    ours = CookieSigner(KEY, SALT, time.time)
    theirs, mine = _same_second(lambda: (stock().sign(payload), ours.sign(payload.encode())))
    assert theirs.decode() == mine
    assert ours.check(theirs.decode(), 5)[0] == payload.encode()
    assert stock().unsign(mine, max_age=5) == payload.encode()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda v: v[:-1] + ("A" if v[-1] != "A" else "B"),  # signature changed
        lambda v: "abd" + v[3:],  # payload changed
        lambda v: v.rsplit(".", 1)[0] + ".!!!",  # signature not base64
        lambda v: v.rsplit(".", 1)[0] + ".",  # signature empty
    ],
)
def test_tampered_values_are_refused_by_both(tamper: Callable[[str], str]) -> None:
    signed = at(NOW).sign(b"abc")
    with pytest.raises(BadSignature):
        at(NOW).check(tamper(signed), 10)
    with pytest.raises(ItsdangerousBadSignature):
        stock().unsign(tamper(signed))


def test_another_salt_does_not_verify() -> None:
    with pytest.raises(BadSignature):
        at(NOW, "pat-middleware/verified").check(at(NOW).sign(b"abc"), 10)


def test_check_returns_payload_and_timestamp() -> None:
    signed = at(NOW).sign(b"abc")
    assert at(NOW + 10).check(signed, 10) == (b"abc", int(NOW))


@pytest.mark.parametrize(("now", "max_age"), [(NOW + 11, 10), (NOW - 1, 10)])
def test_check_refuses_old_and_future_values(now: float, max_age: int) -> None:
    signed = at(NOW).sign(b"abc")
    with pytest.raises(BadSignature):
        at(now).check(signed, max_age)


@pytest.mark.parametrize(
    "value",
    ["", "abc", "abc.sig", "é.a.b", "abc..sig", "abc." + "A" * 12 + ".sig"],
)
def test_check_refuses_malformed_values(value: str) -> None:
    with pytest.raises(BadSignature):
        at(NOW).check(value, 10)


def test_check_refuses_a_malformed_timestamp_even_when_signed() -> None:
    # A correctly signed value whose timestamp field is not base64 (or too long) is refused.
    for stamp in ("!!", "A" * 12):
        signed = f"abc.{stamp}"
        value = signed + "." + stock().get_signature(signed).decode()
        with pytest.raises(BadSignature):
            at(NOW).check(value, 10)


def test_the_timestamp_text_follows_the_clock_second_by_second() -> None:
    """The current second's timestamp text is kept, and replaced when the second changes."""
    now = [NOW]
    signer = CookieSigner(KEY, SALT, lambda: now[0])
    for step in (0.0, 0.4, 0.99, 1.0, 1.5, 7.0, 3.0):
        now[0] = NOW + step
        value = signer.sign(b"abc")
        _, signed_at = stock().unsign(value, return_timestamp=True)
        assert int(signed_at.timestamp()) == int(NOW + step)


def test_repr_hides_the_key() -> None:
    assert "k" * 8 not in repr(at(NOW)) and "hidden" in repr(at(NOW))


# --------------------------------------------------- properties (perf review: the signer)

#: Payloads as the three cookies carry them: base64url text, with '.' in pending values.
_DOTTED_PAYLOADS = st.text(_ALPHABET + ".", max_size=80)
_SECONDS = st.integers(min_value=1, max_value=2**40)
_SALTS = ("pat-middleware/session", "pat-middleware/verified", "pat-middleware/pending")


@settings(max_examples=500, deadline=None)
@given(
    payload=_DOTTED_PAYLOADS,
    signed_at=_SECONDS,
    age=st.integers(min_value=-3, max_value=400),
    max_age=st.integers(min_value=0, max_value=300),
)
def test_round_trip_within_max_age_and_refusal_outside(
    payload: str, signed_at: int, age: int, max_age: int
) -> None:
    """A value checks, giving back its payload and second, exactly while its age is from 0
    to ``max_age`` seconds (whole seconds of the checking clock, as itsdangerous counts)."""
    value = at(float(signed_at) + 0.75).sign(payload.encode())
    checker = at(float(signed_at + age) + 0.5)
    if 0 <= age <= max_age:
        assert checker.check(value, max_age) == (payload.encode(), signed_at)
    else:
        with pytest.raises(BadSignature):
            checker.check(value, max_age)


_EDIT_CHARS = st.characters(max_codepoint=0xFF) | st.sampled_from(list(_ALPHABET + ".=+/"))


@settings(max_examples=300, deadline=None)
@given(payload=_DOTTED_PAYLOADS, signed_at=_SECONDS, char=_EDIT_CHARS, data=st.data())
def test_every_edit_of_a_signed_value_is_refused(
    payload: str, signed_at: int, char: str, data: st.DataObject
) -> None:
    """Changing, dropping or adding any one character anywhere, cutting the value short or
    extending it: every other value is refused (the signature's text is compared, so even
    the four spellings of its last base64 character that decode alike are told apart)."""
    signer = at(float(signed_at))
    value = signer.sign(payload.encode())
    edits = {value[:i] + value[i + 1 :] for i in range(len(value))}  # one dropped
    edits |= {value[:i] + char + value[i + 1 :] for i in range(len(value))}  # one changed
    edits |= {value[:i] + char + value[i:] for i in range(len(value) + 1)}  # one added
    edits |= {value[:i] for i in range(len(value))}  # cut short
    edits.add(value + data.draw(st.text(_EDIT_CHARS, min_size=1, max_size=4)))
    edits.discard(value)
    for edited in edits:
        with pytest.raises(BadSignature):
            signer.check(edited, 10)
    assert signer.check(value, 10)[0] == payload.encode()


@settings(max_examples=200, deadline=None)
@given(
    payload=_DOTTED_PAYLOADS,
    salts=st.permutations(_SALTS).map(lambda s: s[:2]),
    other_key=st.binary(min_size=1, max_size=40).filter(lambda k: k != KEY),
)
def test_a_value_checks_only_under_its_own_salt_and_key(
    payload: str, salts: tuple[str, ...], other_key: bytes
) -> None:
    """A session value is no verified or pending value, and no value signed under another
    secret checks here."""
    mine, theirs = salts
    value = at(NOW, mine).sign(payload.encode())
    assert at(NOW, mine).check(value, 10)[0] == payload.encode()
    for signer in (at(NOW, theirs), CookieSigner(other_key, mine, lambda: NOW)):
        with pytest.raises(BadSignature):
            signer.check(value, 10)


@settings(max_examples=500, deadline=None)
@given(
    payload=st.text(_ALPHABET, max_size=20),
    stamp=st.text(st.characters(max_codepoint=0x7F).filter(lambda c: c != "."), max_size=14)
    | st.sampled_from(["-AQ", "+AQ", " AQ", "AQ ", "AAAAZW", "__________8", "/////////w", ""]),
    max_age=st.integers(min_value=0, max_value=2**70),
)
def test_a_signed_but_strange_timestamp_is_read_strictly_or_refused(
    payload: str, stamp: str, max_age: int
) -> None:
    """Whatever stands in the timestamp field of a correctly signed value (signs, spaces,
    leading zero bytes, the other alphabet, 9 bytes' worth, nothing), the check either
    refuses it with BadSignature or returns a second no later than now and no more than
    ``max_age`` earlier: never another exception, never a future or negative time."""
    signed = f"{payload}.{stamp}"
    value = signed + "." + stock().get_signature(signed).decode()
    try:
        got, second = at(NOW).check(value, max_age)
    except BadSignature:
        return
    assert got == payload.encode()
    assert 0 <= int(NOW) - second <= max_age


# ------------------------------------------- the session codec over the signer (perf review)

_CODEC_KEY = b"c" * 32


def _codec(now: float = NOW) -> SessionCodec:
    return SessionCodec(_CODEC_KEY, lifetime=3600, clock=lambda: now)


def _itsdangerous(salt: str) -> TimestampSigner:
    """What signed the cookies before the signer was our own: itsdangerous itself, with the
    same derivation (the released versions' _ClockSigner was a TimestampSigner subclass)."""
    return TimestampSigner(_CODEC_KEY, salt=salt, digest_method=hashlib.sha256)


def test_cookies_signed_before_the_signer_changed_still_load() -> None:
    """Byte-compatible, not a break: a session and verified cookie signed the old way
    (itsdangerous) load, and what the codec writes now is what itsdangerous writes."""
    codec = _codec()
    session = codec.new_session()
    encoded = b64url_encode(session.session_id, padded=False)
    old_session = _itsdangerous("pat-middleware/session").sign(encoded).decode()
    old_verified = _itsdangerous("pat-middleware/verified").sign(encoded).decode()
    # itsdangerous stamps the wall-clock second: read them by the wall clock too.
    now = SessionCodec(_CODEC_KEY, lifetime=3600)
    loaded = now.load_session(old_session)
    assert loaded is not None and loaded.session_id == session.session_id
    assert now.is_verified(old_verified, loaded, 300)
    assert _itsdangerous("pat-middleware/verified").unsign(codec.dump_verified(loaded)) == (
        encoded.encode()
    )


def test_a_cookie_of_one_purpose_is_refused_as_another() -> None:
    """The verified mark is not a session cookie, the session cookie is not a verified mark,
    and the pending value is neither: all three carry the session id, only the salt differs."""
    codec = _codec()
    session = codec.new_session()
    as_session, as_verified = codec.dump_session(session), codec.dump_verified(session)
    as_pending = codec.dump_pending(session, [1, 2])
    assert codec.load_session(as_session) == session
    assert codec.is_verified(as_verified, session, 300)
    assert codec.load_session(as_verified) is None and codec.load_session(as_pending) is None
    assert not codec.is_verified(as_session, session, 300)
    assert not codec.is_verified(as_pending, session, 300)
    assert codec.load_pending(as_session, session, 300) == []
    assert codec.load_pending(as_verified, session, 300) == []
    assert codec.load_pending(as_pending, session, 300) == [1, 2]


@settings(max_examples=1000, deadline=None)
@given(value=st.text(st.characters(max_codepoint=0x17F), max_size=600) | st.none())
def test_any_cookie_value_is_refused_cleanly(value: str | None) -> None:
    """Garbage, non-ASCII, oversized or foreign values read as "no session" / "not
    verified": never an exception (which an adapter would answer with a 500)."""
    codec = _codec()
    session = codec.new_session()
    assert codec.load_session(value) is None
    assert not codec.is_verified(value, session, 300)
    assert codec.load_pending(value, session, 300) == []


def test_cookies_signed_under_another_secret_are_refused_cleanly() -> None:
    """After the operator changes the secret (there are no fallback keys), every cookie
    signed under the old one is refused: a new session starts, nothing raises."""
    old = _codec()
    session = old.new_session()
    new = SessionCodec(b"n" * 32, lifetime=3600, clock=lambda: NOW)
    assert new.load_session(old.dump_session(session)) is None
    assert not new.is_verified(old.dump_verified(session), session, 300)
