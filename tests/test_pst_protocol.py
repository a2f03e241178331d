"""Private State Tokens, sans-IO: exact messages both ways, the issuer, the key set.

Messages are built with our client helper (blind, batch, VerifyProof, unblind) and answered
by the issuer; the batch path is tied to the RFC 9497 P384-SHA384 batch vector, which
pst-notes §6 says is also BoringSSL's PSTV1VOPRF vector set.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pat_middleware.core.redemption_record import verify_redemption_record
from pat_middleware.errors import ConfigurationError, DecodeError, IssuanceError, Reason, TokenError
from pat_middleware.issuer.pst import PSTIssuer, replay_key
from pat_middleware.issuer.pst_client import (
    PendingIssuance,
    PSTToken,
    begin_issuance,
    finalize_issuance,
)
from pat_middleware.issuer.pst_keys import (
    DEFAULT_ACTIVATION_DELAY,
    MIN_ROTATION_INTERVAL,
    PSTKeySet,
    PSTTokenKey,
    drop_expired,
    new_key_set,
    rotate_record_key,
    rotate_token_key,
)
from pat_middleware.issuer.pst_wire import (
    ClientData,
    IssueRequest,
    IssueResponse,
    KeyCommitment,
    RedeemRequest,
)
from pat_middleware.stores import MemoryReplayStore
from pat_middleware.tokens import oprf
from pat_middleware.tokens.oprf import GENERATOR, Point
from tests.vectors import VECTOR_DIR, h

NOW = 1_800_000_000.0
DAY = 86_400
ISSUER = "https://issuer.example"
SITE = "https://site.example"
RFC9497: dict[str, Any] = json.loads((VECTOR_DIR / "rfc9497-voprf-p384-sha384.json").read_text())


@pytest.fixture(scope="module")
def keys() -> PSTKeySet:
    return new_key_set(now=NOW - DAY)


@pytest.fixture
def issuer(keys: PSTKeySet) -> PSTIssuer:
    return PSTIssuer(keys, issuer_origin=ISSUER, batch_size=4, clock=lambda: NOW)


def _tokens(issuer: PSTIssuer, count: int = 4) -> list[PSTToken]:
    request, pending = begin_issuance(count)
    answer = issuer.issue(request.to_header())
    return finalize_issuance(pending, IssueResponse.from_header(answer.header), issuer.commitment())


# ------------------------------------------------------------------- exact layouts


def test_issue_request_layout() -> None:
    request, pending = begin_issuance(2)
    raw = request.to_bytes()
    assert raw[:2] == b"\x00\x02" and len(raw) == 2 + 2 * 97
    assert raw[2] == raw[99] == 0x04
    assert IssueRequest.from_bytes(raw) == request
    assert IssueRequest.from_header(f'"{request.to_header()}"') == request  # quotes tolerated
    assert base64.b64decode(request.to_header()) == raw
    assert len(pending.nonces[0]) == 64


def test_issue_response_layout_and_round_trip(issuer: PSTIssuer) -> None:
    request, pending = begin_issuance(3)
    answer = issuer.issue(request.to_header())
    raw = base64.b64decode(answer.header)
    issued, key_id = struct.unpack_from("!HI", raw)
    assert (issued, key_id) == (3, 1) == (answer.issued, answer.key_id)
    assert len(raw) == 6 + 3 * 97 + 2 + 96
    assert raw[6 + 3 * 97 : 6 + 3 * 97 + 2] == b"\x00\x60"
    response = IssueResponse.from_bytes(raw)
    assert response.to_bytes() == raw
    tokens = finalize_issuance(pending, response, issuer.commitment())
    secret = issuer.keys.key(1)
    assert secret is not None
    for token, nonce in zip(tokens, pending.nonces, strict=True):
        assert token.nonce == nonce
        assert token.w == secret.secret.multiply(oprf.hash_to_group(nonce))


def test_redeem_request_layout() -> None:
    w = oprf.SecretKey.generate().multiply(oprf.hash_to_group(b"n" * 64))
    client_data = ClientData(SITE, 1_700_000_000).to_cbor()
    request = RedeemRequest(7, b"n" * 64, w, client_data)
    raw = request.to_bytes()
    assert raw[:2] == b"\x00\xa5"  # 165: u32 key id || 64-byte nonce || 97-byte W
    assert raw[2:6] == b"\x00\x00\x00\x07" and raw[6:70] == b"n" * 64
    assert raw[70:167] == oprf.encode_uncompressed(w)
    assert raw[167:169] == len(client_data).to_bytes(2, "big") and raw[169:] == client_data
    assert RedeemRequest.from_bytes(raw) == request
    # Canonical CBOR, in the order Chromium writes it (pst-notes §4).
    assert client_data == (
        b"\xa2" + b"\x70redeeming-origin" + b"\x74https://site.example"
        b"\x74redemption-timestamp" + b"\x1a\x65\x53\xf1\x00"
    )
    assert ClientData.from_cbor(client_data) == ClientData(SITE, 1_700_000_000)


def test_commitment_is_exactly_what_chromium_parses(issuer: PSTIssuer) -> None:
    body = json.loads(issuer.commitment().to_bytes())
    inner = body["PrivateStateTokenV1VOPRF"]
    assert inner["protocol_version"] == "PrivateStateTokenV1VOPRF"
    assert type(inner["id"]) is int and inner["id"] >= 1
    assert inner["batchsize"] == 4
    (label,) = inner["keys"]
    entry = inner["keys"][label]
    y = base64.b64decode(entry["Y"])
    assert label == "1" and y[:4] == b"\x00\x00\x00\x01" and len(y) == 101 and y[4] == 4
    assert isinstance(entry["expiry"], str) and entry["expiry"].isdigit()
    assert int(entry["expiry"]) > NOW * 1_000_000  # microseconds, in the future
    assert b"1.0" not in issuer.commitment().to_bytes()
    assert KeyCommitment.from_json(body) == issuer.commitment()


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c.update(id=0),
        lambda c: c.update(id=1.0),
        lambda c: c.update(batchsize=0),
        lambda c: c.update(protocol_version="PrivateStateTokenV3VOPRF"),
        lambda c: c["keys"].update(k1=c["keys"].pop("1")),
        lambda c: c["keys"]["1"].update(expiry=int(c["keys"]["1"]["expiry"])),
        lambda c: c["keys"].update({"2": c["keys"]["1"]}),  # Y's inner id differs
    ],
)
def test_commitment_parser_refuses_what_chromium_refuses(issuer: PSTIssuer, edit: Any) -> None:
    body = json.loads(issuer.commitment().to_bytes())
    edit(body["PrivateStateTokenV1VOPRF"])
    with pytest.raises(DecodeError):
        KeyCommitment.from_json(body)


# ---------------------------------------------------------------------- RFC 9497


def test_pst_batch_path_reproduces_the_rfc9497_batch_vector() -> None:
    """RFC 9497 A.4.2 vector 3 (batch of 2) = BoringSSL PSTV1VOPRFTestVector3, through our
    PST messages: the issuer's evaluations, the client's VerifyProof and unblinding."""
    vector = next(v for v in RFC9497["vectors"] if v["Batch"] == 2)
    secret = oprf.derive_key_pair(h(RFC9497["Seed"]), h(RFC9497["KeyInfo"]))
    assert secret.public_key.compressed == h(RFC9497["pkSm"])
    keys = PSTKeySet(
        token_keys=(PSTTokenKey(1, secret, 0, 0, int(NOW * 1e6) + 10**12),),
        record_key=Ed25519PrivateKey.generate(),
        record_key_created_us=0,
    )
    issuer = PSTIssuer(keys, issuer_origin=ISSUER, clock=lambda: NOW)
    split = [h(x) for x in vector["BlindedElement"].split(",")]
    blinded = tuple(oprf.deserialize_element(b) for b in split)
    answer = issuer.issue(IssueRequest(blinded).to_header())
    response = IssueResponse.from_header(answer.header)
    expected = [h(x) for x in vector["EvaluationElement"].split(",")]
    assert [oprf.serialize_element(z) for z in response.evaluated] == expected

    # The vector's own proof, in our response layout, verifies in our client and unblinds to
    # the vector's outputs (PST keeps W; RFC 9497 Finalize hashes it).
    with_vector_proof = IssueResponse(
        1, response.evaluated, oprf.Proof.from_bytes(h(vector["Proof"]))
    )
    inputs = [h(x) for x in vector["Input"].split(",")]
    blinds = tuple(int(x, 16) for x in vector["Blind"].split(","))
    pending = PendingIssuance(tuple(inputs), blinds, blinded)
    tokens = finalize_issuance(pending, with_vector_proof, issuer.commitment())
    outputs = [
        hashlib.sha384(
            len(data).to_bytes(2, "big")
            + data
            + b"\x00\x31"
            + oprf.serialize_element(t.w)
            + b"Finalize"
        ).digest()
        for data, t in zip(inputs, tokens, strict=True)
    ]
    assert outputs == [h(x) for x in vector["Output"].split(",")]
    # And our fresh proof verifies too.
    assert finalize_issuance(pending, response, issuer.commitment())[0].w == tokens[0].w


# ------------------------------------------------------------------------ issuance


def test_issuer_signs_at_most_batchsize_and_the_proof_covers_those(issuer: PSTIssuer) -> None:
    request, pending = begin_issuance(6)
    answer = issuer.issue(request.to_header())
    assert answer.issued == 4
    tokens = finalize_issuance(
        pending, IssueResponse.from_header(answer.header), issuer.commitment()
    )
    assert [t.nonce for t in tokens] == list(pending.nonces[:4])
    limited = issuer.issue(request.to_header(), limit=1)
    assert limited.issued == 1
    with pytest.raises(IssuanceError) as info:
        issuer.issue(request.to_header(), limit=0)
    assert info.value.status == 403


def test_client_refuses_a_proof_that_does_not_verify(issuer: PSTIssuer) -> None:
    request, pending = begin_issuance(2)
    response = IssueResponse.from_header(issuer.issue(request.to_header()).header)
    swapped = IssueResponse(1, response.evaluated[::-1], response.proof)
    with pytest.raises(DecodeError, match="VerifyError"):
        finalize_issuance(pending, swapped, issuer.commitment())
    other = new_key_set(now=NOW - DAY)
    with pytest.raises(DecodeError, match="VerifyError"):
        finalize_issuance(pending, response, other.commitment(int(NOW * 1e6), 4))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not base64!",
        '"',
        _b64(b"\x00"),
        _b64(b"\x00\x00"),  # count 0
        _b64(b"\x00\x65" + b"\x04" * 97 * 101),  # 101 > 100
        _b64(b"\x00\x02" + oprf.encode_uncompressed(GENERATOR)),  # count says 2, one point
        _b64(b"\x00\x01" + b"\x04" + b"\x00" * 96),  # (0, 0): the identity's stand-in, off curve
        _b64(b"\x00\x01" + b"\x04" + b"\x01" * 96),  # not on the curve
        _b64(b"\x00\x01" + oprf.encode_compressed(GENERATOR)),  # compressed point
        _b64(b"\x00\x01" + oprf.encode_uncompressed(GENERATOR) + b"\x00"),  # trailing byte
        "A" * 20_000,
    ],
)
def test_malformed_issue_requests_are_400(issuer: PSTIssuer, value: str) -> None:
    with pytest.raises(IssuanceError) as info:
        issuer.issue(value)
    assert info.value.status == 400


def test_issuer_uses_the_newest_signing_key_or_the_one_asked_for() -> None:
    first = new_key_set(now=NOW - 100 * DAY)
    rotated = rotate_token_key(first, now=NOW - 10 * DAY)
    assert [k.key_id for k in rotated.token_keys] == [1, 2]
    assert rotated.commitment_id == 2
    issuer = PSTIssuer(rotated, issuer_origin=ISSUER, clock=lambda: NOW)
    request, _ = begin_issuance(1)
    assert issuer.issue(request.to_header()).key_id == 2  # active 7 days after rotation
    early = PSTIssuer(rotated, issuer_origin=ISSUER, clock=lambda: NOW - 9 * DAY)
    assert early.issue(request.to_header()).key_id == 1  # published, not signing yet
    assert len(early.commitment().keys) == 2
    assert issuer.issue(request.to_header(), key_id=1).key_id == 1
    with pytest.raises(IssuanceError):
        issuer.issue(request.to_header(), key_id=9)


# ---------------------------------------------------------------------- redemption


def test_redemption_answers_a_record_anyone_can_verify(issuer: PSTIssuer) -> None:
    token = _tokens(issuer, 1)[0]
    answer = issuer.redeem(token.redeem_request(SITE, int(NOW)).to_header())
    assert answer.lifetime == issuer.record_lifetime
    assert answer.record.isascii() and answer.record.isprintable() and len(answer.record) < 500
    record = verify_redemption_record(
        answer.record,
        issuer=ISSUER,
        keys=issuer.record_key_set(),
        accepted_origins=[SITE],
        now=NOW + 60,
    )
    assert (record.issuer, record.redeeming_origin, record.key_id) == (ISSUER, SITE, 1)
    assert (record.issued_at, record.expires_at) == (int(NOW), int(NOW) + answer.lifetime)
    assert record == answer.claims


def test_double_redemption_is_refused(issuer: PSTIssuer) -> None:
    token = _tokens(issuer, 1)[0]
    value = token.redeem_request(SITE, int(NOW)).to_header()
    issuer.redeem(value)
    with pytest.raises(TokenError) as info:
        issuer.redeem(value)
    assert info.value.reason is Reason.REPLAYED
    # Another redeeming origin or timestamp does not make it a new token.
    with pytest.raises(TokenError) as again:
        issuer.redeem(token.redeem_request("https://other.example", int(NOW) + 5).to_header())
    assert again.value.reason is Reason.REPLAYED


def test_spent_nonces_are_kept_until_the_key_expires(keys: PSTKeySet) -> None:
    store = MemoryReplayStore()
    ttls: list[float] = []

    class Spy:
        def spend(self, key: bytes, ttl: float) -> bool:
            ttls.append(ttl)
            return store.spend(key, ttl)

        async def spend_async(self, key: bytes, ttl: float) -> bool:
            raise AssertionError("the issuer spends synchronously")

        def close(self) -> None:
            return None

        async def aclose(self) -> None:
            return None

    issuer = PSTIssuer(keys, issuer_origin=ISSUER, replay_store=Spy(), clock=lambda: NOW)
    token = _tokens(issuer, 1)[0]
    issuer.redeem(token.redeem_request(SITE, int(NOW)).to_header())
    (ttl,) = ttls
    assert ttl >= keys.token_keys[0].expiry_us / 1e6 - NOW
    assert not store.spend(replay_key(token.nonce), 1)


def test_forged_and_relabelled_tokens_are_refused(issuer: PSTIssuer) -> None:
    token = _tokens(issuer, 1)[0]
    forged_w = oprf.SecretKey.generate().multiply(oprf.hash_to_group(token.nonce))
    cases = [
        (PSTToken(1, token.nonce, forged_w), Reason.BAD_SIGNATURE),
        (PSTToken(1, bytes(64), token.w), Reason.BAD_SIGNATURE),  # W of another nonce
        (PSTToken(1, token.nonce, GENERATOR), Reason.BAD_SIGNATURE),
        (PSTToken(2, token.nonce, token.w), Reason.UNKNOWN_KEY),
    ]
    for bad, reason in cases:
        with pytest.raises(TokenError) as info:
            issuer.redeem(bad.redeem_request(SITE, int(NOW)).to_header())
        assert info.value.reason is reason
    # None of that burnt the real token.
    issuer.redeem(token.redeem_request(SITE, int(NOW)).to_header())


def test_tokens_of_an_expired_key_are_refused(keys: PSTKeySet) -> None:
    issuer = PSTIssuer(keys, issuer_origin=ISSUER, clock=lambda: NOW)
    token = _tokens(issuer, 1)[0]
    later = keys.token_keys[0].expiry_us / 1e6 + 1
    with pytest.raises(TokenError) as info:
        issuer.redeem(token.redeem_request(SITE, int(later)).to_header(), now=later)
    assert info.value.reason is Reason.EXPIRED


@pytest.mark.parametrize(
    "client_data",
    [
        b"",
        b"\xa0",
        ClientData("not an origin", 1).to_cbor(),
        b"\xa2\x74redemption-timestamp\x01\x70redeeming-origin\x74https://site.example",
        b"\xbf\x70redeeming-origin\x74https://site.example\x74redemption-timestamp\x01\xff",
        b"\xa2\x70redeeming-origin\xd8\x20\x74https://site.example\x74redemption-timestamp\x01",
        b"\xa2\x70redeeming-origin\x74https://site.example\x74redemption-timestamp\x20",
        b"\xa2\x70redeeming-origin\x74https://site.example\x74redemption-timestamp\x18\x01",
    ],
)
def test_bad_client_data_is_malformed(issuer: PSTIssuer, client_data: bytes) -> None:
    token = _tokens(issuer, 1)[0]
    value = RedeemRequest(1, token.nonce, token.w, client_data).to_header()
    with pytest.raises(TokenError) as info:
        issuer.redeem(value)
    assert info.value.reason is Reason.MALFORMED


def test_truncated_and_padded_redemptions_are_malformed(issuer: PSTIssuer) -> None:
    token = _tokens(issuer, 1)[0]
    raw = token.redeem_request(SITE, int(NOW)).to_bytes()
    for bad in (raw[:-1], raw + b"\x00", raw[:100], b"\x00\xa4" + raw[2:], b""):
        with pytest.raises(TokenError) as info:
            issuer.redeem(_b64(bad))
        assert info.value.reason is Reason.MALFORMED


# ------------------------------------------------------------------------ key set


def test_key_file_round_trip_is_private(tmp_path: Path, keys: PSTKeySet) -> None:
    path = tmp_path / "pst.json"
    keys.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = PSTKeySet.load(path)
    assert loaded.export_private() == keys.export_private()
    assert loaded.record_kid == keys.record_kid
    os.chmod(path, 0o644)
    with pytest.raises(ConfigurationError, match="readable by others"):
        PSTKeySet.load(path)


def test_secrets_stay_out_of_repr_and_errors(keys: PSTKeySet) -> None:
    pems = [k["private_key"] for k in keys.export_private()["token_keys"]]
    pems.append(keys.export_private()["record_key"]["private_key"])
    secret_value = keys.token_keys[0].secret.private_key.private_numbers().private_value
    texts = [repr(keys), repr(keys.token_keys[0]), str(keys)]
    broken = keys.export_private()
    broken["token_keys"][0]["private_key"] = pems[0].replace("A", "B", 3)
    with pytest.raises(ConfigurationError) as info:
        PSTKeySet.from_json(broken)
    texts.append(str(info.value))
    for text in texts:
        assert "PRIVATE KEY" not in text and f"{secret_value:x}" not in text
        for pem in pems:
            assert pem.splitlines()[1] not in text


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.update(format="other"),
        lambda d: d.update(version=2),
        lambda d: d.update(commitment_id=0),
        lambda d: d.update(token_keys=[]),
        lambda d: d.update(token_keys=d["token_keys"] * 2),  # same id twice
        lambda d: d["token_keys"][0].update(id=-1),
        lambda d: d["token_keys"][0].update(expiry_us=d["token_keys"][0]["created_us"]),
        lambda d: d["token_keys"][0].update(private_key=d["record_key"]["private_key"]),
        lambda d: d["record_key"].update(private_key=d["token_keys"][0]["private_key"]),
        lambda d: d.update(retired_record_keys=[{"x": "!!", "until_us": 1}]),
    ],
)
def test_bad_key_files_are_configuration_errors(keys: PSTKeySet, edit: Any) -> None:
    data = keys.export_private()
    edit(data)
    with pytest.raises(ConfigurationError):
        PSTKeySet.from_bytes(json.dumps(data))


def test_new_key_sets_never_share_a_signing_key() -> None:
    kids = {new_key_set(now=NOW).record_kid for _ in range(5)}
    assert len(kids) == 5


def test_rotation_follows_chromes_limits() -> None:
    keys = new_key_set(now=NOW, lifetime=250 * DAY)
    with pytest.raises(ConfigurationError, match="younger than 60 days"):
        rotate_token_key(keys, now=NOW + MIN_ROTATION_INTERVAL - 1)
    for step in range(1, 5):
        keys = rotate_token_key(keys, now=NOW + step * MIN_ROTATION_INTERVAL, lifetime=999 * DAY)
    assert [k.key_id for k in keys.token_keys] == [1, 2, 3, 4, 5]
    assert keys.token_keys[-1].not_before_us == int(
        (NOW + 4 * MIN_ROTATION_INTERVAL + DEFAULT_ACTIVATION_DELAY) * 1e6
    )
    # Key 1 expires on day 250: the commitment leaves it out from then on.
    assert len(keys.commitment(int((NOW + 249 * DAY) * 1e6), 10).keys) == 5
    assert [k.key_id for k in keys.commitment(int((NOW + 251 * DAY) * 1e6), 10).keys] == [
        2,
        3,
        4,
        5,
    ]
    assert [k.key_id for k in drop_expired(keys, now=NOW + 251 * DAY).token_keys] == [2, 3, 4, 5]
    # Rotation drops it too; a seventh live key is refused.
    for step in (5, 6):
        keys = rotate_token_key(keys, now=NOW + step * MIN_ROTATION_INTERVAL, lifetime=999 * DAY)
    assert [k.key_id for k in keys.token_keys] == [2, 3, 4, 5, 6, 7]
    with pytest.raises(ConfigurationError, match="6 live keys"):
        rotate_token_key(keys, now=NOW + 7 * MIN_ROTATION_INTERVAL)


def test_record_key_rotation_keeps_the_old_key_published_for_its_records(
    keys: PSTKeySet,
) -> None:
    issuer = PSTIssuer(keys, issuer_origin=ISSUER, clock=lambda: NOW)
    token = _tokens(issuer, 1)[0]
    record = issuer.redeem(token.redeem_request(SITE, int(NOW)).to_header()).record
    rotated = rotate_record_key(keys, now=NOW, keep_for=issuer.record_lifetime + 60)
    assert rotated.record_kid != keys.record_kid
    published = rotated.record_key_set(int(NOW * 1e6))
    verify_redemption_record(
        record, issuer=ISSUER, keys=published, accepted_origins=[SITE], now=NOW
    )
    gone = rotated.record_key_set(int((NOW + issuer.record_lifetime + 61) * 1e6))
    assert gone.get(keys.record_kid) is None


def test_issuer_configuration_is_checked(keys: PSTKeySet) -> None:
    for kwargs in (
        {"issuer_origin": "https://issuer.example/path"},
        {"issuer_origin": ISSUER, "batch_size": 0},
        {"issuer_origin": ISSUER, "batch_size": 101},
        {"issuer_origin": ISSUER, "record_lifetime": 0},
    ):
        with pytest.raises(ConfigurationError):
            PSTIssuer(keys, **kwargs)
    assert "PRIVATE" not in repr(PSTIssuer(keys, issuer_origin=ISSUER))


def test_points_compare_in_full() -> None:
    # The redemption check compares whole points: a W with the right x but the other y is
    # a different point, refused.
    w = oprf.SecretKey.generate().multiply(GENERATOR)
    assert -w != w and Point(w.x, w.y) == w
