"""A self-contained VOPRF: RFC 9497 mode 0x01 (VOPRF), ciphersuite P384-SHA384.

It serves Privacy Pass token type 0x0001 (RFC 9578 §5: client, issuer, and an origin that
verifies with the issuer key through :func:`evaluate`) and gives Chrome's Private State
Tokens (``PrivateStateTokenV1VOPRF``) the group pieces they build on: uncompressed points
(:func:`decode_uncompressed`, :func:`encode_uncompressed`), hashing with their own DSTs
(:func:`hash_to_curve`, :func:`hash_to_scalar`), constant-time k*P
(:meth:`SecretKey.multiply`), DLEQ nonces (:class:`SecretScalar`) and responses
(:meth:`SecretKey.proof_response`), fast multiplication for composites
(:func:`scalar_mult`), and constant-time point equality (``Point.__eq__``).

Modules:

* :mod:`.p384`: the group over public values: constants, :class:`Point`, SEC1 encodings,
  scalars, variable-time multiplication by public scalars.
* :mod:`.h2c`: RFC 9380 expand_message_xmd, hash_to_field, simplified SWU, hash_to_curve.
* :mod:`.keys`: secret scalars inside OpenSSL (the constant-time design is explained there),
  :class:`SecretKey`, :class:`PublicKey`.
* :mod:`.voprf`: the RFC 9497 protocol functions, named after the RFC.

This package imports nothing from pat-middleware but :mod:`pat_middleware.errors`; every
malformed input raises :class:`~pat_middleware.errors.DecodeError`. No I/O happens here.
"""

from __future__ import annotations

from .h2c import (
    expand_message_xmd,
    hash_to_curve,
    hash_to_field,
    map_to_curve_simple_swu,
)
from .keys import (
    PublicKey,
    SecretKey,
    SecretScalar,
    scalar_inverse,
    scalar_mult,
)
from .p384 import (
    COMPRESSED_LENGTH,
    GENERATOR,
    IDENTITY,
    UNCOMPRESSED_LENGTH,
    N,
    P,
    Point,
    decode_compressed,
    decode_point,
    decode_scalar,
    decode_uncompressed,
    encode_compressed,
    encode_scalar,
    encode_uncompressed,
)
from .voprf import (
    CONTEXT_STRING,
    HASH_TO_GROUP_DST,
    HASH_TO_SCALAR_DST,
    NE,
    NH,
    NS,
    PROOF_LENGTH,
    Proof,
    blind,
    blind_evaluate,
    blind_evaluate_batch,
    compute_composites,
    compute_composites_fast,
    derive_key_pair,
    deserialize_element,
    deserialize_scalar,
    evaluate,
    finalize,
    finalize_batch,
    generate_proof,
    hash_to_group,
    hash_to_scalar,
    random_scalar,
    serialize_element,
    serialize_scalar,
    unblind,
    verify_proof,
)

__all__ = [
    "COMPRESSED_LENGTH",
    "CONTEXT_STRING",
    "GENERATOR",
    "HASH_TO_GROUP_DST",
    "HASH_TO_SCALAR_DST",
    "IDENTITY",
    "NE",
    "NH",
    "NS",
    "PROOF_LENGTH",
    "UNCOMPRESSED_LENGTH",
    "N",
    "P",
    "Point",
    "Proof",
    "PublicKey",
    "SecretKey",
    "SecretScalar",
    "blind",
    "blind_evaluate",
    "blind_evaluate_batch",
    "compute_composites",
    "compute_composites_fast",
    "decode_compressed",
    "decode_point",
    "decode_scalar",
    "decode_uncompressed",
    "derive_key_pair",
    "deserialize_element",
    "deserialize_scalar",
    "encode_compressed",
    "encode_scalar",
    "encode_uncompressed",
    "evaluate",
    "expand_message_xmd",
    "finalize",
    "finalize_batch",
    "generate_proof",
    "hash_to_curve",
    "hash_to_field",
    "hash_to_group",
    "hash_to_scalar",
    "map_to_curve_simple_swu",
    "random_scalar",
    "scalar_inverse",
    "scalar_mult",
    "serialize_element",
    "serialize_scalar",
    "unblind",
    "verify_proof",
]
