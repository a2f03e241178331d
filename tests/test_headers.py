"""Authorization / WWW-Authenticate: lenient in, strict out."""

from __future__ import annotations

import base64

import pytest

from pat_middleware import (
    ChallengeParams,
    DecodeError,
    b64_decode,
    build_authorization,
    build_www_authenticate,
    parse_authorization,
    parse_www_authenticate,
)
from pat_middleware.core.headers import parse_auth_items

TOKEN = bytes(range(256)) + bytes(98)  # 354 bytes: contains '+' '/' positions in std base64
URL = base64.urlsafe_b64encode(TOKEN).decode()
STD = base64.b64encode(TOKEN).decode()
assert "-" in URL and "_" in URL and "+" in STD and "/" in STD

ACCEPTED = {
    "quoted": f'PrivateToken token="{URL}"',
    "bare": f"PrivateToken token={URL}",
    "unpadded": f"PrivateToken token={URL.rstrip('=')}",
    "standard alphabet": f'PrivateToken token="{STD}"',
    "scheme lower": f'privatetoken token="{URL}"',
    "scheme upper": f'PRIVATETOKEN token="{URL}"',
    "param upper": f'PrivateToken TOKEN="{URL}"',
    "spaces around =": f'PrivateToken token = "{URL}"',
    "unknown param before": f'PrivateToken extensions="AAAA", token="{URL}"',
    "unknown param after": f'PrivateToken token="{URL}", realm=x',
    "leading comma": f',  PrivateToken token="{URL}"',
    "tab": f'PrivateToken\ttoken="{URL}"',
    "escaped quote char": 'PrivateToken token="' + URL[:10] + "\\" + URL[10:] + '"',
}


@pytest.mark.parametrize("value", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_authorization_accepts(value: str) -> None:
    assert parse_authorization(value) == [TOKEN]


def test_authorization_several_credentials() -> None:
    other = b"\x00\x02" + bytes(352)
    value = f'PrivateToken token="{URL}", PrivateToken token="{build_authorization(other)[20:-1]}"'
    assert parse_authorization(value) == [TOKEN, other]


def test_authorization_other_schemes_are_ignored() -> None:
    assert parse_authorization("Basic dXNlcjpwYXNz") == []
    assert parse_authorization("Bearer abc.def==") == []
    assert parse_authorization("") == []
    assert parse_authorization(f"Basic dXNlcjpwYXNz==, PrivateToken token={URL}") == [TOKEN]


def test_authorization_bad_credential_skipped_when_another_decodes() -> None:
    assert parse_authorization(f"PrivateToken token=%%%, PrivateToken token={URL}") == [TOKEN]


REFUSED = {
    "no token param": "PrivateToken realm=x",
    "empty token": 'PrivateToken token=""',
    "bad characters": "PrivateToken token=abc$def",
    "impossible length": "PrivateToken token=abcde",
    "padding in the middle": "PrivateToken token=ab==cd",
    "unterminated quote": 'PrivateToken token="abcd',
    "non-ascii": "PrivateToken token=abcdé",
}


@pytest.mark.parametrize("value", REFUSED.values(), ids=REFUSED.keys())
def test_authorization_refuses(value: str) -> None:
    with pytest.raises(DecodeError):
        parse_authorization(value)


def test_authorization_is_bounded() -> None:
    value = f'PrivateToken token="{URL}"'
    with pytest.raises(DecodeError):
        parse_authorization(value, max_length=len(value) - 1)
    assert parse_authorization(value, max_length=len(value)) == [TOKEN]
    with pytest.raises(DecodeError):
        parse_authorization("PrivateToken token=" + "A" * 100_000)


def test_authorization_item_count_is_bounded() -> None:
    with pytest.raises(DecodeError):
        parse_authorization(", ".join(["PrivateToken token=AAAA"] * 40), max_length=10_000)


def test_build_authorization_round_trip() -> None:
    assert build_authorization(TOKEN) == f'PrivateToken token="{URL}"'
    assert build_authorization(TOKEN, quoted=False) == f"PrivateToken token={URL}"
    for quoted in (True, False):
        assert parse_authorization(build_authorization(TOKEN, quoted=quoted)) == [TOKEN]


def test_www_authenticate_several_and_mixed() -> None:
    a = ChallengeParams(b"\x00\x02abc", b"key-a", 10)
    b = ChallengeParams(b"\x00\x02xyz", None, None)
    value = 'Basic realm="x", ' + build_www_authenticate([a, b]) + ", Bearer y"
    assert parse_www_authenticate(value) == [a, b]


def test_www_authenticate_exact_output() -> None:
    built = build_www_authenticate([ChallengeParams(b"\x00\x02", b"\xff\xfe", 7)])
    assert built == 'PrivateToken challenge="AAI=", token-key="__4=", max-age="7"'
    bare = build_www_authenticate([ChallengeParams(b"\x00\x02", b"\xff\xfe", 7)], quoted=False)
    assert bare == "PrivateToken challenge=AAI=, token-key=__4=, max-age=7"
    assert build_www_authenticate([ChallengeParams(b"\x00\x02")]) == 'PrivateToken challenge="AAI="'


def test_www_authenticate_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        build_www_authenticate([])
    with pytest.raises(ValueError):
        build_www_authenticate([ChallengeParams(b"\x00\x02", None, -1)])


@pytest.mark.parametrize("max_age", ['"10"', "10"])
def test_max_age_quoted_or_bare(max_age: str) -> None:
    (params,) = parse_www_authenticate(f"PrivateToken challenge=AAI=, max-age={max_age}")
    assert params.max_age == 10


@pytest.mark.parametrize("max_age", ['"-1"', "x", '"1e3"', '""', "99999999999"])
def test_bad_max_age_is_dropped(max_age: str) -> None:
    (params,) = parse_www_authenticate(f"PrivateToken challenge=AAI=, max-age={max_age}")
    assert params.max_age is None


def test_challenge_without_challenge_param_is_skipped() -> None:
    assert parse_www_authenticate("PrivateToken token-key=AAAA, PrivateToken challenge=%") == []


def test_first_occurrence_of_a_param_wins() -> None:
    (item,) = parse_auth_items('PrivateToken token="a", token="b"', max_length=100)
    assert item.params == {"token": "a"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("AAI=", b"\x00\x02"), ("AAI", b"\x00\x02"), ("__4", b"\xff\xfe"), ("//4=", b"\xff\xfe")],
)
def test_b64_decode_forms(text: str, expected: bytes) -> None:
    assert b64_decode(text) == expected
