"""The two type-2 verifiers, cryptography (the reference) and Tink (the ``fast`` extra), give
the same answer for every input: official vectors, differential fuzzing, end to end."""

from __future__ import annotations

import importlib.util
import os
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given
from hypothesis import strategies as st

from pat_middleware import (
    IssuerKey,
    KeyRing,
    Reason,
    TokenChallenge,
    TokenError,
    TrustedKey,
    encode_pss_spki,
    verify_token,
)
from pat_middleware.errors import ConfigurationError
from pat_middleware.policy import Outcome, Policy
from pat_middleware.tokens.pss_tink import BACKEND_ENV, requested_backend, tink_verifier

from ._origin import ISSUER, Browser, FakeClock, answer, make_settings
from .vectors import TYPE2_ISSUANCE, h

HAS_TINK = importlib.util.find_spec("tink") is not None
needs_tink = pytest.mark.skipif(not HAS_TINK, reason="tink (the fast extra) is not installed")
BACKENDS = [
    pytest.param("cryptography", id="cryptography"),
    pytest.param("tink", id="tink", marks=needs_tink),
]

Verify = Callable[[bytes, bytes], bool]


def _env(backend: str) -> dict[str, str]:
    return {BACKEND_ENV: "cryptography" if backend == "cryptography" else "auto"}


def load(spki: bytes, backend: str, *, allow_4096: bool = False) -> IssuerKey:
    """The key as loaded with ``backend`` selected (the choice is made at load time)."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in _env(backend).items():
            mp.setenv(name, value)
        key = IssuerKey.from_spki(spki, allow_4096=allow_4096)
    assert key.rsa_backend == backend
    return key


def _pss(salt: int = 48, mgf: hashes.HashAlgorithm | None = None) -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(mgf or hashes.SHA384()), salt_length=salt)


# ------------------------------------------------------------------------------ selection


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = "import sys, pat_middleware; print('tink' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"


@needs_tink
def test_tink_is_used_when_installed(issuer_key: IssuerKey) -> None:
    if os.environ.get(BACKEND_ENV, "").strip().lower() == "cryptography":
        pytest.skip(f"{BACKEND_ENV}=cryptography in this session")
    assert issuer_key.rsa_backend == "tink"


def test_env_escape_hatch_and_typos(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    assert requested_backend() == "auto"
    monkeypatch.setenv(BACKEND_ENV, " Cryptography ")
    assert requested_backend() == "cryptography"
    monkeypatch.setenv(BACKEND_ENV, "openssl")
    with pytest.raises(ConfigurationError, match=BACKEND_ENV):
        requested_backend()


@pytest.mark.parametrize("backend", BACKENDS)
def test_repr_names_no_backend(issuer_key: IssuerKey, backend: str) -> None:
    key = load(issuer_key.spki, backend)
    assert repr(key) == (
        f"IssuerKey(token_type=2, modulus_bits=2048, token_key_id={key.token_key_id.hex()})"
    )
    assert key == issuer_key and hash(key) == hash(issuer_key)


def test_tink_declines_keys_it_does_not_take() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    e3 = rsa.generate_private_key(public_exponent=3, key_size=2048).public_key()
    assert tink_verifier(small) is None
    assert tink_verifier(e3) is None


def test_a_key_tink_declines_falls_back_to_cryptography(monkeypatch: pytest.MonkeyPatch) -> None:
    """e = 3 is outside Tink's range; the key still loads, and verifies, with cryptography."""
    private = rsa.generate_private_key(public_exponent=3, key_size=2048)
    monkeypatch.setenv(BACKEND_ENV, "auto")
    key = IssuerKey.from_spki(encode_pss_spki(private.public_key()))
    assert key.rsa_backend == "cryptography"
    message = secrets.token_bytes(98)
    assert key.verify(message, private.sign(message, _pss(), hashes.SHA384()))


def test_tink_missing_means_cryptography(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "tink", None)  # import tink raises ImportError
    public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    assert tink_verifier(public) is None
    monkeypatch.setenv(BACKEND_ENV, "auto")
    assert IssuerKey.from_spki(encode_pss_spki(public)).rsa_backend == "cryptography"


@needs_tink
def test_tink_exceptions_fail_closed(issuer_key: IssuerKey) -> None:
    verify = tink_verifier(issuer_key.public_key)
    assert verify is not None
    bad: Any = None
    assert verify(bad, bytes(256)) is False
    assert verify(bytes(98), bad) is False


# -------------------------------------------------------------------------- RFC 9578 vectors


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("vector", TYPE2_ISSUANCE, ids=lambda v: v["nonce"][:8])
def test_rfc9578_type2_vectors(vector: dict[str, Any], backend: str) -> None:
    key = load(h(vector["pkS"]), backend)
    token = h(vector["token"])
    assert key.verify(token[:98], token[98:])
    challenge = TokenChallenge.from_bytes(h(vector["token_challenge"]))
    ring = KeyRing([TrustedKey(ISSUER, key)])
    assert verify_token(token, keys=ring, challenges=[challenge]).nonce == h(vector["nonce"])
    for i in (2, 33, 98, len(token) - 1):  # the nonce and the authenticator
        bad = bytearray(token)
        bad[i] ^= 0x80
        with pytest.raises(TokenError) as info:
            verify_token(bytes(bad), keys=ring, challenges=[challenge])
        assert info.value.reason is Reason.BAD_SIGNATURE


# ------------------------------------------------------------------------------ differential


@pytest.fixture(scope="module")
def pair(rsa_2048: rsa.RSAPrivateKey) -> tuple[IssuerKey, IssuerKey]:
    if not HAS_TINK:
        pytest.skip("tink (the fast extra) is not installed")
    spki = encode_pss_spki(rsa_2048.public_key())
    return load(spki, "cryptography"), load(spki, "tink")


def _flip(data: bytes, bit: int) -> bytes:
    if not data:
        return data
    bit %= len(data) * 8
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


MUTATIONS = (
    "valid",
    "flip_signature",
    "flip_input",
    "salt_32",
    "salt_0",
    "salt_max",
    "mgf1_sha256",
    "hash_sha256",
    "pkcs1v15",
    "truncated",
    "extended",
    "leading_zero_stripped",
    "all_zero",
    "modulus",
    "above_modulus",
    "random",
    "empty",
)


def _case(
    private: rsa.RSAPrivateKey, mutation: str, message: bytes, bit: int, junk: bytes
) -> tuple[bytes, bytes]:
    """(token_input, authenticator) for ``mutation`` of a valid signature of ``message``."""
    n = private.public_key().public_numbers().n
    size = (n.bit_length() + 7) // 8
    sha384 = hashes.SHA384()
    if mutation == "salt_32":
        return message, private.sign(message, _pss(32), sha384)
    if mutation == "salt_0":
        return message, private.sign(message, _pss(0), sha384)
    if mutation == "salt_max":
        return message, private.sign(message, _pss(size - 48 - 2), sha384)  # the longest salt
    if mutation == "mgf1_sha256":
        return message, private.sign(message, _pss(mgf=hashes.SHA256()), sha384)
    if mutation == "hash_sha256":
        return message, private.sign(message, _pss(32, hashes.SHA256()), hashes.SHA256())
    if mutation == "pkcs1v15":
        return message, private.sign(message, padding.PKCS1v15(), sha384)
    if mutation == "all_zero":
        return message, bytes(size)
    if mutation == "modulus":
        return message, n.to_bytes(size, "big")
    if mutation == "above_modulus":
        return message, (n + 1 + int.from_bytes(junk[:8], "big")).to_bytes(size, "big")
    if mutation == "random":
        return message, (junk * (size // len(junk) + 1))[:size] if junk else bytes(size)
    if mutation == "empty":
        return message, b""
    signature = private.sign(message, _pss(), sha384)
    if mutation == "flip_signature":
        return message, _flip(signature, bit)
    if mutation == "flip_input":
        return _flip(message, bit), signature
    if mutation == "truncated":
        return message, signature[: bit % size]
    if mutation == "extended":
        return message, signature + (junk or b"\x00")
    if mutation == "leading_zero_stripped":
        return message, signature.lstrip(b"\x00") if signature[0] == 0 else signature[1:]
    return message, signature


@given(
    mutation=st.sampled_from(MUTATIONS),
    message=st.one_of(st.binary(min_size=98, max_size=98), st.binary(max_size=200)),
    bit=st.integers(min_value=0, max_value=4096),
    junk=st.binary(min_size=1, max_size=16),
)
def test_backends_agree(
    pair: tuple[IssuerKey, IssuerKey],
    rsa_2048: rsa.RSAPrivateKey,
    mutation: str,
    message: bytes,
    bit: int,
    junk: bytes,
) -> None:
    reference, fast = pair
    token_input, authenticator = _case(rsa_2048, mutation, message, bit, junk)
    expected = reference.verify(token_input, authenticator)
    assert fast.verify(token_input, authenticator) is expected
    # Only the untouched signature verifies (a bit flip of an empty input changes nothing).
    assert expected is (mutation == "valid" or (mutation == "flip_input" and not message))


def _signature_with_leading_zero(private: rsa.RSAPrivateKey) -> tuple[bytes, bytes]:
    while True:  # about one signature in 256
        message = secrets.token_bytes(98)
        signature = private.sign(message, _pss(), hashes.SHA384())
        if signature[0] == 0:
            return message, signature


@pytest.mark.parametrize("backend", BACKENDS)
def test_signature_shorter_than_the_modulus_is_refused(
    rsa_2048: rsa.RSAPrivateKey, backend: str
) -> None:
    """RFC 8017 §8.1.2 step 1: a signature must be exactly k bytes. OpenSSL alone takes one
    whose leading zero byte was stripped (it is the same integer); Tink refuses it, and so does
    IssuerKey with either backend."""
    key = load(encode_pss_spki(rsa_2048.public_key()), backend)
    message, signature = _signature_with_leading_zero(rsa_2048)
    assert key.verify(message, signature)
    assert not key.verify(message, signature[1:])


# ---------------------------------------------------------------------------- end to end


@pytest.fixture
def tink_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if not HAS_TINK:
        pytest.skip("tink (the fast extra) is not installed")
    monkeypatch.setenv(BACKEND_ENV, "auto")
    yield


@pytest.mark.usefixtures("tink_env")
def test_policy_evaluate_passes_with_tink(
    rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    policy = Policy(make_settings(issuer_key), clock=FakeClock())
    keys = [k for c in policy.settings.issuers for k in c.keys]
    assert [k.rsa_backend for k in keys if isinstance(k, IssuerKey)] == ["tink"]
    browser = Browser(policy)
    token = answer(browser.challenge(), rsa_2048, issuer_key)
    assert browser.get(token=token).outcome is Outcome.PASS

    other = Browser(policy)
    forged = bytearray(answer(other.challenge(), rsa_2048, issuer_key))
    forged[-1] ^= 0x01
    decision = other.get(token=bytes(forged))
    assert decision.outcome is not Outcome.PASS
    assert decision.reason is Reason.BAD_SIGNATURE


@pytest.mark.parametrize("backend", BACKENDS)
def test_4096_bit_key(rsa_4096: rsa.RSAPrivateKey, backend: str) -> None:
    """Legacy 4096-bit keys (allow_4096) verify with either backend; Tink takes them."""
    key = load(encode_pss_spki(rsa_4096.public_key()), backend, allow_4096=True)
    assert key.authenticator_length == 512
    message = secrets.token_bytes(98)
    signature = rsa_4096.sign(message, _pss(), hashes.SHA384())
    assert key.verify(message, signature)
    assert not key.verify(message, _flip(signature, 7))
    assert not key.verify(_flip(message, 7), signature)
    assert not key.verify(message, signature[:256])


def test_a_backend_typo_stops_the_policy_at_start_up(
    issuer_key: IssuerKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys may first load in the background refresher (directory issuers), where a bad
    PAT_MIDDLEWARE_RSA_BACKEND would surface at request time; Policy refuses it up front."""
    settings = make_settings(issuer_key)
    monkeypatch.setenv(BACKEND_ENV, "tinkk")
    with pytest.raises(ConfigurationError, match=BACKEND_ENV):
        Policy(settings, clock=FakeClock())
