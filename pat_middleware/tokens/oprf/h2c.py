"""Hashing to P-384 (RFC 9380): suite ``P384_XMD:SHA-384_SSWU_RO_`` and hashing to scalars.

* :func:`expand_message_xmd` (RFC 9380 §5.3.1), with any hashlib hash, SHA-384 by default;
  an oversize DST is first hashed (§5.3.3).
* :func:`hash_to_field` (§5.2) with L = 72 (§8.3: ceil((384 + 192) / 8)).
* :func:`map_to_curve_simple_swu` (§6.6.2, straight-line form of Appendix F.2 with the
  q = 3 (mod 4) ``sqrt_ratio`` of F.2.1.2), Z = -12 (§8.3). This is the reference.
* :func:`hash_to_curve` (§3): two field elements, two maps, one addition; P-384's cofactor
  is 1, so ``clear_cofactor`` is the identity map. Its map computes the same x1 and
  x2 = Z*u^2*x1 as §6.6.2, but lets OpenSSL's point decompression take the square root:
  decompressing x1 succeeds exactly when g(x1) is a square, and then x = x1, else x = x2;
  the root's sign is then fixed by sgn0(u), so the result is the same point. That halves
  the map's cost (one Python exponentiation was most of it). Tests check the two maps
  agree on the RFC vectors and on random field elements.
* :func:`hash_to_scalar`: ``hash_to_field`` into the scalar field GF(n) with L = 72, which is
  RFC 9497 §4.4's HashToScalar for P384-SHA384 once a DST is given.

The arithmetic is Python integer arithmetic and is not constant time. The inputs hashed in
the protocols this package serves are not long-term secrets: RFC 9497's ``input`` is the
client's PRF input, which Privacy Pass reveals at redemption, and Private State Tokens hash
a nonce the client reveals likewise. A local observer of the client's timing could learn
something about an input before it is redeemed; that is the accepted residual.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric import ec

from ...errors import DecodeError
from .p384 import FIELD_BYTES, IDENTITY, SQRT_EXPONENT, A, B, N, P, Point

#: Bytes per field element drawn by hash_to_field: L = ceil((ceil(log2(p)) + k) / 8), k = 192.
L = 72
#: The SSWU constant Z for P-384 (RFC 9380 §8.3).
Z = P - 12

_CURVE = ec.SECP384R1()
_OVERSIZE_DST_PREFIX = b"H2C-OVERSIZE-DST-"
_MAX_DST_LENGTH = 255
_MAX_LEN_IN_BYTES = 65535
_MAX_BLOCKS = 255

# sqrt_ratio constants for q = 3 (mod 4) (RFC 9380 Appendix F.2.1.2).
_SQRT_RATIO_C1 = (P - 3) // 4
_SQRT_RATIO_C2 = pow(-Z % P, SQRT_EXPONENT, P)  # sqrt(-Z) = sqrt(12); 12 is a square mod p


def expand_message_xmd(
    msg: bytes, dst: bytes, len_in_bytes: int, hash_name: str = "sha384"
) -> bytes:
    """RFC 9380 §5.3.1 expand_message_xmd.

    ``hash_name`` is a :func:`hashlib.new` name of a Merkle-Damgard hash (``sha256``,
    ``sha384``, ``sha512``). A DST longer than 255 bytes is replaced by
    H("H2C-OVERSIZE-DST-" || DST) as §5.3.3 specifies. Raises ValueError when
    ``len_in_bytes`` is out of range (ell > 255 or len_in_bytes > 65535).
    """
    if len(dst) > _MAX_DST_LENGTH:
        dst = hashlib.new(hash_name, _OVERSIZE_DST_PREFIX + dst).digest()
    hasher = hashlib.new(hash_name)
    b_in_bytes = hasher.digest_size
    s_in_bytes = hasher.block_size
    ell = -(-len_in_bytes // b_in_bytes)
    if not 0 < len_in_bytes <= _MAX_LEN_IN_BYTES or ell > _MAX_BLOCKS:
        raise ValueError("expand_message_xmd: len_in_bytes out of range")
    dst_prime = dst + bytes((len(dst),))
    z_pad = bytes(s_in_bytes)
    l_i_b_str = len_in_bytes.to_bytes(2, "big")
    msg_prime = z_pad + msg + l_i_b_str + b"\x00" + dst_prime
    b_0 = hashlib.new(hash_name, msg_prime).digest()
    b_i = hashlib.new(hash_name, b_0 + b"\x01" + dst_prime).digest()
    uniform = [b_i]
    for i in range(2, ell + 1):
        mixed = bytes(a ^ b for a, b in zip(b_0, b_i, strict=True))
        b_i = hashlib.new(hash_name, mixed + bytes((i,)) + dst_prime).digest()
        uniform.append(b_i)
    return b"".join(uniform)[:len_in_bytes]


def hash_to_field(msg: bytes, count: int, dst: bytes, modulus: int = P) -> list[int]:
    """RFC 9380 §5.2 hash_to_field for a prime field (m = 1), L = 72, expand_message_xmd
    with SHA-384. ``modulus`` is p for curve points, n for scalars."""
    uniform = expand_message_xmd(msg, dst, count * L)
    return [int.from_bytes(uniform[i * L : (i + 1) * L], "big") % modulus for i in range(count)]


def _sgn0(value: int) -> int:
    # RFC 9380 §4.1, m = 1.
    return value & 1


def _sqrt_ratio(u: int, v: int) -> tuple[bool, int]:
    # RFC 9380 Appendix F.2.1.2 (q = 3 mod 4). Returns (is u/v square, sqrt(u/v) or
    # sqrt(Z*u/v)).
    tv1 = v * v % P
    tv2 = u * v % P
    tv1 = tv1 * tv2 % P
    y1 = pow(tv1, _SQRT_RATIO_C1, P)
    y1 = y1 * tv2 % P
    y2 = y1 * _SQRT_RATIO_C2 % P
    tv3 = y1 * y1 % P
    tv3 = tv3 * v % P
    is_qr = tv3 == u % P
    return is_qr, (y1 if is_qr else y2)


def map_to_curve_simple_swu(u: int) -> Point:
    """RFC 9380 §6.6.2 Simplified SWU for P-384 (A = -3, B = b, Z = -12).

    Follows the straight-line procedure of Appendix F.2; the CMOVs are plain conditionals.
    """
    tv1 = u * u % P
    tv1 = Z * tv1 % P
    tv2 = tv1 * tv1 % P
    tv2 = (tv2 + tv1) % P
    tv3 = (tv2 + 1) % P
    tv3 = B * tv3 % P
    tv4 = (P - tv2) % P if tv2 != 0 else Z
    tv4 = A * tv4 % P
    tv2 = tv3 * tv3 % P
    tv6 = tv4 * tv4 % P
    tv5 = A * tv6 % P
    tv2 = (tv2 + tv5) % P
    tv2 = tv2 * tv3 % P
    tv6 = tv6 * tv4 % P
    tv5 = B * tv6 % P
    tv2 = (tv2 + tv5) % P
    x = tv1 * tv3 % P
    is_gx1_square, y1 = _sqrt_ratio(tv2, tv6)
    y = tv1 * u % P
    y = y * y1 % P
    if is_gx1_square:
        x, y = tv3, y1
    if _sgn0(u) != _sgn0(y):
        y = (P - y) % P
    x = x * pow(tv4, -1, P) % P
    return Point(x, y)


def _map_to_curve_decompressing(u: int) -> Point:
    # §6.6.2 with OpenSSL's square root (module docstring); equal to map_to_curve_simple_swu.
    tv1 = Z * (u * u % P) % P  # Z * u^2
    tv2 = (tv1 * tv1 + tv1) % P  # Z^2 * u^4 + Z * u^2
    tv3 = B * (tv2 + 1) % P
    tv4 = A * (P - tv2 if tv2 != 0 else Z) % P
    x1 = tv3 * pow(tv4, -1, P) % P  # (-B / A) * (1 + 1 / tv2), or B / (Z * A) if tv2 = 0
    for x in (x1, tv1 * x1 % P):  # x2 = Z * u^2 * x1: g(x2) is square when g(x1) is not
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(
                _CURVE, b"\x02" + x.to_bytes(FIELD_BYTES, "big")
            )
        except ValueError:
            continue
        y = key.public_numbers().y
        return Point(x, y if _sgn0(y) == _sgn0(u) else P - y)
    raise RuntimeError("simplified SWU: neither g(x1) nor g(x2) is a square")


def hash_to_curve(msg: bytes, dst: bytes) -> Point:
    """RFC 9380 §3 hash_to_curve, suite P384_XMD:SHA-384_SSWU_RO_ (§8.3), with ``dst``.

    The result can be the identity only with negligible probability; callers that need a
    non-identity element (RFC 9497 Blind and Evaluate) check.
    """
    u0, u1 = hash_to_field(msg, 2, dst)
    return _map_to_curve_decompressing(u0) + _map_to_curve_decompressing(u1)


def hash_to_scalar(msg: bytes, dst: bytes) -> int:
    """hash_to_field into GF(n), L = 72, expand_message_xmd with SHA-384 (RFC 9497 §4.4
    HashToScalar for P384-SHA384; RFC 9380 §5.2 with modulus n)."""
    return hash_to_field(msg, 1, dst, modulus=N)[0]


def hash_to_group_checked(msg: bytes, dst: bytes) -> Point:
    """:func:`hash_to_curve`, refusing the identity with :class:`DecodeError`
    (RFC 9497 §3.3.1 InvalidInputError)."""
    point = hash_to_curve(msg, dst)
    if point == IDENTITY:
        raise DecodeError("input hashes to the identity element")
    return point


__all__ = [
    "L",
    "Z",
    "expand_message_xmd",
    "hash_to_curve",
    "hash_to_field",
    "hash_to_group_checked",
    "hash_to_scalar",
    "map_to_curve_simple_swu",
]
