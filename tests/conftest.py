from __future__ import annotations

import os
import secrets

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, settings

from pat_middleware import IssuerKey, Token, TokenChallenge, encode_pss_spki

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("fuzz", max_examples=50_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def rsa_2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def other_rsa_2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def rsa_4096() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=4096)


@pytest.fixture(scope="session")
def issuer_key(rsa_2048: rsa.RSAPrivateKey) -> IssuerKey:
    return IssuerKey.from_spki(encode_pss_spki(rsa_2048.public_key()))


def sign_token(
    private_key: rsa.RSAPrivateKey,
    key: IssuerKey,
    challenge: TokenChallenge,
    *,
    nonce: bytes | None = None,
) -> bytes:
    """A token as a client would finalize it: an RSA-PSS signature over the 98-byte input.

    An unblinded RSABSSA signature is a plain RSASSA-PSS signature, so signing directly gives
    the same verification inputs without running issuance.
    """
    unsigned = Token(
        token_type=key.token_type,
        nonce=nonce if nonce is not None else secrets.token_bytes(32),
        challenge_digest=challenge.digest,
        token_key_id=key.token_key_id,
        authenticator=b"\x00",
    )
    authenticator = private_key.sign(
        unsigned.authenticator_input,
        padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48),
        hashes.SHA384(),
    )
    return unsigned.authenticator_input + authenticator
