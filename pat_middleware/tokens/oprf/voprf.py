"""RFC 9497 VOPRF (mode 0x01) with ciphersuite P384-SHA384.

Names follow RFC 9497 in snake_case: ``DeriveKeyPair`` is :func:`derive_key_pair`,
``BlindEvaluate`` is :func:`blind_evaluate`, ``ComputeCompositesFast`` is
:func:`compute_composites_fast`, and so on. Functions take and return group elements
(:class:`Point`) and scalars (``int``); :func:`serialize_element`,
:func:`deserialize_element`, :func:`serialize_scalar`, :func:`deserialize_scalar` and
:class:`Proof` convert to and from the wire. Every malformed input raises
:class:`DecodeError`; a proof that does not verify makes :func:`finalize` raise it too
(RFC 9497's VerifyError).

Who calls what::

    client: blind, blinded_element = blind(input)                       # §3.3.1
    server: evaluated_element, proof = blind_evaluate(sk, blinded_element)  # §3.3.2
    client: output = finalize(input, blind, evaluated_element,
                              blinded_element, pkS, proof)               # §3.3.2
    holder of sk: output = evaluate(sk, input)                           # §3.3.1

Secret scalars are multiplied only inside OpenSSL (see :mod:`.keys`). Randomness comes from
OpenSSL; the blind and the proof nonce can be injected (``blind=``, ``r=``) to reproduce
the RFC test vectors, and must otherwise be left alone.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from ...errors import DecodeError
from . import h2c
from .keys import SecretKey, SecretScalar, scalar_inverse
from .p384 import (
    COMPRESSED_LENGTH,
    GENERATOR,
    IDENTITY,
    SCALAR_BYTES,
    N,
    Point,
    decode_compressed,
    decode_scalar,
    encode_compressed,
    encode_scalar,
)

#: Protocol variant identifiers (RFC 9497 §3.1).
MODE_OPRF = 0x00
MODE_VOPRF = 0x01
MODE_POPRF = 0x02
#: Ciphersuite identifier (RFC 9497 §4.4).
IDENTIFIER = b"P384-SHA384"


def create_context_string(mode: int, identifier: bytes) -> bytes:
    """RFC 9497 §3.1 CreateContextString: "OPRFV1-" || I2OSP(mode, 1) || "-" || identifier."""
    return b"OPRFV1-" + mode.to_bytes(1, "big") + b"-" + identifier


#: contextString for VOPRF with P384-SHA384: b"OPRFV1-\x01-P384-SHA384".
CONTEXT_STRING = create_context_string(MODE_VOPRF, IDENTIFIER)
#: DSTs derived from the context string (RFC 9497 §4.4, §3.2.1, §2.2.1).
HASH_TO_GROUP_DST = b"HashToGroup-" + CONTEXT_STRING
HASH_TO_SCALAR_DST = b"HashToScalar-" + CONTEXT_STRING
DERIVE_KEY_PAIR_DST = b"DeriveKeyPair" + CONTEXT_STRING
SEED_DST = b"Seed-" + CONTEXT_STRING

#: Sizes (RFC 9497 §4.4): hash output Nh, element Ne, scalar Ns, and a serialized Proof.
NH = 48
NE = COMPRESSED_LENGTH
NS = SCALAR_BYTES
PROOF_LENGTH = 2 * NS
#: RFC 9497 §5.1 (Input Limits): inputs MUST be smaller than 2^16 - 1 bytes.
MAX_INPUT_LENGTH = 2**16 - 2
#: Batch indexes are encoded with I2OSP(i, 2).
MAX_BATCH_SIZE = 2**16

_DERIVE_KEY_PAIR_ATTEMPTS = 256


def _i2osp2(value: int) -> bytes:
    return value.to_bytes(2, "big")


def _framed(data: bytes) -> bytes:
    return _i2osp2(len(data)) + data


def _check_input(data: bytes) -> None:
    if len(data) > MAX_INPUT_LENGTH:
        raise DecodeError("OPRF input is longer than RFC 9497 allows")


# -- group helpers (RFC 9497 §2.1 and §4.4) -------------------------------------------------


def hash_to_group(data: bytes) -> Point:
    """HashToGroup: hash_to_curve P384_XMD:SHA-384_SSWU_RO_ with DST "HashToGroup-" ||
    contextString (§4.4). Refuses the identity with :class:`DecodeError` (§3.3.1
    InvalidInputError)."""
    return h2c.hash_to_group_checked(data, HASH_TO_GROUP_DST)


def hash_to_scalar(data: bytes, dst: bytes = HASH_TO_SCALAR_DST) -> int:
    """HashToScalar: hash_to_field into GF(n), L = 72, expand_message_xmd(SHA-384), DST
    "HashToScalar-" || contextString unless another is given (§4.4)."""
    return h2c.hash_to_scalar(data, dst)


def serialize_element(element: Point) -> bytes:
    """SerializeElement: 49-byte SEC1 compressed point (§4.4)."""
    return encode_compressed(element)


def deserialize_element(data: bytes) -> Point:
    """DeserializeElement: 49-byte SEC1 compressed point, validated, never the identity
    (§4.4). Raises :class:`DecodeError`."""
    return decode_compressed(data)


def serialize_scalar(scalar: int) -> bytes:
    """SerializeScalar: 48 bytes big-endian (§4.4)."""
    return encode_scalar(scalar)


def deserialize_scalar(data: bytes) -> int:
    """DeserializeScalar: 48 bytes big-endian, below n (§4.4). Raises :class:`DecodeError`."""
    return decode_scalar(data)


def random_scalar() -> int:
    """RandomScalar: a uniformly random nonzero scalar from OpenSSL (§2.1, §4.7)."""
    return SecretScalar.generate().reveal()


# -- keys (RFC 9497 §3.2) --------------------------------------------------------------------


def derive_key_pair(seed: bytes, info: bytes) -> SecretKey:
    """DeriveKeyPair (§3.2.1): skS = HashToScalar(seed || I2OSP(len(info), 2) || info ||
    I2OSP(counter, 1), DST = "DeriveKeyPair" || contextString) for the first counter that
    gives a nonzero scalar. The key pair is the returned key and its ``public_key``.

    The RFC types the seed as Ns bytes while its own test vectors use 32; any length is
    accepted. Raises :class:`DecodeError` for an info longer than 65535 bytes and for
    DeriveKeyPairError (256 zero scalars in a row).
    """
    if len(info) > 0xFFFF:
        raise DecodeError("DeriveKeyPair info is longer than 65535 bytes")
    derive_input = seed + _framed(info)
    for counter in range(_DERIVE_KEY_PAIR_ATTEMPTS):
        sk = h2c.hash_to_scalar(derive_input + bytes((counter,)), DERIVE_KEY_PAIR_DST)
        if sk != 0:
            return SecretKey.from_bytes(encode_scalar(sk))
    raise DecodeError("DeriveKeyPairError")


# -- DLEQ proofs (RFC 9497 §2.2) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Proof:
    """A DLEQ proof (c, s); serialized as SerializeScalar(c) || SerializeScalar(s), 96 bytes
    (§3.3)."""

    c: int
    s: int

    def __post_init__(self) -> None:
        if not (0 <= self.c < N and 0 <= self.s < N):
            raise DecodeError("proof scalar out of range")

    def to_bytes(self) -> bytes:
        return encode_scalar(self.c) + encode_scalar(self.s)

    @classmethod
    def from_bytes(cls, data: bytes) -> Proof:
        """Parse 96 bytes; each half must be a scalar below n. Raises :class:`DecodeError`."""
        if len(data) != PROOF_LENGTH:
            raise DecodeError("a proof is 96 bytes")
        return cls(decode_scalar(data[:NS]), decode_scalar(data[NS:]))


def _check_elements(*elements: Point) -> None:
    # DeserializeElement never yields the identity; Points built in code could be it.
    if any(element.is_identity for element in elements):
        raise DecodeError("the identity is not a valid element")


def _check_batch(c: Sequence[Point], d: Sequence[Point]) -> None:
    if len(c) != len(d):
        raise DecodeError("batch lists differ in length")
    if not 0 < len(c) <= MAX_BATCH_SIZE:
        raise DecodeError("batch size out of range")
    _check_elements(*c, *d)


def _composite_weights(b: Point, c: Sequence[Point], d: Sequence[Point]) -> list[int]:
    # The d_i shared by ComputeComposites and ComputeCompositesFast (§2.2.1, §2.2.2).
    _check_batch(c, d)
    _check_elements(b)
    seed = hashlib.sha384(_framed(serialize_element(b)) + _framed(SEED_DST)).digest()
    prefix = _framed(seed)
    return [
        hash_to_scalar(
            prefix
            + _i2osp2(i)
            + _framed(serialize_element(ci))
            + _framed(serialize_element(di))
            + b"Composite"
        )
        for i, (ci, di) in enumerate(zip(c, d, strict=True))
    ]


def _public_multiplier(scalar: int) -> SecretScalar | None:
    # Public scalars go through OpenSSL too: two ECDH exchanges (~0.9 ms) beat the
    # pure-Python Point.multiply_public (~3.5 ms). None stands for the zero scalar.
    return SecretScalar.from_int(scalar) if scalar else None


def _times(multiplier: SecretScalar | None, point: Point) -> Point:
    return multiplier.multiply(point) if multiplier is not None else IDENTITY


def compute_composites_fast(
    k: SecretKey, b: Point, c: Sequence[Point], d: Sequence[Point]
) -> tuple[Point, Point]:
    """ComputeCompositesFast (§2.2.1): M = sum d_i*C[i], Z = k*M, for the key holder.

    Raises :class:`DecodeError` if M is the identity (negligible for honest inputs).
    """
    m = IDENTITY
    for weight, ci in zip(_composite_weights(b, c, d), c, strict=True):
        m = _times(_public_multiplier(weight), ci) + m
    if m.is_identity:
        raise DecodeError("the composite element is the identity")
    return m, k.multiply(m)


def compute_composites(b: Point, c: Sequence[Point], d: Sequence[Point]) -> tuple[Point, Point]:
    """ComputeComposites (§2.2.2): M = sum d_i*C[i], Z = sum d_i*D[i], from public values."""
    m = IDENTITY
    z = IDENTITY
    for weight, ci, di in zip(_composite_weights(b, c, d), c, d, strict=True):
        multiplier = _public_multiplier(weight)
        m = _times(multiplier, ci) + m
        z = _times(multiplier, di) + z
    return m, z


def _challenge(b: Point, m: Point, z: Point, t2: Point, t3: Point) -> int:
    transcript = b"".join(_framed(serialize_element(e)) for e in (b, m, z, t2, t3))
    return hash_to_scalar(transcript + b"Challenge")


def generate_proof(
    k: SecretKey,
    a: Point,
    b: Point,
    c: Sequence[Point],
    d: Sequence[Point],
    *,
    r: int | None = None,
) -> Proof:
    """GenerateProof (§2.2.1): a proof that k*A == B and k*C[i] == D[i] for every i.

    The nonce r is fresh OpenSSL randomness; r*A (r*G for the VOPRF) and r*M are computed
    by OpenSSL, and s = r - c*k by :meth:`SecretKey.proof_response`. ``r`` injects the
    nonce (RFC test vectors only).
    """
    _check_elements(a)
    m, z = compute_composites_fast(k, b, c, d)
    nonce = SecretScalar.generate() if r is None else SecretScalar.from_int(r)
    t2 = nonce.multiply(a)  # for A = G this is nonce.base_point, computed by OpenSSL
    t3 = nonce.multiply(m)
    challenge = _challenge(b, m, z, t2, t3)
    return Proof(challenge, k.proof_response(nonce, challenge))


def verify_proof(a: Point, b: Point, c: Sequence[Point], d: Sequence[Point], proof: Proof) -> bool:
    """VerifyProof (§2.2.2): True when ``proof`` shows k*A == B and k*C[i] == D[i].

    Uses only public values. Returns False (instead of failing to serialize) when a
    recomputed element is the identity, which a forged proof can arrange.
    """
    _check_elements(a)
    m, z = compute_composites(b, c, d)
    if m.is_identity or z.is_identity:
        return False
    s_times = _public_multiplier(proof.s)
    c_times = _public_multiplier(proof.c)
    t2 = _times(s_times, a) + _times(c_times, b)  # s*G is free: the key object already has it
    t3 = _times(s_times, m) + _times(c_times, z)
    if t2.is_identity or t3.is_identity:
        return False
    expected = _challenge(b, m, z, t2, t3)
    return hmac.compare_digest(encode_scalar(expected), encode_scalar(proof.c))


# -- the online protocol (RFC 9497 §3.3) -----------------------------------------------------


def blind(input: bytes, *, blind: int | None = None) -> tuple[int, Point]:
    """Blind (§3.3.1): returns (blind, blindedElement = blind * HashToGroup(input)).

    The blind is fresh OpenSSL randomness and is multiplied inside OpenSSL. Keep it secret
    until :func:`finalize`. ``blind`` injects it (RFC test vectors only).
    """
    _check_input(input)
    input_element = hash_to_group(input)
    scalar = SecretScalar.generate() if blind is None else SecretScalar.from_int(blind)
    return scalar.reveal(), scalar.multiply(input_element)


def blind_evaluate_batch(
    k: SecretKey, blinded_elements: Sequence[Point], *, r: int | None = None
) -> tuple[list[Point], Proof]:
    """BlindEvaluate (§3.3.2) over a batch: evaluatedElement[i] = k * blindedElement[i],
    with one DLEQ proof for the whole batch (GenerateProof(k, G, pkS, C, D))."""
    _check_batch(blinded_elements, blinded_elements)
    evaluated = [k.multiply(element) for element in blinded_elements]
    proof = generate_proof(k, GENERATOR, k.public_key.point, blinded_elements, evaluated, r=r)
    return evaluated, proof


def blind_evaluate(
    k: SecretKey, blinded_element: Point, *, r: int | None = None
) -> tuple[Point, Proof]:
    """BlindEvaluate (§3.3.2) for one element: (evaluatedElement, proof)."""
    (evaluated,), proof = blind_evaluate_batch(k, [blinded_element], r=r)
    return evaluated, proof


def unblind(blind: int, evaluated_element: Point) -> Point:
    """N = ScalarInverse(blind) * evaluatedElement, the first step of Finalize (§3.3.1).

    The inverse is computed on a masked value and the multiplication runs in OpenSSL.
    """
    if evaluated_element.is_identity:
        raise DecodeError("the identity is not a valid element")
    return SecretScalar.from_int(scalar_inverse(blind)).multiply(evaluated_element)


def _finalize_hash(input: bytes, unblinded_element: Point) -> bytes:
    hash_input = _framed(input) + _framed(serialize_element(unblinded_element)) + b"Finalize"
    return hashlib.sha384(hash_input).digest()


def finalize_batch(
    inputs: Sequence[bytes],
    blinds: Sequence[int],
    evaluated_elements: Sequence[Point],
    blinded_elements: Sequence[Point],
    pk: Point,
    proof: Proof,
) -> list[bytes]:
    """Finalize (§3.3.2) for a batch evaluated under one proof: verify it, then unblind and
    hash each element. Raises :class:`DecodeError` (VerifyError) if the proof fails."""
    if not len(inputs) == len(blinds) == len(evaluated_elements) == len(blinded_elements):
        raise DecodeError("batch lists differ in length")
    for data in inputs:
        _check_input(data)
    if not verify_proof(GENERATOR, pk, blinded_elements, evaluated_elements, proof):
        raise DecodeError("VerifyError: the evaluation proof does not verify")
    return [
        _finalize_hash(data, unblind(scalar, element))
        for data, scalar, element in zip(inputs, blinds, evaluated_elements, strict=True)
    ]


def finalize(
    input: bytes,
    blind: int,
    evaluated_element: Point,
    blinded_element: Point,
    pk: Point,
    proof: Proof,
) -> bytes:
    """Finalize (§3.3.2): verify the proof, unblind, and return the Nh-byte output."""
    (output,) = finalize_batch([input], [blind], [evaluated_element], [blinded_element], pk, proof)
    return output


def evaluate(k: SecretKey, input: bytes) -> bytes:
    """Evaluate (§3.3.1): Hash(I2OSP(len(input), 2) || input || I2OSP(Ne, 2) ||
    SerializeElement(k * HashToGroup(input)) || "Finalize"), for the key holder.

    This is how a Privacy Pass origin that holds the issuer key checks a type 0x0001 token
    (RFC 9578 §5.4): compare the result with the authenticator using
    :func:`hmac.compare_digest`.
    """
    _check_input(input)
    return _finalize_hash(input, k.multiply(hash_to_group(input)))


__all__ = [
    "CONTEXT_STRING",
    "DERIVE_KEY_PAIR_DST",
    "HASH_TO_GROUP_DST",
    "HASH_TO_SCALAR_DST",
    "IDENTIFIER",
    "MAX_BATCH_SIZE",
    "MAX_INPUT_LENGTH",
    "MODE_OPRF",
    "MODE_POPRF",
    "MODE_VOPRF",
    "NE",
    "NH",
    "NS",
    "PROOF_LENGTH",
    "SEED_DST",
    "Proof",
    "blind",
    "blind_evaluate",
    "blind_evaluate_batch",
    "compute_composites",
    "compute_composites_fast",
    "create_context_string",
    "derive_key_pair",
    "deserialize_element",
    "deserialize_scalar",
    "evaluate",
    "finalize",
    "finalize_batch",
    "generate_proof",
    "hash_to_group",
    "hash_to_scalar",
    "random_scalar",
    "serialize_element",
    "serialize_scalar",
    "unblind",
    "verify_proof",
]
