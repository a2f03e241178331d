"""RSA blind signatures, RSABSSA-SHA384 (RFC 9474), all four variants.

Privacy Pass token type 2 uses RSABSSA-SHA384-PSS-Deterministic: EMSA-PSS with SHA-384,
MGF1-SHA-384 and a 48-byte salt, and no message prefix. The PSSZERO variants use an empty
salt; the Randomized variants prepend 32 random bytes to the message (:func:`prepare`).

The protocol, in RFC 9474 §4 terms::

    client: prepared = prepare(msg, randomized)
    client: blinded_msg, inv = blind(pk, prepared)        # sends blinded_msg
    issuer: blind_sig = blind_sign(sk, blinded_msg)       # sends blind_sig
    client: sig = finalize(pk, prepared, blind_sig, inv)  # a plain RSASSA-PSS signature

The modular arithmetic is Python big-int arithmetic, which is **not constant-time**. The
private-key operation adds RSA base blinding to blunt timing attacks, but this issuer serves
tests, demos and small deployments; it is not a hardened production issuer.

No I/O happens here. Randomness comes from an injectable ``rng`` (default
:func:`secrets.token_bytes`); ``salt``, ``msg_prefix`` and the blind can be injected so that
RFC vectors are reproducible.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..errors import IssuanceError

#: A source of random bytes: ``rng(n)`` returns ``n`` bytes.
RandomBytes = Callable[[int], bytes]

HASH_LENGTH = 48  # SHA-384 output, hLen
#: Salt length of the PSS variants (= hLen); the PSSZERO variants use 0.
PSS_SALT_LENGTH = HASH_LENGTH
PSSZERO_SALT_LENGTH = 0
#: Length of the random prefix the Randomized variants put in front of the message.
MSG_PREFIX_LENGTH = 32
#: Smallest modulus accepted. RFC 9474 §5 asks for at least 2048 bits.
MIN_MODULUS_BITS = 2048

_PSS_TRAILER = b"\xbc"
_PSS_M_PRIME_PADDING = bytes(8)
_MGF1_COUNTER_BYTES = 4


@dataclass(frozen=True, slots=True)
class Variant:
    """One RSABSSA-SHA384 variant (RFC 9474 §5): salt length and message preparation."""

    name: str
    salt_length: int
    randomized: bool


RSABSSA_SHA384_PSS_RANDOMIZED = Variant("RSABSSA-SHA384-PSS-Randomized", PSS_SALT_LENGTH, True)
RSABSSA_SHA384_PSSZERO_RANDOMIZED = Variant(
    "RSABSSA-SHA384-PSSZERO-Randomized", PSSZERO_SALT_LENGTH, True
)
RSABSSA_SHA384_PSS_DETERMINISTIC = Variant(
    "RSABSSA-SHA384-PSS-Deterministic", PSS_SALT_LENGTH, False
)
RSABSSA_SHA384_PSSZERO_DETERMINISTIC = Variant(
    "RSABSSA-SHA384-PSSZERO-Deterministic", PSSZERO_SALT_LENGTH, False
)
#: The four variants by RFC name.
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        RSABSSA_SHA384_PSS_RANDOMIZED,
        RSABSSA_SHA384_PSSZERO_RANDOMIZED,
        RSABSSA_SHA384_PSS_DETERMINISTIC,
        RSABSSA_SHA384_PSSZERO_DETERMINISTIC,
    )
}


@dataclass(frozen=True, slots=True)
class BlindRSAPublicKey:
    """An RSA public key with the numbers the protocol needs, extracted once."""

    n: int = field(repr=False)
    e: int
    modulus_bits: int
    #: k in RFC 9474: the byte length of n, hence of every message and signature.
    modulus_length: int
    key: rsa.RSAPublicKey = field(repr=False, compare=False)

    @classmethod
    def from_cryptography(cls, key: rsa.RSAPublicKey) -> BlindRSAPublicKey:
        numbers = key.public_numbers()
        if numbers.n.bit_length() < MIN_MODULUS_BITS:
            raise ValueError(f"RSA modulus must have at least {MIN_MODULUS_BITS} bits")
        return cls(
            n=numbers.n,
            e=numbers.e,
            modulus_bits=numbers.n.bit_length(),
            modulus_length=(numbers.n.bit_length() + 7) // 8,
            key=key,
        )

    @classmethod
    def from_numbers(cls, n: int, e: int) -> BlindRSAPublicKey:
        return cls.from_cryptography(rsa.RSAPublicNumbers(e, n).public_key())


@dataclass(frozen=True, slots=True, repr=False)
class BlindRSAPrivateKey:
    """An RSA private key with its CRT numbers extracted once, for :func:`blind_sign`."""

    public: BlindRSAPublicKey
    d: int
    p: int
    q: int
    dp: int
    dq: int
    qinv: int
    key: rsa.RSAPrivateKey = field(compare=False)

    def __repr__(self) -> str:
        return f"BlindRSAPrivateKey(modulus_bits={self.public.modulus_bits})"

    @classmethod
    def from_cryptography(cls, key: rsa.RSAPrivateKey) -> BlindRSAPrivateKey:
        numbers = key.private_numbers()
        return cls(
            public=BlindRSAPublicKey.from_cryptography(key.public_key()),
            d=numbers.d,
            p=numbers.p,
            q=numbers.q,
            dp=numbers.dmp1,
            dq=numbers.dmq1,
            qinv=numbers.iqmp,
            key=key,
        )

    @classmethod
    def from_numbers(cls, p: int, q: int, e: int) -> BlindRSAPrivateKey:
        """Build the key from its primes and public exponent (d and CRT values derived)."""
        n = p * q
        d = pow(e, -1, math.lcm(p - 1, q - 1))
        numbers = rsa.RSAPrivateNumbers(
            p=p,
            q=q,
            d=d,
            dmp1=rsa.rsa_crt_dmp1(d, p),
            dmq1=rsa.rsa_crt_dmq1(d, q),
            iqmp=rsa.rsa_crt_iqmp(p, q),
            public_numbers=rsa.RSAPublicNumbers(e, n),
        )
        return cls.from_cryptography(numbers.private_key())


PublicKeyLike = BlindRSAPublicKey | rsa.RSAPublicKey
PrivateKeyLike = BlindRSAPrivateKey | rsa.RSAPrivateKey


def _public(key: PublicKeyLike) -> BlindRSAPublicKey:
    if isinstance(key, BlindRSAPublicKey):
        return key
    return BlindRSAPublicKey.from_cryptography(key)


def _private(key: PrivateKeyLike) -> BlindRSAPrivateKey:
    if isinstance(key, BlindRSAPrivateKey):
        return key
    return BlindRSAPrivateKey.from_cryptography(key)


def _i2osp(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")


def _os2ip(data: bytes) -> int:
    return int.from_bytes(data, "big")


def mgf1_sha384(seed: bytes, length: int) -> bytes:
    """MGF1 with SHA-384 (RFC 8017 §B.2.1): ``length`` bytes of mask from ``seed``."""
    blocks = -(-length // HASH_LENGTH)
    if blocks >= 1 << (8 * _MGF1_COUNTER_BYTES):  # pragma: no cover - absurd lengths
        raise ValueError("mask too long")
    out = b"".join(
        hashlib.sha384(seed + counter.to_bytes(_MGF1_COUNTER_BYTES, "big")).digest()
        for counter in range(blocks)
    )
    return out[:length]


def emsa_pss_encode(msg: bytes, em_bits: int, salt: bytes) -> bytes:
    """EMSA-PSS-ENCODE (RFC 8017 §9.1.1) with SHA-384 and MGF1-SHA-384.

    The salt length is ``len(salt)``; the result is ``ceil(em_bits / 8)`` bytes.
    """
    em_length = -(-em_bits // 8)
    if em_length < HASH_LENGTH + len(salt) + 2:
        raise ValueError("encoding error: modulus too small for this hash and salt")
    m_hash = hashlib.sha384(msg).digest()
    h = hashlib.sha384(_PSS_M_PRIME_PADDING + m_hash + salt).digest()
    db_length = em_length - HASH_LENGTH - 1
    db = bytes(db_length - len(salt) - 1) + b"\x01" + salt
    mask = mgf1_sha384(h, db_length)
    masked = bytearray(a ^ b for a, b in zip(db, mask, strict=True))
    # Clear the bits above em_bits so the encoded integer stays below the modulus.
    masked[0] &= 0xFF >> (8 * em_length - em_bits)
    return bytes(masked) + h + _PSS_TRAILER


def prepare(
    msg: bytes,
    randomized: bool,
    *,
    msg_prefix: bytes | None = None,
    rng: RandomBytes = secrets.token_bytes,
) -> bytes:
    """The message to blind and later verify (RFC 9474 §4.1).

    Deterministic variants use ``msg`` as is; Randomized ones prepend a 32-byte prefix.
    """
    if not randomized:
        if msg_prefix:
            raise ValueError("a deterministic variant takes no msg_prefix")
        return msg
    prefix = rng(MSG_PREFIX_LENGTH) if msg_prefix is None else msg_prefix
    if len(prefix) != MSG_PREFIX_LENGTH:
        raise ValueError(f"msg_prefix must be {MSG_PREFIX_LENGTH} bytes")
    return prefix + msg


def _random_unit(n: int, rng: RandomBytes) -> int:
    """A uniform integer in [1, n) that is invertible mod n, by rejection sampling."""
    bits = n.bit_length()
    length = (bits + 7) // 8
    excess = 8 * length - bits
    while True:
        candidate = _os2ip(rng(length)) >> excess
        if 0 < candidate < n and math.gcd(candidate, n) == 1:
            return candidate


def _as_int(value: bytes | int, what: str, pk: BlindRSAPublicKey) -> int:
    number = _os2ip(value) if isinstance(value, bytes) else value
    if not 0 < number < pk.n or math.gcd(number, pk.n) != 1:
        raise ValueError(f"{what} must be a unit modulo n")
    return number


def blind(
    public_key: PublicKeyLike,
    msg: bytes,
    *,
    salt_length: int = PSS_SALT_LENGTH,
    salt: bytes | None = None,
    r: bytes | int | None = None,
    inv: bytes | int | None = None,
    rng: RandomBytes = secrets.token_bytes,
) -> tuple[bytes, bytes]:
    """Blind a prepared message (RFC 9474 §4.2). Returns ``(blinded_msg, inv)``.

    ``salt`` fixes the PSS salt (its length must equal ``salt_length``). ``r`` fixes the
    blinding factor, or ``inv`` its inverse mod n; give at most one. Both are for vectors.
    """
    pk = _public(public_key)
    if salt is None:
        salt = rng(salt_length)
    if len(salt) != salt_length:
        raise ValueError(f"salt must be {salt_length} bytes")
    if r is not None and inv is not None:
        raise ValueError("give r or inv, not both")
    encoded = emsa_pss_encode(msg, pk.modulus_bits - 1, salt)
    m = _os2ip(encoded)
    if math.gcd(m, pk.n) != 1:  # pragma: no cover - would reveal a factor of n
        raise IssuanceError("invalid input: encoded message is not a unit modulo n")
    if r is not None:
        r_int = _as_int(r, "r", pk)
        inv_int = pow(r_int, -1, pk.n)
    elif inv is not None:
        inv_int = _as_int(inv, "inv", pk)
        r_int = pow(inv_int, -1, pk.n)
    else:
        r_int = _random_unit(pk.n, rng)
        inv_int = pow(r_int, -1, pk.n)
    z = m * pow(r_int, pk.e, pk.n) % pk.n
    return _i2osp(z, pk.modulus_length), _i2osp(inv_int, pk.modulus_length)


def blind_sign(
    private_key: PrivateKeyLike,
    blinded_msg: bytes,
    *,
    rng: RandomBytes = secrets.token_bytes,
) -> bytes:
    """Sign a blinded message (RFC 9474 §4.3). Returns ``blind_sig``.

    Raises :class:`IssuanceError` (422) unless ``blinded_msg`` is exactly k bytes encoding
    an integer in (0, n). The signature is checked with the public key before it is
    returned, so a faulty computation never leaks (status 500 if that check fails).
    """
    sk = _private(private_key)
    pk = sk.public
    if len(blinded_msg) != pk.modulus_length:
        raise IssuanceError(f"blinded_msg must be {pk.modulus_length} bytes", status=422)
    m = _os2ip(blinded_msg)
    if not 0 < m < pk.n:
        raise IssuanceError("blinded_msg is out of range for this key", status=422)
    # Base blinding: sign m * u^e instead of m, then divide by u, so the timing of the
    # exponentiations does not depend on the attacker-chosen m alone.
    u = _random_unit(pk.n, rng)
    blinded = m * pow(u, pk.e, pk.n) % pk.n
    s_p = pow(blinded % sk.p, sk.dp, sk.p)
    s_q = pow(blinded % sk.q, sk.dq, sk.q)
    h = sk.qinv * (s_p - s_q) % sk.p
    s = (s_q + sk.q * h) * pow(u, -1, pk.n) % pk.n
    if pow(s, pk.e, pk.n) != m:
        raise IssuanceError("signing failure: blind signature does not verify", status=500)
    return _i2osp(s, pk.modulus_length)


def verify(
    public_key: PublicKeyLike, msg: bytes, sig: bytes, *, salt_length: int = PSS_SALT_LENGTH
) -> bool:
    """RSASSA-PSS-VERIFY with SHA-384, MGF1-SHA-384 and exactly ``salt_length`` bytes of salt."""
    pk = _public(public_key)
    try:
        pk.key.verify(
            sig,
            msg,
            padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=salt_length),
            hashes.SHA384(),
        )
    except InvalidSignature:
        return False
    return True


def finalize(
    public_key: PublicKeyLike,
    msg: bytes,
    blind_sig: bytes,
    inv: bytes | int,
    *,
    salt_length: int = PSS_SALT_LENGTH,
) -> bytes:
    """Unblind ``blind_sig`` and verify it over the prepared ``msg`` (RFC 9474 §4.4).

    Returns the signature. Raises :class:`IssuanceError` (status 502: the issuer's answer is
    bad) if the signature has the wrong size or does not verify.
    """
    pk = _public(public_key)
    if len(blind_sig) != pk.modulus_length:
        raise IssuanceError(f"blind_sig must be {pk.modulus_length} bytes", status=502)
    z = _os2ip(blind_sig)
    if z >= pk.n:
        raise IssuanceError("blind_sig is out of range for this key", status=502)
    sig = _i2osp(z * _as_int(inv, "inv", pk) % pk.n, pk.modulus_length)
    if not verify(pk, msg, sig, salt_length=salt_length):
        raise IssuanceError("blind_sig does not unblind to a valid signature", status=502)
    return sig


__all__ = [
    "HASH_LENGTH",
    "MSG_PREFIX_LENGTH",
    "PSSZERO_SALT_LENGTH",
    "PSS_SALT_LENGTH",
    "RSABSSA_SHA384_PSSZERO_DETERMINISTIC",
    "RSABSSA_SHA384_PSSZERO_RANDOMIZED",
    "RSABSSA_SHA384_PSS_DETERMINISTIC",
    "RSABSSA_SHA384_PSS_RANDOMIZED",
    "VARIANTS",
    "BlindRSAPrivateKey",
    "BlindRSAPublicKey",
    "RandomBytes",
    "Variant",
    "blind",
    "blind_sign",
    "emsa_pss_encode",
    "finalize",
    "mgf1_sha384",
    "prepare",
    "verify",
]
