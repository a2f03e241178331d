"""Redemption records: the consumer refuses forged, expired, truncated and re-labelled records
with the right reason, parses Sec-Redemption-Record as Chromium sends it, and reads JWK Sets
strictly."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pat_middleware.core.redemption_record import (
    MAX_HEADER_LENGTH,
    RecordEntry,
    RecordKey,
    RecordKeySet,
    RecordVerifier,
    RedemptionRecord,
    jwk_thumbprint,
    normalize_origin,
    parse_redemption_record_header,
    peek_redemption_record,
    sign_redemption_record,
    verify_redemption_record,
    verify_redemption_record_header,
)
from pat_middleware.errors import DecodeError, Reason, TokenError

ISSUER = "https://issuer.example"
SITE = "https://site.example"
NOW = 1_800_000_000


@pytest.fixture(scope="module")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def jwks(signing_key: Ed25519PrivateKey) -> RecordKeySet:
    return RecordKeySet((RecordKey.from_public_key(signing_key.public_key()),))


def _claims(**changes: Any) -> RedemptionRecord:
    fields: dict[str, Any] = {
        "issuer": ISSUER,
        "redeeming_origin": SITE,
        "key_id": 3,
        "issued_at": NOW,
        "expires_at": NOW + 3600,
        "record_id": "AAAAAAAAAAAAAAAAAAAAAA",
    }
    fields.update(changes)
    return RedemptionRecord(**fields)


@pytest.fixture(scope="module")
def record(signing_key: Ed25519PrivateKey) -> str:
    return sign_redemption_record(_claims(), signing_key)


def _verify(text: str, jwks: RecordKeySet, now: float = NOW + 10, **kw: Any) -> RedemptionRecord:
    return verify_redemption_record(
        text,
        issuer=kw.pop("issuer", ISSUER),
        keys=jwks,
        accepted_origins=kw.pop("accepted_origins", [SITE]),
        now=now,
        **kw,
    )


def _reason(call: Callable[[], object]) -> Reason:
    with pytest.raises(TokenError) as info:
        call()
    return info.value.reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _edit_payload(text: str, **changes: Any) -> str:
    header, payload, signature = text.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims.update(changes)
    return ".".join([header, _b64(json.dumps(claims).encode()), signature])


# ------------------------------------------------------------------------ the format


def test_record_is_a_compact_jws_with_the_documented_header_and_claims(
    record: str, signing_key: Ed25519PrivateKey
) -> None:
    header, payload, signature = record.split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {
        "alg": "EdDSA",
        "kid": jwk_thumbprint(signing_key.public_key()),
        "typ": "pst-rr+jwt",
    }
    assert json.loads(base64.urlsafe_b64decode(payload + "==")) == {
        "iss": ISSUER,
        "redeeming_origin": SITE,
        "key_id": 3,
        "iat": NOW,
        "exp": NOW + 3600,
        "jti": "AAAAAAAAAAAAAAAAAAAAAA",
    }
    assert len(base64.urlsafe_b64decode(signature + "==")) == 64
    signing_key.public_key().verify(
        base64.urlsafe_b64decode(signature + "=="), f"{header}.{payload}".encode()
    )
    assert all(0x21 <= ord(c) <= 0x7E for c in record) and len(record) < 450


def test_thumbprint_is_rfc7638() -> None:
    # RFC 8037 Appendix A.3: the thumbprint of the example Ed25519 key.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    x = base64.urlsafe_b64decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
    key = Ed25519PublicKey.from_public_bytes(x)
    assert jwk_thumbprint(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_a_good_record_verifies_again_and_again(record: str, jwks: RecordKeySet) -> None:
    first = _verify(record, jwks)
    assert first == _verify(record, jwks, now=NOW + 3000)
    assert (first.issuer, first.redeeming_origin, first.key_id) == (ISSUER, SITE, 3)
    assert peek_redemption_record(record) == first


# ------------------------------------------------------------------------- refusals


def test_forged_record_is_bad_signature(jwks: RecordKeySet) -> None:
    forger = Ed25519PrivateKey.generate()
    # Same kid as the real key, other signing key.
    forged = sign_redemption_record(_claims(), forger, kid=jwks.keys[0].kid)
    assert _reason(lambda: _verify(forged, jwks)) is Reason.BAD_SIGNATURE


def test_record_from_an_unknown_key_is_unknown_key(jwks: RecordKeySet) -> None:
    other = sign_redemption_record(_claims(), Ed25519PrivateKey.generate())
    assert _reason(lambda: _verify(other, jwks)) is Reason.UNKNOWN_KEY


@pytest.mark.parametrize(
    "changes",
    [
        {"key_id": 4},  # a better trust label
        {"redeeming_origin": "https://attacker.example"},
        {"exp": NOW + 10**6},
        {"iss": "https://other-issuer.example"},
        {"extra": True},
    ],
)
def test_relabelled_record_is_bad_signature(
    record: str, jwks: RecordKeySet, changes: dict[str, Any]
) -> None:
    assert _reason(lambda: _verify(_edit_payload(record, **changes), jwks)) is Reason.BAD_SIGNATURE


def test_expired_and_future_records_are_expired(
    signing_key: Ed25519PrivateKey, jwks: RecordKeySet, record: str
) -> None:
    assert _verify(record, jwks, now=NOW + 3600 + 59).key_id == 3  # within the leeway
    assert _reason(lambda: _verify(record, jwks, now=NOW + 3600 + 61)) is Reason.EXPIRED
    assert _reason(lambda: _verify(record, jwks, now=NOW - 61)) is Reason.EXPIRED
    assert _reason(lambda: _verify(record, jwks, now=float("nan"))) is Reason.EXPIRED
    assert _reason(lambda: _verify(record, jwks, now=NOW + 3601, leeway=0)) is Reason.EXPIRED


def test_record_for_another_origin_is_wrong_origin(record: str, jwks: RecordKeySet) -> None:
    assert (
        _reason(lambda: _verify(record, jwks, accepted_origins=["https://other.example"]))
        is Reason.WRONG_ORIGIN
    )
    assert _reason(lambda: _verify(record, jwks, accepted_origins=[])) is Reason.WRONG_ORIGIN
    # Origins compare in their serialized form.
    assert _verify(record, jwks, accepted_origins=["HTTPS://Site.Example:443/"]).key_id == 3


def test_record_naming_another_issuer_is_untrusted_issuer(
    signing_key: Ed25519PrivateKey, jwks: RecordKeySet
) -> None:
    # Signed by a key we hold for ISSUER, but claiming to come from elsewhere.
    text = sign_redemption_record(_claims(issuer="https://elsewhere.example"), signing_key)
    assert _reason(lambda: _verify(text, jwks)) is Reason.UNTRUSTED_ISSUER


def test_truncated_and_mangled_records_are_malformed(record: str, jwks: RecordKeySet) -> None:
    header, payload, signature = record.split(".")
    cases = [
        record[:-1],
        record[: len(record) // 2],
        f"{header}.{payload}",
        f"{header}.{payload}.{signature}.",
        f"{header}.{payload}.{signature[:-2]}",
        f"{header}..{signature}",
        record + "=",
        record.replace(".", " ", 1),
        f"{header}.{payload}.{signature[:-1]}" + ("B" if signature[-1] == "A" else "A"),
        "x" * 5000,
        "",
        _b64(b'{"alg":"none","kid":"a","typ":"pst-rr+jwt"}') + f".{payload}.{signature}",
        _b64(b'{"alg":"EdDSA","kid":"a","typ":"JWT"}') + f".{payload}.{signature}",
        _b64(b'{"alg":"EdDSA","kid":"a","typ":"pst-rr+jwt","crit":["x"]}')
        + f".{payload}.{signature}",
        _b64(b'{"alg":"EdDSA","alg":"EdDSA","kid":"a","typ":"pst-rr+jwt"}')
        + f".{payload}.{signature}",
    ]
    for text in cases:
        reason = _reason(lambda text=text: _verify(text, jwks))  # type: ignore[misc]
        assert reason in (Reason.MALFORMED, Reason.BAD_SIGNATURE), text
    # Non-canonical base64 of the signature is refused outright, not accepted as the same
    # bytes: a record has one spelling.
    last = signature[-1]
    twin = "AQgw"["AQgw".index(last) ^ 1] if last in "AQgw" else None
    if twin is not None:
        assert _reason(lambda: _verify(f"{header}.{payload}.{signature[:-1]}{twin}", jwks)) in (
            Reason.MALFORMED,
            Reason.BAD_SIGNATURE,
        )


@pytest.mark.parametrize(
    "changes",
    [
        {"iat": 1.5},
        {"iat": True},
        {"exp": NOW},  # exp must follow iat
        {"key_id": 2**32},
        {"key_id": -1},
        {"iss": "not an origin"},
        {"redeeming_origin": "https://site.example/path"},
        {"jti": ""},
    ],
)
def test_records_with_bad_claims_are_malformed_even_when_signed(
    signing_key: Ed25519PrivateKey, jwks: RecordKeySet, changes: dict[str, Any]
) -> None:
    header = _b64(
        json.dumps(
            {"alg": "EdDSA", "kid": jwks.keys[0].kid, "typ": "pst-rr+jwt"},
            separators=(",", ":"),
        ).encode()
    )
    claims = _claims().claims() | changes
    payload = _b64(json.dumps(claims).encode())
    signature = _b64(signing_key.sign(f"{header}.{payload}".encode()))
    assert _reason(lambda: _verify(f"{header}.{payload}.{signature}", jwks)) is Reason.MALFORMED


# --------------------------------------------------------------------------- header


def test_header_as_chromium_sends_it(record: str, jwks: RecordKeySet) -> None:
    value = f'"{ISSUER}";redemption-record="{record}"'
    assert parse_redemption_record_header(value) == (RecordEntry(ISSUER, record),)
    verified = verify_redemption_record_header(
        value, trusted={ISSUER: jwks}, accepted_origins=[SITE], now=NOW
    )
    assert verified is not None and verified.key_id == 3


def test_empty_or_absent_header_is_no_signal(jwks: RecordKeySet) -> None:
    for value in (None, "", "   "):
        assert (
            verify_redemption_record_header(
                value, trusted={ISSUER: jwks}, accepted_origins=[SITE], now=NOW
            )
            is None
        )


def test_several_issuers_first_trusted_record_wins(
    record: str, jwks: RecordKeySet, signing_key: Ed25519PrivateKey
) -> None:
    other = sign_redemption_record(_claims(issuer="https://b.example"), signing_key)
    value = (
        f'"https://b.example";redemption-record="{other}", '
        f'"{ISSUER}";redemption-record="{record}";future=1'
    )
    assert [e.issuer for e in parse_redemption_record_header(value)] == [
        "https://b.example",
        ISSUER,
    ]
    verified = verify_redemption_record_header(
        value, trusted={ISSUER: jwks}, accepted_origins=[SITE], now=NOW
    )
    assert verified is not None and verified.issuer == ISSUER


def test_header_reasons(record: str, jwks: RecordKeySet) -> None:
    def check(value: str, trusted: dict[str, RecordKeySet], now: float = NOW) -> Reason:
        return _reason(
            lambda: verify_redemption_record_header(
                value, trusted=trusted, accepted_origins=[SITE], now=now
            )
        )

    value = f'"{ISSUER}";redemption-record="{record}"'
    assert check(value, {}) is Reason.UNTRUSTED_ISSUER
    assert check(value, {"https://other.example": jwks}) is Reason.UNTRUSTED_ISSUER
    assert check(value, {ISSUER: jwks}, now=NOW + 10**6) is Reason.EXPIRED
    assert check(f'"{ISSUER}";redemption-record="x.y.z"', {ISSUER: jwks}) is Reason.MALFORMED
    for bad in (
        f"{ISSUER};redemption-record=x",
        f'"{ISSUER}"',
        f'"{ISSUER}";redemption-record=token',
        f'("{ISSUER}");redemption-record="{record}"',
        '"not an origin";redemption-record="x"',
        f'"{ISSUER}";redemption-record="{record}",',
        "é",
        "x" * (MAX_HEADER_LENGTH + 1),
    ):
        assert check(bad, {ISSUER: jwks}) is Reason.MALFORMED, bad


# ----------------------------------------------------------------------------- JWKS


def test_jwks_round_trip(jwks: RecordKeySet) -> None:
    data = jwks.to_bytes()
    assert RecordKeySet.from_bytes(data) == jwks
    (jwk,) = json.loads(data)["keys"]
    assert jwk == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": jwk["x"],
        "kid": jwks.keys[0].kid,
        "alg": "EdDSA",
        "use": "sig",
    }


@pytest.mark.parametrize(
    "edit",
    [
        lambda j: j.update(kty="EC"),
        lambda j: j.update(crv="X25519"),
        lambda j: j.update(d=j["x"]),  # private material published by mistake
        lambda j: j.update(alg="ES256"),
        lambda j: j.update(use="enc"),
        lambda j: j.update(key_ops=["sign"]),
        lambda j: j.update(x=j["x"][:-2]),
        lambda j: j.update(x=j["x"] + "="),
        lambda j: j.pop("kid"),
        lambda j: j.update(kid=""),
        lambda j: j.update(kid=7),
    ],
)
def test_jwks_parsing_is_strict(jwks: RecordKeySet, edit: Callable[[dict[str, Any]], Any]) -> None:
    doc = jwks.to_json()
    edit(doc["keys"][0])
    with pytest.raises(DecodeError):
        RecordKeySet.from_json(doc)


def test_jwks_refuses_duplicates_and_oversize(jwks: RecordKeySet) -> None:
    jwk = jwks.to_json()["keys"][0]
    with pytest.raises(DecodeError, match="kid"):
        RecordKeySet.from_json({"keys": [jwk, jwk]})
    with pytest.raises(DecodeError):
        RecordKeySet.from_json({"keys": []})
    with pytest.raises(DecodeError):
        RecordKeySet.from_bytes(b'{"keys": [], "keys": []}')
    with pytest.raises(DecodeError):
        RecordKeySet.from_bytes(b" " * 70_000)


def test_origins_normalize() -> None:
    assert normalize_origin("HTTPS://Example.COM:443") == "https://example.com"
    assert normalize_origin("http://localhost:8555/") == "http://localhost:8555"
    assert normalize_origin("http://[::1]:80") == "http://[::1]"
    for bad in ("ftp://x", "https://", "https://a/b", "https://u@a", "https://a?q", "a", ""):
        with pytest.raises(DecodeError):
            normalize_origin(bad)


def test_record_verifier_checks_its_configuration_once(record: str, jwks: RecordKeySet) -> None:
    verifier = RecordVerifier({"HTTPS://Issuer.Example/": jwks}, frozenset({SITE + ":443"}))
    value = f'"{ISSUER}";redemption-record="{record}"'
    verified = verifier.verify(value, now=NOW)
    assert verified is not None and verified.key_id == 3
    assert verifier.verify("", now=NOW) is None
    assert _reason(lambda: verifier.verify(value, now=NOW + 10**6)) is Reason.EXPIRED
    with pytest.raises(DecodeError):
        RecordVerifier({"ftp://x": jwks}, frozenset({SITE}))


# --------------------------------------------------------- JWK Sets as issuers publish them


def test_a_published_jwks_skips_keys_for_other_purposes(jwks: RecordKeySet) -> None:
    ours = jwks.to_json()["keys"][0]
    other = RecordKey.from_public_key(Ed25519PrivateKey.generate().public_key()).to_jwk()
    doc = {
        "keys": [
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "rsa"},  # another key type
            {**other, "use": "enc"},  # not for signatures
            ours,
            {**other, "kid": ours["kid"]},  # a later key with a kid already seen
            other,
        ],
        "extra": True,
    }
    published = RecordKeySet.from_published(json.dumps(doc))
    assert [key.kid for key in published.keys] == [ours["kid"], other["kid"]]
    assert published.keys[0] == jwks.keys[0]
    with pytest.raises(DecodeError):
        RecordKeySet.from_json(doc)  # the strict reading refuses the same document


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"keys": [{"kty": "RSA"}]}', "no Ed25519 key"),
        (b'{"keys": []}', "no Ed25519 key"),
        (b'{"keys": {}}', "keys list"),
        (b"[]", "keys list"),
        (b'{"keys": [], "keys": []}', "duplicate"),
        (b'{"keys": [NaN]}', "not JSON"),
        (b"\xff", "not JSON"),
        (b" " * 70_000, "longer than"),
    ],
)
def test_a_published_jwks_is_refused_as_a_whole(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        RecordKeySet.from_published(data)


def test_a_published_jwks_with_private_material_anywhere_is_refused(jwks: RecordKeySet) -> None:
    ours = jwks.to_json()["keys"][0]
    leaked = {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA", "kid": "ec"}
    with pytest.raises(DecodeError, match="private key material"):
        RecordKeySet.from_published(json.dumps({"keys": [ours, leaked]}))


def test_a_published_jwks_keeps_at_most_the_bound() -> None:
    keys = [
        RecordKey.from_public_key(Ed25519PrivateKey.generate().public_key()).to_jwk()
        for _ in range(40)
    ]
    published = RecordKeySet.from_published(json.dumps({"keys": keys}))
    assert [k.kid for k in published.keys] == [k["kid"] for k in keys[:32]]


# ------------------------------------------------------------------------ trust labels


def test_labels_limit_the_trust_labels_accepted_from_an_issuer(
    record: str, jwks: RecordKeySet
) -> None:
    assert _verify(record, jwks, labels={3, 4}).key_id == 3
    assert _reason(lambda: _verify(record, jwks, labels={1})) is Reason.UNTRUSTED_ISSUER
    value = f'"{ISSUER}";redemption-record="{record}"'
    verifier = RecordVerifier({ISSUER: jwks}, frozenset({SITE}), labels={ISSUER + "/": {1}})
    assert verifier.labels == {ISSUER: frozenset({1})}
    assert _reason(lambda: verifier.verify(value, now=NOW)) is Reason.UNTRUSTED_ISSUER
    other = RecordVerifier({ISSUER: jwks}, frozenset({SITE}), labels={"https://b.example": {1}})
    assert other.verify(value, now=NOW) is not None  # labels of another issuer do not apply
