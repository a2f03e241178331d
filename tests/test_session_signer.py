"""The session signer's fast path gives exactly itsdangerous's signatures, and checks them."""

from __future__ import annotations

import hashlib

import pytest
from itsdangerous import BadSignature, TimestampSigner

from pat_middleware.policy.sessions import _ClockSigner

KEY = b"k" * 32
SALT = "pat-middleware/session"
NOW = 1_700_000_000.0


def stock() -> TimestampSigner:
    class Fixed(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(NOW)

    return Fixed(KEY, salt=SALT, digest_method=hashlib.sha256)


def ours() -> _ClockSigner:
    return _ClockSigner(KEY, SALT, lambda: NOW)


@pytest.mark.parametrize("value", ["", "abc", "x" * 200])
def test_signs_exactly_as_itsdangerous_and_reads_its_values(value: str) -> None:
    assert ours().sign(value) == stock().sign(value)
    assert ours().unsign(stock().sign(value), max_age=10) == value.encode()
    assert stock().unsign(ours().sign(value), max_age=10) == value.encode()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda v: v[:-1] + ("A" if v[-1] != "A" else "B"),  # signature changed
        lambda v: "abd" + v[3:],  # payload changed
        lambda v: v.rsplit(".", 1)[0] + ".!!!",  # signature not base64
        lambda v: v.rsplit(".", 1)[0] + ".",  # signature empty
    ],
)
def test_tampered_values_are_refused(tamper: object) -> None:
    signed = ours().sign("abc").decode()
    assert callable(tamper)
    with pytest.raises(BadSignature):
        ours().unsign(tamper(signed), max_age=10)


def test_another_salt_does_not_verify() -> None:
    other = _ClockSigner(KEY, "pat-middleware/verified", lambda: NOW)
    with pytest.raises(BadSignature):
        other.unsign(ours().sign("abc"), max_age=10)


def at(now: float) -> _ClockSigner:
    return _ClockSigner(KEY, SALT, lambda: now)


def test_check_returns_payload_and_timestamp() -> None:
    signed = ours().sign("abc").decode()
    assert at(NOW + 10).check(signed, 10) == (b"abc", int(NOW))
    assert at(NOW).check(stock().sign("abc").decode(), 0) == (b"abc", int(NOW))


@pytest.mark.parametrize(("now", "max_age"), [(NOW + 11, 10), (NOW - 1, 10)])
def test_check_refuses_old_and_future_values(now: float, max_age: int) -> None:
    signed = ours().sign("abc").decode()
    with pytest.raises(BadSignature):
        at(now).check(signed, max_age)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "abc",
        "abc.sig",
        "é.a.b",
        "abc..sig",
        "abc." + "A" * 12 + ".sig",
    ],
)
def test_check_refuses_malformed_values(value: str) -> None:
    with pytest.raises(BadSignature):
        ours().check(value, 10)


def test_check_refuses_a_malformed_timestamp_even_when_signed() -> None:
    # A correctly signed value whose timestamp field is not base64 (or too long) is refused.
    for stamp in ("!!", "A" * 12):
        signed = f"abc.{stamp}"
        value = signed + "." + ours().get_signature(signed).decode()
        with pytest.raises(BadSignature):
            ours().check(value, 10)
