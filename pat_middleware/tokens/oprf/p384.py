"""The NIST P-384 group: constants, points, SEC1 encodings and scalars.

Everything here works on **public** values with Python integers, which is not constant time.
Secret scalars never reach this module: multiplications by a secret scalar go through
:mod:`.keys`, which keeps them inside OpenSSL.

* :class:`Point` is an immutable affine point, or the identity. P-384 has cofactor 1, so
  every point on the curve is in the prime-order group. Constructing a :class:`Point`
  checks that it is on the curve.
* Elements travel as SEC1 octet strings (SEC1 v2 §2.3.3 / §2.3.4): 49 bytes compressed
  (``02``/``03`` || x), as RFC 9497 §4.4 ``SerializeElement`` prescribes, or 97 bytes
  uncompressed (``04`` || x || y), as Chrome's Private State Tokens put them on the wire.
  :func:`decode_compressed` and :func:`decode_uncompressed` accept exactly one form each;
  :func:`decode_point` accepts either. All three perform the partial public-key validation
  of NIST SP 800-56A rev. 3 §5.6.2.3.4 that RFC 9497 §4.4 asks for: coordinates below p,
  point on the curve, not the identity. Any failure raises :class:`DecodeError`.
* Scalars are 48-byte big-endian integers below the group order n (RFC 9497 §4.4
  ``SerializeScalar`` / ``DeserializeScalar``).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from ...errors import DecodeError

#: The field prime p = 2^384 - 2^128 - 2^96 + 2^32 - 1 (FIPS 186-5 / SP 800-186 §3.2.1.4).
P = 2**384 - 2**128 - 2**96 + 2**32 - 1
#: The group order n.
N = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffff"
    "c7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)
#: Curve coefficients of y^2 = x^3 + A*x + B.
A = P - 3
B = int(
    "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe814112"
    "0314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef",
    16,
)
GX = int(
    "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b98"
    "59f741e082542a385502f25dbf55296c3a545e3872760ab7",
    16,
)
GY = int(
    "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147c"
    "e9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f",
    16,
)

#: Bytes in a field element and in a scalar (RFC 9497 Ns).
FIELD_BYTES = 48
SCALAR_BYTES = 48
#: SEC1 compressed point length (RFC 9497 Ne) and uncompressed point length.
COMPRESSED_LENGTH = 1 + FIELD_BYTES
UNCOMPRESSED_LENGTH = 1 + 2 * FIELD_BYTES

#: p = 3 (mod 4), so a square root of a square a is a^((p+1)/4).
SQRT_EXPONENT = (P + 1) // 4

_CURVE = ec.SECP384R1()
_COMPRESSED_PREFIXES = frozenset((0x02, 0x03))
_UNCOMPRESSED_PREFIX = 0x04
#: Window width of :meth:`Point.multiply_public`.
_WINDOW = 4


def curve_rhs(x: int) -> int:
    """x^3 + A*x + B mod p: the right-hand side of the curve equation."""
    return (x * x * x - 3 * x + B) % P


@dataclass(frozen=True, slots=True, eq=False)
class Point:
    """An affine point of P-384, or the identity (stored as the off-curve pair (0, 0)).

    Construction checks that the coordinates are below p and satisfy the curve equation, so
    an instance is always a group element. Equality compares the uncompressed encodings with
    :func:`hmac.compare_digest`, because a point compared against one the peer sent can be
    a secret (in Private State Tokens, k*HashToGroup(nonce) is what a forger needs).
    """

    x: int
    y: int

    def __post_init__(self) -> None:
        if self.x == 0 and self.y == 0:
            return
        if not (0 <= self.x < P and 0 <= self.y < P) or self.y * self.y % P != curve_rhs(self.x):
            raise DecodeError("not a point on P-384")

    @property
    def is_identity(self) -> bool:
        """True for the group identity (the point at infinity)."""
        return self.x == 0 and self.y == 0

    def _coordinates(self) -> bytes:
        return self.x.to_bytes(FIELD_BYTES, "big") + self.y.to_bytes(FIELD_BYTES, "big")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Point):
            return NotImplemented
        return hmac.compare_digest(self._coordinates(), other._coordinates())

    def __hash__(self) -> int:
        return hash((self.x, self.y))

    def __repr__(self) -> str:
        if self.is_identity:
            return "Point(identity)"
        return f"Point(x=0x{self.x:096x}, y=0x{self.y:096x})"

    def __neg__(self) -> Point:
        if self.is_identity:
            return self
        return Point(self.x, (P - self.y) % P)

    def __add__(self, other: Point) -> Point:
        """Affine addition (public values only)."""
        if self.is_identity:
            return other
        if other.is_identity:
            return self
        if self.x == other.x:
            if (self.y + other.y) % P == 0:
                return IDENTITY
            return self.double()
        slope = (other.y - self.y) * pow(other.x - self.x, -1, P) % P
        x3 = (slope * slope - self.x - other.x) % P
        return Point(x3, (slope * (self.x - x3) - self.y) % P)

    def __sub__(self, other: Point) -> Point:
        return self + (-other)

    def double(self) -> Point:
        """2 * self (public values only)."""
        if self.is_identity or self.y == 0:
            return IDENTITY
        slope = (3 * self.x * self.x - 3) * pow(2 * self.y, -1, P) % P
        x3 = (slope * slope - 2 * self.x) % P
        return Point(x3, (slope * (self.x - x3) - self.y) % P)

    def multiply_public(self, scalar: int) -> Point:
        """scalar * self for a **public** scalar, in variable time.

        Fixed-window (w = 4) double-and-add in Jacobian coordinates. Its running time depends
        on the scalar's bits: never pass a secret here (use :mod:`.keys`).
        """
        scalar %= N
        if scalar == 0 or self.is_identity:
            return IDENTITY
        table: list[tuple[int, int, int]] = [_J_IDENTITY, (self.x, self.y, 1)]
        for _ in range((1 << _WINDOW) - 2):
            table.append(_jacobian_add(table[-1], table[1]))
        acc = _J_IDENTITY
        for shift in range((scalar.bit_length() - 1) // _WINDOW * _WINDOW, -1, -_WINDOW):
            for _ in range(_WINDOW):
                acc = _jacobian_double(acc)
            digit = (scalar >> shift) & ((1 << _WINDOW) - 1)
            if digit:
                acc = _jacobian_add(acc, table[digit])
        return _to_affine(acc)


#: The point at infinity.
IDENTITY = Point(0, 0)
#: The standard base point G.
GENERATOR = Point(GX, GY)

_J_IDENTITY = (1, 1, 0)


def _jacobian_double(pt: tuple[int, int, int]) -> tuple[int, int, int]:
    # dbl-2001-b (a = -3), from the Explicit-Formulas Database.
    x, y, z = pt
    if z == 0 or y == 0:
        return _J_IDENTITY
    delta = z * z % P
    gamma = y * y % P
    beta = x * gamma % P
    alpha = 3 * (x - delta) * (x + delta) % P
    x3 = (alpha * alpha - 8 * beta) % P
    z3 = ((y + z) * (y + z) - gamma - delta) % P
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % P
    return x3, y3, z3


def _jacobian_add(p1: tuple[int, int, int], p2: tuple[int, int, int]) -> tuple[int, int, int]:
    # add-2007-bl, with the doubling and inverse cases handled explicitly.
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if z1 == 0:
        return p2
    if z2 == 0:
        return p1
    z1z1 = z1 * z1 % P
    z2z2 = z2 * z2 % P
    u1 = x1 * z2z2 % P
    u2 = x2 * z1z1 % P
    s1 = y1 * z2 * z2z2 % P
    s2 = y2 * z1 * z1z1 % P
    h = (u2 - u1) % P
    r = (s2 - s1) % P
    if h == 0:
        return _jacobian_double(p1) if r == 0 else _J_IDENTITY
    hh = h * h % P
    hhh = h * hh % P
    v = u1 * hh % P
    x3 = (r * r - hhh - 2 * v) % P
    y3 = (r * (v - x3) - s1 * hhh) % P
    z3 = z1 * z2 * h % P
    return x3, y3, z3


def _to_affine(pt: tuple[int, int, int]) -> Point:
    x, y, z = pt
    if z == 0:
        return IDENTITY
    z_inv = pow(z, -1, P)
    z_inv2 = z_inv * z_inv % P
    return Point(x * z_inv2 % P, y * z_inv2 * z_inv % P)


# -- SEC1 encodings ---------------------------------------------------------------------------


def encode_compressed(point: Point) -> bytes:
    """SEC1 compressed form, 49 bytes: RFC 9497 §4.4 SerializeElement.

    Raises ValueError for the identity, which has no 49-byte encoding.
    """
    if point.is_identity:
        raise ValueError("the identity has no compressed encoding")
    return bytes((0x02 | (point.y & 1),)) + point.x.to_bytes(FIELD_BYTES, "big")


def encode_uncompressed(point: Point) -> bytes:
    """SEC1 uncompressed form, 97 bytes (04 || x || y).

    Raises ValueError for the identity.
    """
    if point.is_identity:
        raise ValueError("the identity has no uncompressed encoding")
    return b"\x04" + point._coordinates()


def decode_compressed(data: bytes) -> Point:
    """Parse a 49-byte SEC1 compressed point: RFC 9497 §4.4 DeserializeElement.

    Rejects other lengths and prefixes, x >= p, an x with no point on the curve, and the
    identity (which has no 49-byte form anyway) with :class:`DecodeError`.
    """
    if len(data) != COMPRESSED_LENGTH or data[0] not in _COMPRESSED_PREFIXES:
        raise DecodeError("a compressed P-384 point is 49 bytes starting with 02 or 03")
    x = int.from_bytes(data[1:], "big")
    if x >= P:
        raise DecodeError("point x-coordinate is not below p")
    # The square root is OpenSSL's: twice as fast as pow() here. It only ever sees public data.
    try:
        numbers = ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, bytes(data)).public_numbers()
    except ValueError:
        raise DecodeError("no P-384 point has this x-coordinate") from None
    return Point(numbers.x, numbers.y)


def decode_uncompressed(data: bytes) -> Point:
    """Parse a 97-byte SEC1 uncompressed point (04 || x || y).

    Rejects other lengths and prefixes, coordinates >= p and points off the curve with
    :class:`DecodeError`. The identity has no 97-byte form, so it cannot come out.
    """
    if len(data) != UNCOMPRESSED_LENGTH or data[0] != _UNCOMPRESSED_PREFIX:
        raise DecodeError("an uncompressed P-384 point is 97 bytes starting with 04")
    x = int.from_bytes(data[1 : 1 + FIELD_BYTES], "big")
    y = int.from_bytes(data[1 + FIELD_BYTES :], "big")
    if x >= P or y >= P:
        raise DecodeError("point coordinate is not below p")
    point = Point(x, y)  # raises DecodeError off the curve
    if point.is_identity:  # (0, 0) is off the curve; kept for clarity of intent
        raise DecodeError("the identity is not a valid element")
    return point


def decode_point(data: bytes) -> Point:
    """Parse either SEC1 form, told apart by length (49 compressed, 97 uncompressed)."""
    if len(data) == UNCOMPRESSED_LENGTH:
        return decode_uncompressed(data)
    return decode_compressed(data)


# -- scalars ----------------------------------------------------------------------------------


def encode_scalar(scalar: int) -> bytes:
    """48-byte big-endian encoding: RFC 9497 §4.4 SerializeScalar. Needs 0 <= scalar < n."""
    if not 0 <= scalar < N:
        raise ValueError("scalar out of range")
    return scalar.to_bytes(SCALAR_BYTES, "big")


def decode_scalar(data: bytes, *, nonzero: bool = False) -> int:
    """Parse 48 big-endian bytes: RFC 9497 §4.4 DeserializeScalar.

    Values >= n are rejected, as the RFC requires. Zero is a valid scalar there (a proof's
    ``c`` or ``s`` may be zero); pass ``nonzero=True`` where zero is not (a secret key, a
    blind). Errors never echo the bytes.
    """
    if len(data) != SCALAR_BYTES:
        raise DecodeError("a P-384 scalar is 48 bytes")
    value = int.from_bytes(data, "big")
    if value >= N:
        raise DecodeError("scalar is not below the group order")
    if nonzero and value == 0:
        raise DecodeError("scalar must not be zero")
    return value


__all__ = [
    "COMPRESSED_LENGTH",
    "FIELD_BYTES",
    "GENERATOR",
    "GX",
    "GY",
    "IDENTITY",
    "SCALAR_BYTES",
    "SQRT_EXPONENT",
    "UNCOMPRESSED_LENGTH",
    "A",
    "B",
    "N",
    "P",
    "Point",
    "curve_rhs",
    "decode_compressed",
    "decode_point",
    "decode_scalar",
    "decode_uncompressed",
    "encode_compressed",
    "encode_scalar",
    "encode_uncompressed",
]
