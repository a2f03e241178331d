"""P-384 group and RFC 9380 hashing: constants, points, encodings, scalars, all vectors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from pat_middleware.errors import DecodeError
from pat_middleware.tokens.oprf import h2c, p384
from pat_middleware.tokens.oprf.p384 import GENERATOR, IDENTITY, N, P, Point
from tests.vectors import VECTOR_DIR

SUITE: dict[str, Any] = json.loads(
    (VECTOR_DIR / "rfc9380-p384-xmd-sha384-sswu-ro.json").read_text()
)
XMD: list[dict[str, Any]] = json.loads((VECTOR_DIR / "rfc9380-expand-message-xmd.json").read_text())
XMD_CASES = [(group, test) for group in XMD for test in group["tests"]]

_DST = b"pat-middleware-tests-P384"
points = st.binary(max_size=64).map(lambda msg: h2c.hash_to_curve(msg, _DST))
scalars = st.integers(min_value=1, max_value=N - 1)


def _x(value: str) -> int:
    return int(value, 16)


def _openssl_point(scalar: int) -> Point:
    numbers = ec.derive_private_key(scalar, ec.SECP384R1()).public_key().public_numbers()
    return Point(numbers.x, numbers.y)


def _on_curve_small_x() -> tuple[int, int]:
    # The smallest x with a point on the curve: x + p still fits in 48 bytes, which makes a
    # non-canonical encoding of a real point.
    x = 0
    while True:
        rhs = p384.curve_rhs(x)
        y = pow(rhs, p384.SQRT_EXPONENT, P)
        if y * y % P == rhs:
            return x, y
        x += 1


def _off_curve_x() -> int:
    x = 1
    while True:
        rhs = p384.curve_rhs(x)
        if pow(rhs, p384.SQRT_EXPONENT, P) ** 2 % P != rhs:
            return x
        x += 1


# -- constants and arithmetic ------------------------------------------------------------------


def test_constants_match_openssl() -> None:
    assert _openssl_point(1) == GENERATOR
    assert GENERATOR.multiply_public(N - 1) == -GENERATOR
    assert GENERATOR.multiply_public(N).is_identity
    assert N.bit_length() == P.bit_length() == 384
    assert pow(2, P - 1, P) == 1 and pow(3, N - 1, N) == 1


def test_identity_rules() -> None:
    assert IDENTITY.is_identity and not GENERATOR.is_identity
    assert IDENTITY + GENERATOR == GENERATOR == GENERATOR + IDENTITY
    assert GENERATOR + (-GENERATOR) == IDENTITY
    assert -IDENTITY == IDENTITY
    assert IDENTITY.double() == IDENTITY
    assert IDENTITY.multiply_public(5) == IDENTITY
    assert GENERATOR.multiply_public(0) == IDENTITY
    assert repr(IDENTITY) == "Point(identity)"


def test_point_constructor_refuses_off_curve() -> None:
    with pytest.raises(DecodeError):
        Point(GENERATOR.x, (GENERATOR.y + 1) % P)
    with pytest.raises(DecodeError):
        Point(GENERATOR.x + P, GENERATOR.y)


@given(scalars, scalars)
def test_public_multiply_matches_openssl_and_is_linear(a: int, b: int) -> None:
    pa = GENERATOR.multiply_public(a)
    assert pa == _openssl_point(a)
    assert pa + GENERATOR.multiply_public(b) == GENERATOR.multiply_public((a + b) % N)
    assert pa.double() == pa + pa == GENERATOR.multiply_public(2 * a % N)
    assert pa - pa == IDENTITY


def test_point_equality_and_hash() -> None:
    two = GENERATOR.double()
    assert two == Point(two.x, two.y)
    assert hash(two) == hash(Point(two.x, two.y))
    assert two != GENERATOR
    assert GENERATOR.__eq__("G") is NotImplemented


# -- encodings ------------------------------------------------------------------------------


@given(points)
def test_encodings_round_trip(point: Point) -> None:
    compressed = p384.encode_compressed(point)
    uncompressed = p384.encode_uncompressed(point)
    assert len(compressed) == p384.COMPRESSED_LENGTH == 49
    assert len(uncompressed) == p384.UNCOMPRESSED_LENGTH == 97
    assert p384.decode_compressed(compressed) == point
    assert p384.decode_uncompressed(uncompressed) == point
    assert p384.decode_point(compressed) == p384.decode_point(uncompressed) == point


def test_encodings_match_openssl() -> None:
    key = ec.derive_private_key(123456789, ec.SECP384R1()).public_key()
    point = _openssl_point(123456789)
    assert p384.encode_compressed(point) == key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    assert p384.encode_uncompressed(point) == key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def test_identity_cannot_be_encoded() -> None:
    with pytest.raises(ValueError):
        p384.encode_compressed(IDENTITY)
    with pytest.raises(ValueError):
        p384.encode_uncompressed(IDENTITY)


def test_each_decoder_takes_only_its_form() -> None:
    compressed = p384.encode_compressed(GENERATOR)
    uncompressed = p384.encode_uncompressed(GENERATOR)
    with pytest.raises(DecodeError):
        p384.decode_compressed(uncompressed)
    with pytest.raises(DecodeError):
        p384.decode_uncompressed(compressed)


BAD_POINTS = {
    "empty": b"",
    "identity-sec1": b"\x00",
    "identity-49": bytes(49),
    "identity-97": b"\x04" + bytes(96),
    "zeros-97": bytes(97),
    "hybrid-06": b"\x06" + p384.encode_uncompressed(GENERATOR)[1:],
    "hybrid-07": b"\x07" + p384.encode_uncompressed(GENERATOR)[1:],
    "compressed-prefix-04": b"\x04" + p384.encode_compressed(GENERATOR)[1:],
    "uncompressed-prefix-02": b"\x02" + p384.encode_uncompressed(GENERATOR)[1:],
    "short": p384.encode_compressed(GENERATOR)[:-1],
    "long": p384.encode_compressed(GENERATOR) + b"\x00",
    "x-is-p": b"\x02" + P.to_bytes(48, "big"),
    "x-all-ones": b"\x03" + b"\xff" * 48,
    "y-is-p": b"\x04" + GENERATOR.x.to_bytes(48, "big") + P.to_bytes(48, "big"),
    "off-curve-y": b"\x04"
    + GENERATOR.x.to_bytes(48, "big")
    + ((GENERATOR.y + 1) % P).to_bytes(48, "big"),
    "off-curve-x": b"\x02" + _off_curve_x().to_bytes(48, "big"),
}


@pytest.mark.parametrize("data", BAD_POINTS.values(), ids=BAD_POINTS.keys())
def test_bad_points_are_refused(data: bytes) -> None:
    for decoder in (p384.decode_compressed, p384.decode_uncompressed, p384.decode_point):
        with pytest.raises(DecodeError):
            decoder(data)


def test_non_canonical_coordinates_are_refused() -> None:
    x, y = _on_curve_small_x()
    point = Point(x, y)
    assert p384.decode_compressed(p384.encode_compressed(point)) == point
    prefix = bytes((0x02 | (y & 1),))
    with pytest.raises(DecodeError):
        p384.decode_compressed(prefix + (x + P).to_bytes(48, "big"))
    with pytest.raises(DecodeError):
        p384.decode_uncompressed(b"\x04" + (x + P).to_bytes(48, "big") + y.to_bytes(48, "big"))


@given(st.binary(max_size=120))
def test_point_decoders_raise_only_decode_error(data: bytes) -> None:
    for decoder in (p384.decode_compressed, p384.decode_uncompressed, p384.decode_point):
        try:
            point = decoder(data)
        except DecodeError:
            continue
        assert not point.is_identity


@given(st.sampled_from([0x00, 0x02, 0x03, 0x04, 0x06]), st.binary(min_size=48, max_size=48))
def test_compressed_decoder_on_random_x(prefix: int, x: bytes) -> None:
    try:
        point = p384.decode_compressed(bytes((prefix,)) + x)
    except DecodeError:
        return
    assert p384.encode_compressed(point) == bytes((prefix,)) + x


# -- scalars ---------------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=N - 1))
def test_scalar_round_trip(value: int) -> None:
    encoded = p384.encode_scalar(value)
    assert len(encoded) == 48
    assert p384.decode_scalar(encoded) == value


def test_scalar_range() -> None:
    assert p384.decode_scalar(bytes(48)) == 0
    with pytest.raises(DecodeError):
        p384.decode_scalar(bytes(48), nonzero=True)
    for bad in (N.to_bytes(48, "big"), b"\xff" * 48, bytes(47), bytes(49), b""):
        with pytest.raises(DecodeError):
            p384.decode_scalar(bad)
    for value in (-1, N):
        with pytest.raises(ValueError):
            p384.encode_scalar(value)


@given(st.binary(max_size=100))
def test_scalar_decoder_raises_only_decode_error(data: bytes) -> None:
    for nonzero in (False, True):
        try:
            value = p384.decode_scalar(data, nonzero=nonzero)
        except DecodeError:
            continue
        assert 0 <= value < N


def test_scalar_error_does_not_echo_input() -> None:
    secret = b"\xff" * 47 + b"\xfe"
    with pytest.raises(DecodeError) as info:
        p384.decode_scalar(secret)
    assert secret.hex() not in str(info.value)
    assert str(int.from_bytes(secret, "big")) not in str(info.value)


# -- RFC 9380 --------------------------------------------------------------------------------


def test_suite_file_is_the_p384_sha384_ro_suite() -> None:
    assert SUITE["suite"] == "P384_XMD:SHA-384_SSWU_RO_"
    assert len(SUITE["vectors"]) == 5


@pytest.mark.parametrize("vector", SUITE["vectors"], ids=lambda v: v["msg"][:16] or "empty")
def test_rfc9380_hash_to_curve(vector: dict[str, str]) -> None:
    msg = vector["msg"].encode()
    dst = SUITE["dst"].encode()
    u = h2c.hash_to_field(msg, 2, dst)
    assert u == [_x(vector["u[0]"]), _x(vector["u[1]"])]
    for map_to_curve in (h2c.map_to_curve_simple_swu, h2c._map_to_curve_decompressing):
        q0 = map_to_curve(u[0])
        q1 = map_to_curve(u[1])
        assert (q0.x, q0.y) == (_x(vector["Q0.x"]), _x(vector["Q0.y"]))
        assert (q1.x, q1.y) == (_x(vector["Q1.x"]), _x(vector["Q1.y"]))
    point = h2c.hash_to_curve(msg, dst)
    assert (point.x, point.y) == (_x(vector["P.x"]), _x(vector["P.y"]))


@given(st.integers(min_value=0, max_value=P - 1))
def test_fast_map_equals_reference_map(u: int) -> None:
    assert h2c._map_to_curve_decompressing(u) == h2c.map_to_curve_simple_swu(u)


def _exceptional_inputs() -> list[int]:
    # u with Z^2*u^4 + Z*u^2 = 0: u = 0 and u^2 = -1/Z = 1/12 (a square mod p).
    root = pow(pow(12, -1, P), p384.SQRT_EXPONENT, P)
    assert root * root * 12 % P == 1
    return [0, root, P - root]


@pytest.mark.parametrize("u", _exceptional_inputs(), ids=["zero", "root", "minus-root"])
def test_maps_agree_on_the_exceptional_case(u: int) -> None:
    point = h2c.map_to_curve_simple_swu(u)
    assert h2c._map_to_curve_decompressing(u) == point
    assert not point.is_identity


def test_expand_vectors_cover_appendix_k1_to_k3() -> None:
    assert [g["hash"] for g in XMD] == ["SHA256", "SHA256", "SHA512"]
    assert len(XMD[1]["DST"]) > 255  # the oversize-DST group
    assert len(XMD_CASES) == 30


@pytest.mark.parametrize(
    ("group", "test"),
    XMD_CASES,
    ids=[f"{g['section']}-{t['msg'][:8]}-{t['len_in_bytes']}" for g, t in XMD_CASES],
)
def test_rfc9380_expand_message_xmd(group: dict[str, Any], test: dict[str, str]) -> None:
    out = h2c.expand_message_xmd(
        test["msg"].encode(),
        group["DST"].encode(),
        int(test["len_in_bytes"], 16),
        hash_name=group["hash"].lower(),
    )
    assert out.hex() == test["uniform_bytes"]


def test_expand_message_xmd_length_limits() -> None:
    assert len(h2c.expand_message_xmd(b"", b"D", 255 * 48)) == 255 * 48
    for bad in (0, 255 * 48 + 1, 65536):
        with pytest.raises(ValueError):
            h2c.expand_message_xmd(b"", b"D", bad)


def test_hash_to_scalar_reduces_mod_n() -> None:
    uniform = h2c.expand_message_xmd(b"m", b"dst", 72)
    assert h2c.hash_to_scalar(b"m", b"dst") == int.from_bytes(uniform, "big") % N


@given(st.binary(max_size=200))
def test_hash_to_curve_lands_on_the_curve(msg: bytes) -> None:
    point = h2c.hash_to_curve(msg, _DST)
    assert not point.is_identity
    assert p384.decode_uncompressed(p384.encode_uncompressed(point)) == point
