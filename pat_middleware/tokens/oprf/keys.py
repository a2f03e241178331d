"""Secret scalars kept inside OpenSSL: constant-time multiplication, keys, DLEQ responses.

Design (RFC 9497 §7.4 "Timing Leaks": operations on secret data MUST run in constant time)
-----------------------------------------------------------------------------------------

CPython integers are not constant time, so a secret scalar is never multiplied by a point
with Python integers. Every secret scalar (the server key k, a proof nonce r, a client
blind and its inverse) lives in an ``cryptography`` EC private-key object, and OpenSSL does
the multiplications:

* **Fixed base**, s*G: OpenSSL computes it when the key object is made
  (:func:`ec.generate_private_key` for fresh randomness, :func:`ec.derive_private_key` for
  a given value). That is a key's public key and a proof's t2 = r*G.
* **Variable base**, s*P for any P (possibly chosen by the peer): ``key.exchange(ECDH(),
  P)`` returns x(s*P) in constant time; OpenSSL validates P while loading it. The full
  point is then rebuilt from public values only. A second exchange gives
  x2 = x(s*(P + G)) = x(s*P + s*G). With Q = s*P = (x1, y1) and S = s*G = (xs, ys), the
  chord through Q and S gives (y1 - ys)^2 = (x2 + x1 + xs) * (x1 - xs)^2, and
  y1^2 = x1^3 - 3*x1 + b, so y1 = (y1^2 + ys^2 - (x2 + x1 + xs)(x1 - xs)^2) / (2*ys): one
  candidate, linear, no square root and no guessing. This needs Q != +-S, i.e. P != +-G
  (s is invertible mod n); for P = G or P = -G the answer is +-S itself. The rebuilt point
  is checked to be on the curve. x1 and x2 are functions of the output s*P and of the
  public S, so the Python arithmetic here sees nothing the output does not already reveal.
  Tests check the result against the RFC vectors and against
  :meth:`Point.multiply_public` on random scalars and points.

The one piece of arithmetic on a secret outside OpenSSL is the DLEQ response
s = r - c*k mod n (RFC 9497 §2.2.1 GenerateProof). :class:`SecretKey` never keeps k as one
Python integer: it holds two additive shares k = k1 + k2 (mod n), split once at load and
refreshed with a fresh uniform mask before every use, and computes c*k1 and c*k2 separately
(:meth:`SecretKey.proof_response`). Every secret operand is also padded with a multiple of n
(``n << 40``, which does not change a value mod n) so that its CPython limb count is the
same for every value, because limb count is what CPython's big-integer timing mostly
depends on.

Residual leakage, stated honestly:

* CPython's long division has rare data-dependent correction steps, and a reduced
  intermediate (a refreshed share, c*k1 mod n) is one limb shorter with probability about
  2^-24. What that could reveal is about one share of one request; the two shares are
  fresh uniform values that only sum to k, so a leak has to catch both shares of the same
  request to say anything about k.
* The proof nonce r and a client blind are read out of OpenSSL as Python integers
  (``private_numbers()``), and the blind's inverse goes back in (``derive_private_key``).
  Those conversions take time depending on the value's byte length, so a value with a
  leading zero byte (probability 2^-8) converts a few nanoseconds faster. Leading-zero
  leaks of DLEQ/Schnorr nonces are what lattice attacks feed on, given enough proofs
  whose nonces are known to be short; here the difference is nanoseconds inside a
  request of milliseconds, which we judge not measurable from the network. Should that
  change, r can be held as two OpenSSL-held shares (two more exchanges per proof,
  about 0.8 ms). The blind's inverse (:func:`scalar_inverse`) is computed on the masked
  value blind*u for a fresh random u. Nonces and blinds are per-proof and per-token values,
  never reused.
* ``exchange`` converts its x-coordinate result and ``from_encoded_point`` its input the
  same way; both are public values. OpenSSL's own scalar multiplication is constant time.
* At load, k is read once as a Python integer to split it into shares, and
  ``voprf.derive_key_pair`` reduces its hash output mod n in Python, once per key.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec

from ...errors import DecodeError
from .p384 import (
    GENERATOR,
    IDENTITY,
    N,
    P,
    Point,
    curve_rhs,
    decode_compressed,
    decode_scalar,
    decode_uncompressed,
    encode_compressed,
    encode_uncompressed,
)

_CURVE = ec.SECP384R1()
_ECDH = ec.ECDH()
_NEG_GENERATOR = -GENERATOR
#: Added to secret operands so their CPython limb count never varies (value mod n unchanged).
#: n << 40 lies in (2^423, 2^424), so padded values are 424 or 425 bits: always 15 limbs of
#: 30 bits, or 29 limbs of 15 bits.
_PAD = N << 40


def _load_peer(point: Point) -> ec.EllipticCurvePublicKey:
    return ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, encode_uncompressed(point))


class SecretScalar:
    """A nonzero scalar s held as an OpenSSL P-384 private key.

    :meth:`multiply` computes s*P in constant time (see the module docstring);
    :attr:`base_point` is s*G, computed by OpenSSL when the object is made. Used for a
    proof nonce and a client blind, and inside :class:`SecretKey`. The value is never part
    of ``repr`` or any error message; :meth:`reveal` hands it out explicitly.
    """

    __slots__ = ("_base_point", "_inv_two_ys", "_key", "_ys_squared")

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(key.curve, ec.SECP384R1):
            raise DecodeError("the key is not a P-384 key")
        numbers = key.public_key().public_numbers()
        base = Point(numbers.x, numbers.y)
        self._key = key
        self._base_point = base
        # Per-scalar constants of the y-recovery formula (public: they come from s*G).
        self._ys_squared = base.y * base.y % P
        self._inv_two_ys = pow(2 * base.y, -1, P)

    @classmethod
    def generate(cls) -> SecretScalar:
        """A fresh uniformly random nonzero scalar (OpenSSL's RNG; RFC 9497 RandomScalar)."""
        return cls(ec.generate_private_key(_CURVE))

    @classmethod
    def from_int(cls, value: int) -> SecretScalar:
        """Wrap a given scalar 0 < value < n (injected test randomness, an inverse, a
        public scalar on the verifier's side). Raises :class:`DecodeError` otherwise."""
        if not 0 < value < N:
            raise DecodeError("scalar must be in [1, n-1]")
        return cls(ec.derive_private_key(value, _CURVE))

    @property
    def base_point(self) -> Point:
        """s*G."""
        return self._base_point

    def reveal(self) -> int:
        """The scalar as a Python integer. Its callers are the few places that must do
        arithmetic on it (a proof response, a blind's inverse)."""
        return self._key.private_numbers().private_value

    def _x_of_product(self, point: Point) -> int:
        shared = self._key.exchange(_ECDH, _load_peer(point))
        return int.from_bytes(shared, "big")

    def multiply(self, point: Point) -> Point:
        """s*point, with the secret scalar used only inside OpenSSL (constant time)."""
        if point.is_identity:
            return IDENTITY
        if point == GENERATOR:
            return self._base_point
        if point == _NEG_GENERATOR:
            return -self._base_point
        x1 = self._x_of_product(point)
        x2 = self._x_of_product(point + GENERATOR)
        base = self._base_point
        dx = (x1 - base.x) % P
        chord = (x2 + x1 + base.x) * dx * dx % P
        y1 = (curve_rhs(x1) + self._ys_squared - chord) * self._inv_two_ys % P
        try:
            return Point(x1, y1)
        except DecodeError:  # only if OpenSSL's two answers disagreed
            raise RuntimeError("inconsistent results from OpenSSL ECDH") from None

    def __repr__(self) -> str:
        return "SecretScalar(<secret>)"


def scalar_mult(scalar: int, point: Point) -> Point:
    """scalar*point through OpenSSL, for any 0 <= scalar < n (zero gives the identity).

    Constant time in the scalar. It is also the fastest multiplication here for public
    scalars (about 1.2 ms against 3.5 ms for :meth:`Point.multiply_public`), so verifiers
    use it too. To multiply several points by one scalar, make one :class:`SecretScalar`.
    """
    if scalar == 0:
        return IDENTITY
    return SecretScalar.from_int(scalar).multiply(point)


def scalar_inverse(value: int) -> int:
    """RFC 9497 ScalarInverse: value^-1 mod n, for 0 < value < n.

    For secret values (a client's blind) the inversion runs on value*u for a fresh random
    mask u, which is uniformly distributed whatever the value is; the padded value enters
    one multiplication. Raises :class:`DecodeError` for 0 or out-of-range values.
    """
    if not 0 < value < N:
        raise DecodeError("scalar must be in [1, n-1]")
    mask = secrets.randbelow(N - 1) + 1
    masked = (value + _PAD) * mask % N
    return pow(masked, -1, N) * mask % N


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A P-384 public key (a non-identity point) with both SEC1 encodings computed once."""

    point: Point
    compressed: bytes = field(init=False, repr=False, compare=False)
    uncompressed: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.point.is_identity:
            raise DecodeError("the identity is not a public key")
        object.__setattr__(self, "compressed", encode_compressed(self.point))
        object.__setattr__(self, "uncompressed", encode_uncompressed(self.point))

    @classmethod
    def from_compressed(cls, data: bytes) -> PublicKey:
        """Parse a 49-byte compressed point (the RFC 9497 / RFC 9578 pkS encoding)."""
        return cls(decode_compressed(data))

    @classmethod
    def from_uncompressed(cls, data: bytes) -> PublicKey:
        """Parse a 97-byte uncompressed point (Private State Tokens' key encoding)."""
        return cls(decode_uncompressed(data))

    def __repr__(self) -> str:
        return f"PublicKey({self.compressed.hex()})"


class SecretKey:
    """The server's VOPRF private key k, loaded once.

    Build it from a ``cryptography`` P-384 private key (:meth:`from_private_key`), from a
    48-byte scalar (:meth:`from_bytes`), at random (:meth:`generate`), or with RFC 9497
    DeriveKeyPair (``voprf.derive_key_pair``). Holds the OpenSSL key object, the public key
    with its encodings, and k as two refreshed additive shares (module docstring). The
    scalar never appears in ``repr``, ``str`` or an error message.
    """

    __slots__ = ("_public_key", "_scalar", "_shares")

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._scalar = SecretScalar(key)
        self._public_key = PublicKey(self._scalar.base_point)
        value = key.private_numbers().private_value
        share = secrets.randbelow(N)
        self._shares = (share + _PAD, (value - share) % N + _PAD)

    @classmethod
    def from_private_key(cls, key: ec.EllipticCurvePrivateKey) -> SecretKey:
        """Use an existing ``cryptography`` P-384 private key."""
        return cls(key)

    @classmethod
    def from_bytes(cls, data: bytes) -> SecretKey:
        """Parse a 48-byte big-endian scalar in [1, n-1] (RFC 9497 DeserializeScalar, with
        zero refused). Raises :class:`DecodeError` without echoing the bytes."""
        return cls(ec.derive_private_key(decode_scalar(data, nonzero=True), _CURVE))

    @classmethod
    def generate(cls) -> SecretKey:
        """A fresh random key (RFC 9497 §3.2 GenerateKeyPair)."""
        return cls(ec.generate_private_key(_CURVE))

    @property
    def public_key(self) -> PublicKey:
        """pkS = k*G."""
        return self._public_key

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        """The ``cryptography`` key object, for storage (serialize it to PKCS#8)."""
        return self._scalar._key

    def multiply(self, point: Point) -> Point:
        """k*point in constant time (BlindEvaluate, Evaluate, ComputeCompositesFast)."""
        return self._scalar.multiply(point)

    def _refresh(self) -> tuple[int, int]:
        # New shares (k1 + u, k2 - u) for a fresh uniform u. Each caller computes with the
        # pair it made, and the tuple is stored in one assignment, so concurrent callers
        # never mix shares of different pairs.
        k1, k2 = self._shares
        mask = secrets.randbelow(N)
        shares = ((k1 + mask) % N + _PAD, (k2 - mask) % N + _PAD)
        self._shares = shares
        return shares

    def proof_response(self, nonce: SecretScalar, challenge: int) -> int:
        """s = r - c*k mod n, the last step of RFC 9497 §2.2.1 GenerateProof (and of any
        Chaum-Pedersen DLEQ proof with witness k), for the nonce r and challenge c.

        Computed as r - c*k1 - c*k2 on freshly refreshed shares, with padded operands.
        """
        if not 0 <= challenge < N:
            raise DecodeError("challenge out of range")
        k1, k2 = self._refresh()
        t1 = challenge * k1 % N
        t2 = challenge * k2 % N
        return (nonce.reveal() + _PAD - t1 - t2) % N

    def __repr__(self) -> str:
        return f"SecretKey(public_key={self._public_key.compressed.hex()})"


__all__ = ["PublicKey", "SecretKey", "SecretScalar", "scalar_inverse", "scalar_mult"]
