"""RFC 9497 VOPRF P384-SHA384: every RFC vector, the RFC 9578 type-1 vectors, and refusals."""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pat_middleware.errors import DecodeError
from pat_middleware.tokens import oprf
from pat_middleware.tokens.oprf import voprf
from pat_middleware.tokens.oprf.p384 import GENERATOR, IDENTITY, N, Point
from tests.vectors import VECTOR_DIR, h, load

RFC9497: dict[str, Any] = json.loads((VECTOR_DIR / "rfc9497-voprf-p384-sha384.json").read_text())
TYPE1 = load("rfc9578-type1-voprf-issuance.json")


def _split(field: str) -> list[bytes]:
    return [h(item) for item in field.split(",")]


@pytest.fixture(scope="module")
def rfc_key() -> oprf.SecretKey:
    return oprf.derive_key_pair(h(RFC9497["Seed"]), h(RFC9497["KeyInfo"]))


@pytest.fixture(scope="module")
def key() -> oprf.SecretKey:
    return oprf.SecretKey.generate()


@pytest.fixture(scope="module")
def other_key() -> oprf.SecretKey:
    return oprf.SecretKey.generate()


# -- constants -------------------------------------------------------------------------------


def test_context_string_and_dsts() -> None:
    assert oprf.CONTEXT_STRING == b"OPRFV1-\x01-P384-SHA384"
    assert voprf.create_context_string(voprf.MODE_VOPRF, b"P384-SHA384") == oprf.CONTEXT_STRING
    assert oprf.HASH_TO_GROUP_DST == b"HashToGroup-OPRFV1-\x01-P384-SHA384"
    assert oprf.HASH_TO_SCALAR_DST == b"HashToScalar-OPRFV1-\x01-P384-SHA384"
    assert voprf.DERIVE_KEY_PAIR_DST == b"DeriveKeyPairOPRFV1-\x01-P384-SHA384"
    assert voprf.SEED_DST == b"Seed-OPRFV1-\x01-P384-SHA384"
    assert (oprf.NH, oprf.NE, oprf.NS, oprf.PROOF_LENGTH) == (48, 49, 48, 96)


# -- RFC 9497 Appendix A.4.2 -----------------------------------------------------------------


def test_rfc9497_file_is_p384_voprf() -> None:
    assert (RFC9497["identifier"], RFC9497["mode"]) == ("P384-SHA384", 1)
    assert [v["Batch"] for v in RFC9497["vectors"]] == [1, 1, 2]


def test_rfc9497_derive_key_pair(rfc_key: oprf.SecretKey) -> None:
    assert rfc_key.private_key.private_numbers().private_value == int(RFC9497["skSm"], 16)
    assert rfc_key.public_key.compressed.hex() == RFC9497["pkSm"]
    assert oprf.SecretKey.from_bytes(h(RFC9497["skSm"])).public_key == rfc_key.public_key


@pytest.mark.parametrize("vector", RFC9497["vectors"], ids=lambda v: v["name"])
def test_rfc9497_vector(vector: dict[str, Any], rfc_key: oprf.SecretKey) -> None:
    inputs = _split(vector["Input"])
    blinds = [int.from_bytes(b, "big") for b in _split(vector["Blind"])]
    assert len(inputs) == len(blinds) == vector["Batch"]

    blinded = []
    for data, scalar in zip(inputs, blinds, strict=True):
        returned, element = oprf.blind(data, blind=scalar)
        assert returned == scalar
        blinded.append(element)
    assert [oprf.serialize_element(e) for e in blinded] == _split(vector["BlindedElement"])

    r = int(vector["ProofRandomScalar"], 16)
    evaluated, proof = oprf.blind_evaluate_batch(rfc_key, blinded, r=r)
    assert [oprf.serialize_element(e) for e in evaluated] == _split(vector["EvaluationElement"])
    assert proof.to_bytes() == h(vector["Proof"])

    # The client side, from the wire bytes.
    wire_evaluated = [oprf.deserialize_element(b) for b in _split(vector["EvaluationElement"])]
    wire_proof = oprf.Proof.from_bytes(h(vector["Proof"]))
    pk = oprf.PublicKey.from_compressed(h(RFC9497["pkSm"])).point
    assert oprf.verify_proof(GENERATOR, pk, blinded, wire_evaluated, wire_proof)
    outputs = oprf.finalize_batch(inputs, blinds, wire_evaluated, blinded, pk, wire_proof)
    assert outputs == _split(vector["Output"])
    assert [oprf.evaluate(rfc_key, data) for data in inputs] == outputs

    if vector["Batch"] == 1:
        single, single_proof = oprf.blind_evaluate(rfc_key, blinded[0], r=r)
        assert (single, single_proof) == (evaluated[0], proof)
        output = oprf.finalize(inputs[0], blinds[0], single, blinded[0], pk, single_proof)
        assert [output] == outputs


# -- RFC 9578 Appendix A.1 (token type 0x0001) ---------------------------------------------------


def _type1_token_input(vector: dict[str, str]) -> bytes:
    # RFC 9578 §5.3: token_type || nonce || SHA-256(challenge) || token_key_id.
    token_key_id = hashlib.sha256(h(vector["pkS"])).digest()
    challenge_digest = hashlib.sha256(h(vector["token_challenge"])).digest()
    return b"\x00\x01" + h(vector["nonce"]) + challenge_digest + token_key_id


@pytest.mark.parametrize("vector", TYPE1, ids=[f"type1-{i + 1}" for i in range(len(TYPE1))])
def test_rfc9578_type1_vector(vector: dict[str, str]) -> None:
    key = oprf.SecretKey.from_bytes(h(vector["skS"]))
    assert key.public_key.compressed == h(vector["pkS"])
    assert key.public_key.point == GENERATOR.multiply_public(int(vector["skS"], 16))

    token_input = _type1_token_input(vector)
    token = h(vector["token"])
    assert token[: len(token_input)] == token_input
    authenticator = token[len(token_input) :]
    assert len(authenticator) == oprf.NH

    # TokenRequest = type || truncated token_key_id || blinded element.
    blind, blinded = oprf.blind(token_input, blind=int(vector["blind"], 16))
    token_key_id = hashlib.sha256(h(vector["pkS"])).digest()
    request = b"\x00\x01" + token_key_id[-1:] + oprf.serialize_element(blinded)
    assert request == h(vector["token_request"])

    # TokenResponse = evaluated element || proof. The RFC does not list the proof nonce, but
    # the key holder can recover it: r = s + c*k.
    response = h(vector["token_response"])
    evaluated = oprf.deserialize_element(response[: oprf.NE])
    proof = oprf.Proof.from_bytes(response[oprf.NE :])
    nonce = (proof.s + proof.c * int(vector["skS"], 16)) % N
    ours, our_proof = oprf.blind_evaluate(key, blinded, r=nonce)
    assert oprf.serialize_element(ours) + our_proof.to_bytes() == response

    pk = oprf.PublicKey.from_compressed(h(vector["pkS"])).point
    assert oprf.finalize(token_input, blind, evaluated, blinded, pk, proof) == authenticator
    assert oprf.evaluate(key, token_input) == authenticator


# -- round trips and agreement ------------------------------------------------------------------


@settings(max_examples=25)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=4))
def test_round_trip_with_fresh_randomness(key: oprf.SecretKey, inputs: list[bytes]) -> None:
    blinds, blinded = zip(*(oprf.blind(data) for data in inputs), strict=True)
    evaluated, proof = oprf.blind_evaluate_batch(key, list(blinded))
    pk = key.public_key.point
    outputs = oprf.finalize_batch(inputs, list(blinds), evaluated, list(blinded), pk, proof)
    assert outputs == [oprf.evaluate(key, data) for data in inputs]


def test_unblind_gives_k_times_hash(key: oprf.SecretKey) -> None:
    blind, blinded = oprf.blind(b"input")
    evaluated, _ = oprf.blind_evaluate(key, blinded)
    assert oprf.unblind(blind, evaluated) == key.multiply(oprf.hash_to_group(b"input"))


def test_random_scalar() -> None:
    values = {oprf.random_scalar() for _ in range(8)}
    assert len(values) == 8 and all(0 < v < N for v in values)


def test_generate_proof_for_another_base(key: oprf.SecretKey) -> None:
    # GenerateProof/VerifyProof are general: any A with B = k*A.
    a = oprf.hash_to_group(b"base")
    c = [oprf.hash_to_group(b"c0"), oprf.hash_to_group(b"c1")]
    d = [key.multiply(e) for e in c]
    proof = oprf.generate_proof(key, a, key.multiply(a), c, d)
    assert oprf.verify_proof(a, key.multiply(a), c, d, proof)
    assert not oprf.verify_proof(a, key.public_key.point, c, d, proof)


# -- refusals ----------------------------------------------------------------------------------


Evaluation = tuple[list[bytes], list[int], list[Point], list[Point], oprf.Proof]


@pytest.fixture(scope="module")
def evaluation(key: oprf.SecretKey) -> Evaluation:
    inputs = [b"first", b"second"]
    blinds, blinded = zip(*(oprf.blind(data) for data in inputs), strict=True)
    evaluated, proof = oprf.blind_evaluate_batch(key, list(blinded))
    return inputs, list(blinds), evaluated, list(blinded), proof


def test_evaluation_fixture_verifies(key: oprf.SecretKey, evaluation: Evaluation) -> None:
    _, _, evaluated, blinded, proof = evaluation
    assert oprf.verify_proof(GENERATOR, key.public_key.point, blinded, evaluated, proof)


@given(st.integers(min_value=0, max_value=8 * oprf.PROOF_LENGTH - 1))
def test_proof_with_one_bit_flipped_fails(
    key: oprf.SecretKey, evaluation: Evaluation, bit: int
) -> None:
    inputs, blinds, evaluated, blinded, proof = evaluation
    wire = bytearray(proof.to_bytes())
    wire[bit // 8] ^= 0x80 >> (bit % 8)
    try:
        flipped = oprf.Proof.from_bytes(bytes(wire))
    except DecodeError:
        return  # a scalar went out of range: refused at parse time
    pk = key.public_key.point
    assert not oprf.verify_proof(GENERATOR, pk, blinded, evaluated, flipped)
    with pytest.raises(DecodeError):
        oprf.finalize_batch(inputs, blinds, evaluated, blinded, pk, flipped)


def test_wrong_key_fails(
    key: oprf.SecretKey, other_key: oprf.SecretKey, evaluation: Evaluation
) -> None:
    inputs, blinds, evaluated, blinded, proof = evaluation
    other_pk = other_key.public_key.point
    assert not oprf.verify_proof(GENERATOR, other_pk, blinded, evaluated, proof)
    with pytest.raises(DecodeError):
        oprf.finalize_batch(inputs, blinds, evaluated, blinded, other_pk, proof)
    # An evaluation by the wrong key with its own valid proof fails against the right key.
    wrong, wrong_proof = oprf.blind_evaluate_batch(other_key, blinded)
    assert not oprf.verify_proof(GENERATOR, key.public_key.point, blinded, wrong, wrong_proof)
    # The origin path: Evaluate under another key gives another output.
    assert oprf.evaluate(other_key, inputs[0]) != oprf.evaluate(key, inputs[0])


def test_tampered_or_reordered_elements_fail(key: oprf.SecretKey, evaluation: Evaluation) -> None:
    _, _, evaluated, blinded, proof = evaluation
    pk = key.public_key.point
    assert not oprf.verify_proof(GENERATOR, pk, blinded, evaluated[::-1], proof)
    assert not oprf.verify_proof(GENERATOR, pk, blinded[::-1], evaluated[::-1], proof)
    assert not oprf.verify_proof(GENERATOR, pk, blinded, [evaluated[0], -evaluated[1]], proof)
    assert not oprf.verify_proof(GENERATOR, pk, blinded[:1], evaluated[:1], proof)


def test_forged_proofs_that_hit_the_identity_fail(
    key: oprf.SecretKey, evaluation: Evaluation
) -> None:
    # s = -c*k makes t2 = s*G + c*pkS the identity: VerifyProof must say no, not crash.
    _, _, evaluated, blinded, _ = evaluation
    pk = key.public_key.point
    k = key.private_key.private_numbers().private_value
    for c in (0, 1, 12345, N - 1):
        forged = oprf.Proof(c, (-c * k) % N)
        assert not oprf.verify_proof(GENERATOR, pk, blinded, evaluated, forged)


def test_batch_shapes_are_checked(key: oprf.SecretKey, evaluation: Evaluation) -> None:
    inputs, blinds, evaluated, blinded, proof = evaluation
    pk = key.public_key.point
    with pytest.raises(DecodeError):
        oprf.blind_evaluate_batch(key, [])
    with pytest.raises(DecodeError):
        oprf.verify_proof(GENERATOR, pk, blinded, evaluated[:1], proof)
    with pytest.raises(DecodeError):
        oprf.verify_proof(GENERATOR, pk, [], [], proof)
    with pytest.raises(DecodeError):
        oprf.compute_composites(pk, blinded[:1], evaluated)
    with pytest.raises(DecodeError):
        oprf.compute_composites_fast(key, pk, blinded, evaluated[:1])
    with pytest.raises(DecodeError):
        oprf.finalize_batch(inputs[:1], blinds, evaluated, blinded, pk, proof)
    with pytest.raises(DecodeError):
        oprf.finalize_batch(inputs, blinds[:1], evaluated, blinded, pk, proof)
    with pytest.raises(DecodeError):
        oprf.blind_evaluate_batch(key, [blinded[0], IDENTITY])
    with pytest.raises(DecodeError):
        oprf.verify_proof(GENERATOR, pk, blinded, [evaluated[0], IDENTITY], proof)
    with pytest.raises(DecodeError):
        oprf.unblind(blinds[0], IDENTITY)
    with pytest.raises(DecodeError):
        oprf.verify_proof(GENERATOR, IDENTITY, blinded, evaluated, proof)
    with pytest.raises(DecodeError):
        oprf.verify_proof(IDENTITY, pk, blinded, evaluated, proof)
    with pytest.raises(DecodeError):
        oprf.generate_proof(key, IDENTITY, pk, blinded, evaluated)
    with pytest.raises(DecodeError):
        oprf.finalize_batch(inputs, blinds, evaluated, blinded, IDENTITY, proof)


def test_input_limits(key: oprf.SecretKey) -> None:
    too_long = bytes(voprf.MAX_INPUT_LENGTH + 1)
    with pytest.raises(DecodeError):
        oprf.blind(too_long)
    with pytest.raises(DecodeError):
        oprf.evaluate(key, too_long)
    with pytest.raises(DecodeError):
        oprf.derive_key_pair(b"seed", bytes(0x10000))
    for bad in (0, N):
        with pytest.raises(DecodeError):
            oprf.blind(b"x", blind=bad)
        with pytest.raises(DecodeError):
            oprf.unblind(bad, GENERATOR)
        with pytest.raises(DecodeError):
            oprf.generate_proof(
                key, GENERATOR, key.public_key.point, [GENERATOR], [GENERATOR], r=bad
            )


def test_derive_key_pair_depends_on_seed_and_info() -> None:
    base = oprf.derive_key_pair(b"\xa3" * 32, b"info")
    assert oprf.derive_key_pair(b"\xa3" * 32, b"info").public_key == base.public_key
    assert oprf.derive_key_pair(b"\xa3" * 32, b"other").public_key != base.public_key
    assert oprf.derive_key_pair(b"\xa4" * 32, b"info").public_key != base.public_key


# -- parsers raise DecodeError and nothing else -------------------------------------------------


_DST = b"pat-middleware-tests-P384"
elements = st.one_of(
    st.binary(max_size=16).map(lambda msg: oprf.hash_to_curve(msg, _DST)), st.just(IDENTITY)
)


@settings(max_examples=40)
@given(st.lists(elements, max_size=3), st.lists(elements, max_size=3))
def test_batches_of_any_shape_raise_only_decode_error(
    key: oprf.SecretKey, blinded: list[Point], other: list[Point]
) -> None:
    pk = key.public_key.point
    try:
        evaluated, proof = oprf.blind_evaluate_batch(key, blinded)
    except DecodeError:
        assert not blinded or IDENTITY in blinded
        return
    assert oprf.verify_proof(GENERATOR, pk, blinded, evaluated, proof)
    try:
        verified = oprf.verify_proof(GENERATOR, pk, blinded, other, proof)
    except DecodeError:
        assert len(other) != len(blinded) or IDENTITY in other
        return
    assert verified == (other == evaluated)


@given(st.binary(max_size=200))
def test_proof_parser_raises_only_decode_error(data: bytes) -> None:
    try:
        proof = oprf.Proof.from_bytes(data)
    except DecodeError:
        return
    assert proof.to_bytes() == data


@given(st.binary(min_size=96, max_size=96))
def test_proof_parser_on_right_length(data: bytes) -> None:
    try:
        proof = oprf.Proof.from_bytes(data)
    except DecodeError:
        assert max(data[:48], data[48:]) >= N.to_bytes(48, "big")
        return
    assert proof.to_bytes() == data


@pytest.mark.parametrize("c, s", [(N, 0), (0, N), (-1, 0)])
def test_proof_scalars_range(c: int, s: int) -> None:
    with pytest.raises(DecodeError):
        oprf.Proof(c, s)


@given(st.binary(max_size=120))
def test_element_and_scalar_parsers_raise_only_decode_error(data: bytes) -> None:
    try:
        element = oprf.deserialize_element(data)
    except DecodeError:
        pass
    else:
        assert oprf.serialize_element(element) == data
    try:
        scalar = oprf.deserialize_scalar(data)
    except DecodeError:
        pass
    else:
        assert oprf.serialize_scalar(scalar) == data
    for parse in (oprf.PublicKey.from_compressed, oprf.PublicKey.from_uncompressed):
        with contextlib.suppress(DecodeError):
            parse(data)


@settings(max_examples=40)
@given(st.lists(st.binary(min_size=49, max_size=49), min_size=0, max_size=3), st.binary())
def test_client_path_on_garbage_raises_only_decode_error(
    key: oprf.SecretKey, elements: list[bytes], proof_bytes: bytes
) -> None:
    # Elements, proof and batch sizes from a hostile issuer: only DecodeError may come out.
    blinds, blinded = zip(*(oprf.blind(b"%d" % i) for i in range(len(elements) or 1)), strict=True)
    try:
        evaluated = [oprf.deserialize_element(e) for e in elements]
        proof = oprf.Proof.from_bytes(proof_bytes)
        oprf.finalize_batch(
            [b"%d" % i for i in range(len(blinds))],
            list(blinds),
            evaluated,
            list(blinded),
            key.public_key.point,
            proof,
        )
    except DecodeError:
        return
    pytest.fail("garbage was accepted")
