"""Property tests for every Private State Token parser: whatever comes in, only the library's
own errors come out (a :class:`PrivateTokenError`), and what parses re-encodes to itself."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import cbor2
from hypothesis import example, given
from hypothesis import strategies as st

from pat_middleware.core.redemption_record import (
    RecordKey,
    RecordKeySet,
    RedemptionRecord,
    parse_redemption_record_header,
    peek_redemption_record,
    verify_redemption_record,
    verify_redemption_record_header,
)
from pat_middleware.errors import PrivateTokenError
from pat_middleware.issuer.pst import PSTIssuer
from pat_middleware.issuer.pst_client import begin_issuance, finalize_issuance
from pat_middleware.issuer.pst_keys import PSTKeySet, new_key_set
from pat_middleware.issuer.pst_wire import (
    ClientData,
    IssueRequest,
    IssueResponse,
    KeyCommitment,
    RedeemRequest,
)
from pat_middleware.stores import StoreUnavailable

NOW = 1_800_000_000.0
ISSUER = "https://issuer.example"
SITE = "https://site.example"

KEYS = new_key_set(now=NOW - 10)
ISSUER_OBJ = PSTIssuer(
    KEYS, issuer_origin=ISSUER, batch_size=2, record_lifetime=3600, clock=lambda: NOW
)
_REQUEST, _PENDING = begin_issuance(2)
ISSUE_REQUEST = _REQUEST.to_bytes()
ISSUE_RESPONSE = base64.b64decode(ISSUER_OBJ.issue(_REQUEST.to_header()).header)
TOKENS = finalize_issuance(
    _PENDING, IssueResponse.from_bytes(ISSUE_RESPONSE), ISSUER_OBJ.commitment()
)
REDEEM_REQUEST = TOKENS[0].redeem_request(SITE, int(NOW)).to_bytes()
RECORD = ISSUER_OBJ.redeem(base64.b64encode(REDEEM_REQUEST)).record
JWKS = ISSUER_OBJ.record_key_set()
COMMITMENT = json.loads(ISSUER_OBJ.commitment().to_bytes())
KEY_FILE = KEYS.export_private()
RR_HEADER = f'"{ISSUER}";redemption-record="{RECORD}"'

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
header_text = st.text(
    alphabet=st.sampled_from(list('"abc;=,. ()*:/-_AQZz019+é\t\\')) | st.characters(),
    max_size=400,
)


def _mutate(data: bytes, position: int, value: int, cut: int) -> list[bytes]:
    """A byte changed, the message cut short, and a byte appended."""
    if not data:
        return [bytes([value])]
    i = position % len(data)
    changed = data[:i] + bytes([value]) + data[i + 1 :]
    return [changed, data[: cut % len(data)], data + bytes([value])]


mutations = st.tuples(st.integers(0, 10_000), st.integers(0, 255), st.integers(0, 10_000))


def _only_ours(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except PrivateTokenError:
        return None


# ---------------------------------------------------------------------------- messages


@given(st.binary(max_size=600), mutations)
def test_issue_request_parser(data: bytes, mutation: tuple[int, int, int]) -> None:
    for candidate in [data, *_mutate(ISSUE_REQUEST, *mutation)]:
        parsed = _only_ours(IssueRequest.from_bytes, candidate)
        if parsed is not None:
            assert parsed.to_bytes() == candidate
        _only_ours(IssueRequest.from_header, base64.b64encode(candidate).decode())


@given(header_text)
@example('"AAE="')
def test_issue_request_header_text(text: str) -> None:
    _only_ours(IssueRequest.from_header, text)


@given(mutations)
def test_issuer_answers_or_refuses_mutated_requests(mutation: tuple[int, int, int]) -> None:
    for candidate in _mutate(ISSUE_REQUEST, *mutation):
        _only_ours(ISSUER_OBJ.issue, base64.b64encode(candidate).decode())


@given(st.binary(max_size=700), mutations)
def test_issue_response_parser(data: bytes, mutation: tuple[int, int, int]) -> None:
    for candidate in [data, *_mutate(ISSUE_RESPONSE, *mutation)]:
        parsed = _only_ours(IssueResponse.from_bytes, candidate)
        if parsed is not None:
            assert parsed.to_bytes() == candidate


@given(st.binary(max_size=400), mutations)
def test_redeem_request_parser_and_redemption(data: bytes, mutation: tuple[int, int, int]) -> None:
    for candidate in [data, *_mutate(REDEEM_REQUEST, *mutation)]:
        parsed = _only_ours(RedeemRequest.from_bytes, candidate)
        if parsed is not None:
            assert parsed.to_bytes() == candidate
            _only_ours(parsed.parsed_client_data)
        _only_ours(ISSUER_OBJ.redeem, base64.b64encode(candidate).decode())


@given(st.binary(max_size=200))
@example(b"\xd9\xd9\xf7\xa0")  # self-described CBOR tag
@example(b"\xa2\x70redeeming-origin\xc1\x01\x74redemption-timestamp\x01")
def test_client_data_bytes(data: bytes) -> None:
    parsed = _only_ours(ClientData.from_cbor, data)
    if parsed is not None:
        assert parsed.to_cbor() == data


@given(json_values, st.booleans())
def test_client_data_structures(value: Any, canonical: bool) -> None:
    try:
        data = cbor2.dumps(value, canonical=canonical)
    except (cbor2.CBOREncodeError, ValueError, TypeError):
        return
    _only_ours(ClientData.from_cbor, data)
    if isinstance(value, dict):
        mixed = {"redeeming-origin": SITE, "redemption-timestamp": 1, **value}
        _only_ours(ClientData.from_cbor, cbor2.dumps(mixed))


# ------------------------------------------------------------------------- documents


_COMMITMENT_PATHS = [
    (),
    ("PrivateStateTokenV1VOPRF",),
    ("PrivateStateTokenV1VOPRF", "id"),
    ("PrivateStateTokenV1VOPRF", "batchsize"),
    ("PrivateStateTokenV1VOPRF", "protocol_version"),
    ("PrivateStateTokenV1VOPRF", "keys"),
    ("PrivateStateTokenV1VOPRF", "keys", "1"),
    ("PrivateStateTokenV1VOPRF", "keys", "1", "Y"),
    ("PrivateStateTokenV1VOPRF", "keys", "1", "expiry"),
]


def _replace(doc: Any, path: tuple[str, ...], value: Any) -> Any:
    if not path:
        return value
    out = copy.deepcopy(doc)
    target = out
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return out


@given(st.sampled_from(_COMMITMENT_PATHS), json_values)
def test_commitment_parser(path: tuple[str, ...], value: Any) -> None:
    doc = _replace(COMMITMENT, path, value)
    parsed = _only_ours(KeyCommitment.from_json, doc)
    if parsed is not None:
        assert KeyCommitment.from_bytes(parsed.to_bytes()) == parsed
    _only_ours(KeyCommitment.from_bytes, json.dumps(doc))


@given(st.binary(max_size=300))
def test_commitment_bytes(data: bytes) -> None:
    _only_ours(KeyCommitment.from_bytes, data)


_KEY_FILE_PATHS = [
    (),
    ("format",),
    ("version",),
    ("commitment_id",),
    ("token_keys",),
    ("record_key",),
    ("retired_record_keys",),
]


@given(st.sampled_from(_KEY_FILE_PATHS), json_values)
def test_key_file_parser(path: tuple[str, ...], value: Any) -> None:
    doc = _replace(KEY_FILE, path, value)
    loaded = _only_ours(PSTKeySet.from_json, doc)
    if loaded is not None:
        assert loaded.export_private()["token_keys"] == doc["token_keys"]


@given(
    st.sampled_from(["id", "created_us", "not_before_us", "expiry_us", "private_key"]), json_values
)
def test_key_file_token_key_entries(name: str, value: Any) -> None:
    doc = copy.deepcopy(KEY_FILE)
    doc["token_keys"][0][name] = value
    _only_ours(PSTKeySet.from_json, doc)
    _only_ours(PSTKeySet.from_bytes, json.dumps(doc))


@given(st.binary(max_size=300))
def test_key_file_bytes(data: bytes) -> None:
    _only_ours(PSTKeySet.from_bytes, data)


@given(st.sampled_from(["kty", "crv", "x", "kid", "alg", "use", "key_ops", "d"]), json_values)
def test_jwks_parser(name: str, value: Any) -> None:
    doc = JWKS.to_json()
    entry: dict[str, Any] = dict(doc["keys"][0])
    entry[name] = value
    parsed = _only_ours(RecordKeySet.from_json, {"keys": [entry]})
    if parsed is not None:
        assert RecordKeySet.from_bytes(parsed.to_bytes()) == parsed
    _only_ours(RecordKeySet.from_json, value)


@given(st.binary(max_size=300))
def test_jwks_bytes(data: bytes) -> None:
    _only_ours(RecordKeySet.from_bytes, data)


# --------------------------------------------------------------------------- records


@given(st.text(max_size=600), mutations)
def test_record_parsers(text: str, mutation: tuple[int, int, int]) -> None:
    candidates = [text] + [m.decode("latin-1") for m in _mutate(RECORD.encode("ascii"), *mutation)]
    for candidate in candidates:
        _only_ours(peek_redemption_record, candidate)
        _only_ours(
            lambda c: verify_redemption_record(
                c, issuer=ISSUER, keys=JWKS, accepted_origins=[SITE], now=NOW
            ),
            candidate,
        )


@given(st.sampled_from(["iss", "redeeming_origin", "key_id", "iat", "exp", "jti"]), json_values)
def test_signed_records_with_odd_claims(name: str, value: Any) -> None:
    # A record signed by the trusted key but with claims of any shape.
    claims = RedemptionRecord(ISSUER, SITE, 1, int(NOW), int(NOW) + 60, "id").claims()
    claims_any: dict[str, Any] = dict(claims)
    claims_any[name] = value
    kid = JWKS.keys[0].kid
    header = base64.urlsafe_b64encode(
        json.dumps({"alg": "EdDSA", "kid": kid, "typ": "pst-rr+jwt"}).encode()
    )
    try:
        body = json.dumps(claims_any).encode()
    except ValueError:
        return
    payload = base64.urlsafe_b64encode(body)
    signing_input = (header.rstrip(b"=") + b"." + payload.rstrip(b"=")).decode()
    signature = base64.urlsafe_b64encode(KEYS.record_key.sign(signing_input.encode()))
    text = signing_input + "." + signature.rstrip(b"=").decode()
    _only_ours(
        lambda: verify_redemption_record(
            text, issuer=ISSUER, keys=JWKS, accepted_origins=[SITE], now=NOW
        )
    )


@given(header_text, mutations)
@example('"https://a.example";redemption-record="x", ()', (0, 0, 0))
def test_redemption_record_header(text: str, mutation: tuple[int, int, int]) -> None:
    candidates = [text] + [
        m.decode("latin-1") for m in _mutate(RR_HEADER.encode("ascii"), *mutation)
    ]
    for candidate in candidates:
        _only_ours(parse_redemption_record_header, candidate)
        _only_ours(
            lambda c: verify_redemption_record_header(
                c, trusted={ISSUER: JWKS}, accepted_origins=[SITE], now=NOW
            ),
            candidate,
        )


def test_fixtures_are_valid() -> None:
    assert verify_redemption_record_header(
        RR_HEADER, trusted={ISSUER: JWKS}, accepted_origins=[SITE], now=NOW
    )
    assert isinstance(JWKS.keys[0], RecordKey)
    # The issuer's own records are what the mutations start from.
    assert peek_redemption_record(RECORD).kid == KEYS.record_kid
    # A replay store that fails is one of ours too (the issuer fails closed with it).
    assert issubclass(StoreUnavailable, PrivateTokenError)
