"""Secret scalars inside OpenSSL: k*P exactness, keys, shares, and what never leaks."""

from __future__ import annotations

import ast
import secrets
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

import pat_middleware.tokens.oprf as oprf_package
from pat_middleware.errors import DecodeError
from pat_middleware.tokens.oprf import h2c
from pat_middleware.tokens.oprf.keys import (
    PublicKey,
    SecretKey,
    SecretScalar,
    scalar_inverse,
    scalar_mult,
)
from pat_middleware.tokens.oprf.p384 import GENERATOR, IDENTITY, N, Point

_DST = b"pat-middleware-tests-P384"
points = st.binary(max_size=64).map(lambda msg: h2c.hash_to_curve(msg, _DST))
scalars = st.integers(min_value=1, max_value=N - 1)


@pytest.fixture(scope="module")
def key() -> SecretKey:
    return SecretKey.generate()


def _value(key: SecretKey) -> int:
    return key.private_key.private_numbers().private_value


# -- k*P through OpenSSL equals the reference multiplication -----------------------------------


@given(scalars, points)
def test_constant_time_multiply_equals_public_multiply(scalar: int, point: Point) -> None:
    assert SecretScalar.from_int(scalar).multiply(point) == point.multiply_public(scalar)


@given(st.integers(min_value=0, max_value=N - 1), points)
def test_scalar_mult_equals_public_multiply(scalar: int, point: Point) -> None:
    assert scalar_mult(scalar, point) == point.multiply_public(scalar)


@given(points)
def test_key_multiply_equals_public_multiply(key: SecretKey, point: Point) -> None:
    assert key.multiply(point) == point.multiply_public(_value(key))


SPECIAL = {
    "G": GENERATOR,
    "-G": -GENERATOR,
    "2G": GENERATOR.double(),
    "-2G": -GENERATOR.double(),
    "(n-1)/2 G": GENERATOR.multiply_public((N - 1) // 2),
}


@pytest.mark.parametrize("point", SPECIAL.values(), ids=SPECIAL.keys())
@pytest.mark.parametrize("scalar", [1, 2, N - 1, N - 2, (N + 1) // 2, 0xDEADBEEF])
def test_multiply_special_points_and_scalars(point: Point, scalar: int) -> None:
    # P = +-G are the cases the y-recovery cannot use; P = -2G makes P + G = -G.
    assert SecretScalar.from_int(scalar).multiply(point) == point.multiply_public(scalar)


def test_multiply_by_self_public_key(key: SecretKey) -> None:
    # k*(k*G): the peer point equals the key's own public key.
    pk = key.public_key.point
    assert key.multiply(pk) == pk.multiply_public(_value(key))


def test_identity_maps_to_identity(key: SecretKey) -> None:
    assert key.multiply(IDENTITY) == IDENTITY


@given(scalars)
def test_base_point_is_fixed_base_product(scalar: int) -> None:
    assert SecretScalar.from_int(scalar).base_point == GENERATOR.multiply_public(scalar)


def test_generated_scalars_reveal_their_value() -> None:
    scalar = SecretScalar.generate()
    value = scalar.reveal()
    assert 0 < value < N
    assert scalar.base_point == GENERATOR.multiply_public(value)


@pytest.mark.parametrize("value", [0, N, N + 1, -1])
def test_secret_scalar_range(value: int) -> None:
    with pytest.raises(DecodeError):
        SecretScalar.from_int(value)


def test_wrong_curve_is_refused() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(DecodeError):
        SecretKey.from_private_key(other)
    with pytest.raises(DecodeError):
        SecretScalar(other)


# -- SecretKey construction -------------------------------------------------------------------


def test_key_constructors_agree() -> None:
    ossl = ec.generate_private_key(ec.SECP384R1())
    value = ossl.private_numbers().private_value
    from_object = SecretKey.from_private_key(ossl)
    from_bytes = SecretKey.from_bytes(value.to_bytes(48, "big"))
    assert from_object.public_key == from_bytes.public_key
    assert from_object.private_key is ossl
    assert from_object.public_key.point == GENERATOR.multiply_public(value)


@pytest.mark.parametrize(
    "data", [bytes(48), N.to_bytes(48, "big"), b"\xff" * 48, bytes(47), bytes(49), b""]
)
def test_secret_key_from_bad_bytes(data: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        SecretKey.from_bytes(data)
    if data:
        assert data.hex() not in str(info.value)


@given(st.binary(max_size=100))
def test_secret_key_parser_raises_only_decode_error(data: bytes) -> None:
    try:
        key = SecretKey.from_bytes(data)
    except DecodeError:
        return
    assert len(data) == 48 and key.public_key.point == GENERATOR.multiply_public(
        int.from_bytes(data, "big")
    )


def test_secret_never_in_repr_or_str() -> None:
    value = secrets.randbelow(N - 1) + 1
    key = SecretKey.from_bytes(value.to_bytes(48, "big"))
    scalar = SecretScalar.from_int(value)
    shares = key._shares
    texts = [repr(key), str(key), repr(scalar), str(scalar)]
    forbidden = [
        value.to_bytes(48, "big").hex(),
        f"{value:x}",
        f"{value:X}",
        str(value),
        *(f"{share:x}" for share in shares),
        *(str(share) for share in shares),
    ]
    for text in texts:
        for secret in forbidden:
            assert secret not in text
    assert key.public_key.compressed.hex() in repr(key)


def test_objects_have_no_instance_dict() -> None:
    # __slots__: nothing can hang a copy of the secret on the object by accident.
    for obj in (SecretKey.generate(), SecretScalar.generate(), PublicKey(GENERATOR)):
        assert not hasattr(obj, "__dict__")


# -- PublicKey ---------------------------------------------------------------------------------


def test_public_key_encodings(key: SecretKey) -> None:
    pk = key.public_key
    assert PublicKey.from_compressed(pk.compressed) == pk
    assert PublicKey.from_uncompressed(pk.uncompressed) == pk
    assert len(pk.compressed) == 49 and len(pk.uncompressed) == 97
    assert pk.compressed.hex() in repr(pk)
    with pytest.raises(DecodeError):
        PublicKey(IDENTITY)
    with pytest.raises(DecodeError):
        PublicKey.from_compressed(pk.uncompressed)


# -- s = r - c*k on refreshed shares ------------------------------------------------------------


@given(st.integers(min_value=0, max_value=N - 1))
def test_proof_response(key: SecretKey, challenge: int) -> None:
    nonce = SecretScalar.generate()
    before = key._shares
    response = key.proof_response(nonce, challenge)
    assert response == (nonce.reveal() - challenge * _value(key)) % N
    after = key._shares
    assert after != before
    assert (after[0] + after[1]) % N == _value(key)


def test_shares_are_padded_to_a_fixed_limb_count(key: SecretKey) -> None:
    for _ in range(50):
        key.proof_response(SecretScalar.generate(), 1)
        assert all(share.bit_length() in (424, 425) for share in key._shares)


@pytest.mark.parametrize("challenge", [-1, N])
def test_proof_response_challenge_range(key: SecretKey, challenge: int) -> None:
    with pytest.raises(DecodeError):
        key.proof_response(SecretScalar.generate(), challenge)


# -- ScalarInverse ------------------------------------------------------------------------------


@given(scalars)
def test_scalar_inverse(value: int) -> None:
    assert scalar_inverse(value) * value % N == 1


@pytest.mark.parametrize("value", [0, N, -1])
def test_scalar_inverse_range(value: int) -> None:
    with pytest.raises(DecodeError):
        scalar_inverse(value)


# -- the package's import boundary --------------------------------------------------------------


def test_oprf_imports_only_stdlib_cryptography_and_errors() -> None:
    package_dir = Path(oprf_package.__file__).parent
    for path in sorted(package_dir.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    top = alias.name.split(".")[0]
                    assert top in sys.stdlib_module_names or top == "cryptography", (path, top)
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    top = (node.module or "").split(".")[0]
                    assert top in sys.stdlib_module_names or top in ("cryptography", "__future__")
                elif node.level == 1:
                    pass  # a sibling module of the oprf package
                else:
                    assert node.level == 3 and node.module == "errors", (path, node.module)
