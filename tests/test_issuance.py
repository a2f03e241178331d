"""RFC 9578 type-2 issuance: the five Appendix A.2 vectors, wire messages, directory, issuer."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import given
from hypothesis import strategies as st

from pat_middleware.core.codec import b64url_encode
from pat_middleware.core.wire import Token, TokenChallenge
from pat_middleware.errors import (
    ConfigurationError,
    DecodeError,
    IssuanceError,
    PrivateTokenError,
)
from pat_middleware.issuer import (
    DirectoryKey,
    Issuer,
    IssuerDirectory,
    SigningKey,
    TokenRequest,
    TokenResponse,
    begin_issuance,
    finalize_issuance,
    issue_token_locally,
    parse_directory,
)
from pat_middleware.tokens.blind_rsa import IssuerKey, encode_pss_spki
from pat_middleware.tokens.rsabssa import emsa_pss_encode
from tests.vectors import TYPE2_ISSUANCE, h

VECTORS = pytest.mark.parametrize(
    "vector", TYPE2_ISSUANCE, ids=[f"vector{i + 1}" for i in range(len(TYPE2_ISSUANCE))]
)
PSS_48 = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)


def _private_key(vector: dict[str, Any]) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(h(vector["skS"]), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@pytest.fixture(scope="module")
def vector_issuer() -> Issuer:
    # The five vectors share one issuer key.
    assert len({v["skS"] for v in TYPE2_ISSUANCE}) == 1
    return Issuer("issuer.example", _private_key(TYPE2_ISSUANCE[0]))


@pytest.fixture(scope="module")
def issuer(rsa_2048: rsa.RSAPrivateKey, other_rsa_2048: rsa.RSAPrivateKey) -> Issuer:
    return Issuer("issuer.example", rsa_2048, SigningKey(other_rsa_2048, not_before=1_700_000_000))


@pytest.fixture(scope="module")
def challenge() -> TokenChallenge:
    return TokenChallenge(2, "issuer.example", bytes(range(32)), ("origin.example",))


# ----------------------------------------------------------------------------- vectors


@VECTORS
def test_vector_key_is_what_the_issuer_publishes(
    vector: dict[str, Any], vector_issuer: Issuer
) -> None:
    assert encode_pss_spki(_private_key(vector).public_key()) == h(vector["pkS"])
    assert vector_issuer.preferred_key.spki == h(vector["pkS"])


@VECTORS
def test_vector_token_request(vector: dict[str, Any]) -> None:
    key = IssuerKey.from_spki(h(vector["pkS"]))
    challenge = TokenChallenge.from_bytes(h(vector["token_challenge"]))
    # The vector's `blind` is the blinding factor r itself, not its inverse (RFC 9474's
    # vectors give `inv`). Checked with the numbers in test_vector_blind_is_r below:
    # blinded_msg = encoded_msg * blind^e mod n and authenticator = blind_sig * blind^-1 mod n.
    request, _ = begin_issuance(
        challenge, key, nonce=h(vector["nonce"]), salt=h(vector["salt"]), r=h(vector["blind"])
    )
    assert request.to_bytes() == h(vector["token_request"])
    assert request.truncated_token_key_id == key.token_key_id[-1]


@VECTORS
def test_vector_blind_is_r(vector: dict[str, Any]) -> None:
    key = IssuerKey.from_spki(h(vector["pkS"]))
    numbers = key.public_key.public_numbers()
    n, e = numbers.n, numbers.e
    challenge = TokenChallenge.from_bytes(h(vector["token_challenge"]))
    token_input = b"\x00\x02" + h(vector["nonce"]) + challenge.digest + key.token_key_id
    encoded = int.from_bytes(emsa_pss_encode(token_input, n.bit_length() - 1, h(vector["salt"])))
    blind = int(vector["blind"], 16)
    blinded_msg = int.from_bytes(h(vector["token_request"])[3:])
    assert blinded_msg == encoded * pow(blind, e, n) % n
    assert blinded_msg != encoded * pow(pow(blind, -1, n), e, n) % n
    authenticator = int.from_bytes(h(vector["token"])[98:])
    assert authenticator == int(vector["token_response"], 16) * pow(blind, -1, n) % n


@VECTORS
def test_vector_token_response(vector: dict[str, Any], vector_issuer: Issuer) -> None:
    assert vector_issuer.issue(h(vector["token_request"])) == h(vector["token_response"])


@VECTORS
def test_vector_finalize(vector: dict[str, Any]) -> None:
    key = IssuerKey.from_spki(h(vector["pkS"]))
    challenge = TokenChallenge.from_bytes(h(vector["token_challenge"]))
    _, state = begin_issuance(
        challenge, key, nonce=h(vector["nonce"]), salt=h(vector["salt"]), r=h(vector["blind"])
    )
    token = finalize_issuance(state, h(vector["token_response"]))
    assert token.to_bytes() == h(vector["token"])
    assert state.token_input == token.authenticator_input == h(vector["token"])[:98]


@VECTORS
def test_vector_inv_injection_gives_same_request(vector: dict[str, Any]) -> None:
    key = IssuerKey.from_spki(h(vector["pkS"]))
    n = key.public_key.public_numbers().n
    inv = pow(int(vector["blind"], 16), -1, n)
    request, _ = begin_issuance(
        TokenChallenge.from_bytes(h(vector["token_challenge"])),
        key,
        nonce=h(vector["nonce"]),
        salt=h(vector["salt"]),
        inv=inv,
    )
    assert request.to_bytes() == h(vector["token_request"])


# ----------------------------------------------------------------------- wire messages


@VECTORS
def test_token_request_round_trip(vector: dict[str, Any]) -> None:
    raw = h(vector["token_request"])
    request = TokenRequest.from_bytes(raw)
    assert request.token_type == 2
    assert request.truncated_token_key_id == raw[2]
    assert request.blinded_msg == raw[3:]
    assert request.to_bytes() == raw
    assert TokenRequest(raw[2], raw[3:]) == request


@VECTORS
def test_token_response_round_trip(vector: dict[str, Any]) -> None:
    raw = h(vector["token_response"])
    assert TokenResponse.from_bytes(raw).to_bytes() == raw
    assert TokenResponse.from_bytes(raw).blind_sig == raw


def test_token_request_rejects_wrong_lengths_and_types() -> None:
    raw = h(TYPE2_ISSUANCE[0]["token_request"])
    for bad in (b"", raw[:2], raw[:3], raw[:-1], raw + b"\x00", b"\x00\x01" + raw[2:]):
        with pytest.raises(DecodeError):
            TokenRequest.from_bytes(bad)
    with pytest.raises(DecodeError):
        TokenRequest.from_bytes(raw, nk=512)
    long_request = raw[:3] + bytes(512)
    assert TokenRequest.from_bytes(long_request, nk=512).to_bytes() == long_request
    with pytest.raises(DecodeError):
        TokenRequest(0x1FF, raw[3:])
    with pytest.raises(DecodeError):
        TokenRequest(1, raw[3:], token_type=1)
    with pytest.raises(DecodeError):
        TokenRequest(1, raw[3:-1])


def test_token_response_rejects_wrong_lengths() -> None:
    raw = h(TYPE2_ISSUANCE[0]["token_response"])
    for bad in (b"", raw[:-1], raw + b"\x00"):
        with pytest.raises(DecodeError):
            TokenResponse.from_bytes(bad)
    with pytest.raises(DecodeError):
        TokenResponse.from_bytes(raw, nk=512)
    assert TokenResponse.from_bytes(bytes(512), nk=512).blind_sig == bytes(512)
    with pytest.raises(DecodeError):
        TokenResponse(raw[:100])


def test_reprs_hide_blinded_values() -> None:
    raw = h(TYPE2_ISSUANCE[0]["token_request"])
    assert raw[3:].hex()[:16] not in repr(TokenRequest.from_bytes(raw))
    response = h(TYPE2_ISSUANCE[0]["token_response"])
    assert response.hex()[:16] not in repr(TokenResponse(response))


# ----------------------------------------------------------------------------- directory


def test_directory_build(issuer: Issuer) -> None:
    document = json.loads(issuer.directory_bytes())
    assert document == {
        "issuer-request-uri": "/token-request",
        "token-keys": [
            {"token-type": 2, "token-key": issuer.public_keys[0].token_key},
            {
                "token-type": 2,
                "token-key": issuer.public_keys[1].token_key,
                "not-before": 1_700_000_000,
            },
        ],
    }
    # Padded base64url (a 342-byte SPKI happens to need no padding characters).
    assert document["token-keys"][0]["token-key"] == b64url_encode(issuer.public_keys[0].spki)
    assert issuer.directory().to_json() == document


def test_directory_round_trip(issuer: Issuer) -> None:
    parsed = parse_directory(issuer.directory_bytes())
    assert parsed == issuer.directory()
    assert [IssuerKey.from_spki(k.token_key) for k in parsed.token_keys] == list(issuer.public_keys)
    assert [k.token_key_id for k in parsed.token_keys] == [
        k.token_key_id for k in issuer.public_keys
    ]


def test_directory_parse_is_lenient(issuer: Issuer) -> None:
    spki = issuer.public_keys[0].spki
    unpadded = b64url_encode(spki, padded=False)
    standard = b64url_encode(spki).replace("-", "+").replace("_", "/")
    text = json.dumps(
        {
            "issuer-request-uri": "https://issuer.example/token-request",
            "future-field": {"nested": [1, 2]},
            "token-keys": [
                {"token-type": 2, "token-key": unpadded, "not-before": 1_700_000_000_000},
                {"token-type": 2, "token-key": standard, "not-before": 1_700_000_000, "x": 1},
                {"token-type": 0x1234, "token-key": unpadded},  # kept: readers pick types
                {"token-type": 0x10000, "token-key": unpadded},
                {"token-type": 1, "token-key": b64url_encode(bytes(49))},
                {"token-type": 2, "token-key": "not base64!"},
                {"token-type": "2", "token-key": unpadded},
                {"token-type": 2},
                {"token-type": 2, "token-key": unpadded, "not-before": "soon"},
                {"token-type": 2, "token-key": unpadded, "not-before": -5},
                {"token-type": True, "token-key": unpadded},
                "not an object",
            ],
        }
    )
    parsed = parse_directory(text)
    assert parsed.issuer_request_uri == "https://issuer.example/token-request"
    assert parsed.token_keys == (
        DirectoryKey(2, spki, 1_700_000_000),  # milliseconds read as seconds
        DirectoryKey(2, spki, 1_700_000_000),
        DirectoryKey(0x1234, spki),
        DirectoryKey(1, bytes(49)),
    )
    assert parsed.current_keys(now=1_700_000_000) == parsed.token_keys[:2]
    assert parsed.current_keys(now=1_600_000_000) == ()
    assert parsed.current_keys(1, now=0) == (DirectoryKey(1, bytes(49)),)
    assert parsed.find(issuer.public_keys[0].token_key_id) == parsed.token_keys[0]
    assert parsed.find(bytes(32)) is None
    with pytest.raises(DecodeError):
        IssuerKey.from_spki(parsed.token_keys[3].token_key)


def test_directory_float_not_before() -> None:
    parsed = parse_directory(
        '{"issuer-request-uri": "/t", "token-keys": ['
        '{"token-type": 2, "token-key": "AAAA", "not-before": 1700000000.5},'
        '{"token-type": 2, "token-key": "AAAA", "not-before": NaN},'
        '{"token-type": 2, "token-key": "AAAA", "not-before": Infinity}]}'
    )
    assert parsed.token_keys == (DirectoryKey(2, bytes(3), 1_700_000_000),)


@pytest.mark.parametrize(
    "document",
    [
        b"",
        b"not json",
        b"[]",
        b'"string"',
        b"\xff\xfe\x00",
        b'{"token-keys": []}',
        b'{"issuer-request-uri": 5, "token-keys": []}',
        b'{"issuer-request-uri": "", "token-keys": []}',
        b'{"issuer-request-uri": "/a b", "token-keys": []}',
        b'{"issuer-request-uri": "/t"}',
        b'{"issuer-request-uri": "/t", "token-keys": {}}',
        b"[" * 5000 + b"]" * 5000,
        b'{"issuer-request-uri": "/t", "token-keys": [], "pad": "' + b"x" * 70_000 + b'"}',
    ],
)
def test_directory_parse_rejects(document: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_directory(document)


# -------------------------------------------------------------------------------- issuer


def test_round_trip_with_fresh_key(issuer: Issuer, challenge: TokenChallenge) -> None:
    key = issuer.preferred_key
    token = issue_token_locally(issuer, challenge)
    assert token.token_type == 2
    assert token.challenge_digest == challenge.digest
    assert token.token_key_id == key.token_key_id
    assert len(token.to_bytes()) == key.token_length == 354
    key.public_key.verify(token.authenticator, token.authenticator_input, PSS_48, hashes.SHA384())
    parsed = Token.from_bytes(token.to_bytes(), key.authenticator_length)
    assert parsed == token


def test_round_trip_with_second_key(issuer: Issuer, challenge: TokenChallenge) -> None:
    key = issuer.public_keys[1]
    request, state = begin_issuance(challenge, key)
    token = finalize_issuance(state, issuer.issue(request.to_bytes()))
    key.public_key.verify(token.authenticator, token.authenticator_input, PSS_48, hashes.SHA384())
    # A response to another request (here, under the other key) does not finalize.
    other_request, _ = begin_issuance(challenge, issuer.public_keys[0])
    with pytest.raises(IssuanceError):
        finalize_issuance(state, issuer.issue(other_request.to_bytes()))


def test_round_trip_with_4096_bit_key(
    rsa_4096: rsa.RSAPrivateKey, challenge: TokenChallenge
) -> None:
    with pytest.raises(ConfigurationError):
        Issuer("issuer.example", rsa_4096)
    big = Issuer("issuer.example", rsa_4096, allow_4096=True)
    assert big.max_request_length == 3 + 512
    token = issue_token_locally(big, challenge)
    assert len(token.authenticator) == 512
    big.preferred_key.public_key.verify(
        token.authenticator, token.authenticator_input, PSS_48, hashes.SHA384()
    )


def test_finalize_rejects_tampered_or_misfit_responses(
    issuer: Issuer, challenge: TokenChallenge
) -> None:
    request, state = begin_issuance(challenge, issuer.preferred_key)
    response = bytearray(issuer.issue(request.to_bytes()))
    response[-1] ^= 1
    with pytest.raises(IssuanceError):
        finalize_issuance(state, bytes(response))
    with pytest.raises(DecodeError):
        finalize_issuance(state, bytes(response[:-1]))


def test_begin_issuance_refuses_other_token_types(issuer: Issuer) -> None:
    voprf = TokenChallenge(1, "issuer.example")
    with pytest.raises(IssuanceError):
        begin_issuance(voprf, issuer.preferred_key)
    with pytest.raises(ValueError, match="nonce"):
        begin_issuance(TokenChallenge(2, "issuer.example"), issuer.preferred_key, nonce=b"x")


def _request_for(issuer: Issuer, challenge: TokenChallenge) -> bytes:
    return begin_issuance(challenge, issuer.preferred_key)[0].to_bytes()


def test_issue_errors(issuer: Issuer, challenge: TokenChallenge) -> None:
    good = _request_for(issuer, challenge)
    known = {k.token_key_id[-1] for k in issuer.public_keys}
    unknown_id = next(i for i in range(256) if i not in known)
    n = issuer.preferred_key.public_key.public_numbers().n
    cases = {
        b"": 400,
        b"\x00": 400,
        b"\x00\x02": 400,
        b"\x00\x01" + good[2:]: 422,
        b"\x00\x02" + bytes([unknown_id]) + good[3:]: 422,
        good[:-1]: 422,
        good + b"\x00": 422,
        good[:3]: 422,
        good[:3] + n.to_bytes(256, "big"): 422,
        good[:3] + b"\xff" * 256: 422,
        good[:3] + bytes(256): 422,
    }
    for request, status in cases.items():
        with pytest.raises(IssuanceError) as info:
            issuer.issue(request)
        assert info.value.status == status, request[:4].hex()


def test_shared_truncated_id_uses_first_key_in_range(
    rsa_2048: rsa.RSAPrivateKey, other_rsa_2048: rsa.RSAPrivateKey
) -> None:
    # Force a truncated-id collision (real ones are 1 in 256 per key pair). The issuer
    # cannot tell which key a blinded message was meant for; it can only skip keys for
    # which the value is out of range. Put the smaller modulus first to exercise that.
    small, large = sorted(
        (rsa_2048, other_rsa_2048), key=lambda k: k.public_key().public_numbers().n
    )
    both = Issuer("issuer.example", small, large)
    first, second = both._entries
    both._by_truncated_id = {(2, 7): (first, second)}
    n_small = small.public_key().public_numbers().n
    n_large = large.public_key().public_numbers().n
    value = (n_small + n_large) // 2  # out of range for the first, in range for the second
    response = both.issue(b"\x00\x02\x07" + value.to_bytes(256, "big"))
    assert pow(int.from_bytes(response), 65537, n_large) == value


def test_issuer_configuration_errors(rsa_2048: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ConfigurationError, match="keys"):
        Issuer("issuer.example")
    with pytest.raises(ConfigurationError, match="twice"):
        Issuer("issuer.example", rsa_2048, rsa_2048)
    with pytest.raises(ConfigurationError, match=r"issuer\.name"):
        Issuer("user@issuer.example", rsa_2048)
    with pytest.raises(ConfigurationError, match="request_uri"):
        Issuer("issuer.example", rsa_2048, request_uri="token-request")
    with pytest.raises(ConfigurationError, match="request_uri"):
        Issuer("issuer.example", rsa_2048, request_uri="ftp://x/token")
    with pytest.raises(ConfigurationError, match="request_uri"):
        Issuer("issuer.example", rsa_2048, request_uri="/.well-known/token-issuer-directory")
    with pytest.raises(ConfigurationError, match=r"keys\[0\]"):
        Issuer("issuer.example", ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ConfigurationError, match="not_before"):
        Issuer("issuer.example", SigningKey(rsa_2048, not_before=-1))


def test_issuer_repr_hides_keys(issuer: Issuer, rsa_2048: rsa.RSAPrivateKey) -> None:
    assert repr(issuer) == "Issuer(name='issuer.example', keys=2)"
    d = rsa_2048.private_numbers().d
    assert str(d)[:12] not in repr(SigningKey(rsa_2048))
    assert "2048" in repr(SigningKey(rsa_2048))


def test_issuer_package_imports_no_http_framework() -> None:
    code = (
        "import sys, pat_middleware.issuer\n"
        "loaded = sorted(m for m in ('starlette', 'httpx', 'uvicorn') if m in sys.modules)\n"
        "print(','.join(loaded))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == ""


# ----------------------------------------------------------------------- fuzzed parsers

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_KEY_ENTRY = st.fixed_dictionaries(
    {},
    optional={
        "token-type": st.sampled_from([1, 2, 3]) | _JSON,
        "token-key": st.sampled_from(["AAAA", "AAA", "A", "", "====", "a-_b"]) | _JSON,
        "not-before": st.integers() | st.floats() | _JSON,
    },
)
_DIRECTORY = st.fixed_dictionaries(
    {},
    optional={
        "issuer-request-uri": st.sampled_from(["/t", "https://i.example/t"]) | _JSON,
        "token-keys": st.lists(_KEY_ENTRY | _JSON, max_size=5) | _JSON,
    },
)


_VECTOR_HEADER = h(TYPE2_ISSUANCE[0]["token_request"])[:3]


def _only_our_errors(call: Any, *args: Any, **kwargs: Any) -> None:
    """Run ``call``; any exception other than a PrivateTokenError fails the test."""
    with contextlib.suppress(PrivateTokenError):
        call(*args, **kwargs)


@given(st.binary(max_size=600), st.sampled_from([256, 512]))
def test_fuzz_token_request(data: bytes, nk: int) -> None:
    _only_our_errors(TokenRequest.from_bytes, data, nk=nk)


@given(st.binary(max_size=600), st.sampled_from([256, 512]))
def test_fuzz_token_response(data: bytes, nk: int) -> None:
    _only_our_errors(TokenResponse.from_bytes, data, nk=nk)


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_fuzz_directory_bytes(data: bytes) -> None:
    _only_our_errors(parse_directory, data)


@given(st.text(max_size=300))
def test_fuzz_directory_text(data: str) -> None:
    _only_our_errors(parse_directory, data)


@given(_DIRECTORY | _JSON)
def test_fuzz_directory_structure(document: Any) -> None:
    _only_our_errors(IssuerDirectory.from_json, document)
    _only_our_errors(parse_directory, json.dumps(document))


@given(
    st.binary(max_size=300)
    | st.binary(min_size=256, max_size=256).map(lambda b: _VECTOR_HEADER + b)
)
def test_fuzz_issue(vector_issuer: Issuer, data: bytes) -> None:
    _only_our_errors(vector_issuer.issue, data)


def test_issuer_refuses_keys_with_colliding_truncated_ids(
    rsa_2048: rsa.RSAPrivateKey,
    other_rsa_2048: rsa.RSAPrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pat_middleware.errors import ConfigurationError
    from pat_middleware.issuer import Issuer, protocol

    # Force the one-in-256 case: both keys' ids end in the same byte.
    monkeypatch.setattr(protocol, "_truncate_key_id", lambda token_key_id: 7)
    with pytest.raises(ConfigurationError, match="truncated key id"):
        Issuer("issuer.example", rsa_2048, other_rsa_2048)
