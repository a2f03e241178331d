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
