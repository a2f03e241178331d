"""An optional, faster verifier for type-2 authenticators, backed by Google's Tink.

Installing the ``fast`` extra (``pip install 'pat-middleware[fast]'``) brings ``tink``, whose
``PublicKeyVerify`` primitive verifies RSASSA-PSS with SHA-384, MGF1-SHA-384 and a 48-byte
salt in about three quarters of the time ``cryptography`` takes (BENCHMARKS.md). The
primitive is built once per key, when the key is loaded, and reused for every token.

Selection, decided once per key at load time:

* Tink when it is installed and accepts the key (Tink needs a modulus of at least 2048 bits
  and a public exponent above 65536; type-2 keys are 2048 or 4096 bits with e = 65537);
* ``cryptography`` otherwise, and always when ``PAT_MIDDLEWARE_RSA_BACKEND=cryptography``.

Why "installed means used" rather than a setting: installing the extra is the opt-in, both
backends give the same answer for every input (tests/test_pss_backends.py checks that
differentially), and a key load never depends on anything beyond the key and the
environment. ``cryptography`` stays the default and the reference; the environment variable
is the escape hatch that restores it without uninstalling anything. Any other value than
``auto`` or ``cryptography`` is refused when a key loads, so a typo does not pass silently: it is a
:class:`~pat_middleware.errors.ConfigurationError` naming the variable, at start-up.

Tink is imported here, lazily, the first time a key is loaded: ``import pat_middleware``
never imports it. Verification fails closed: any exception from Tink is a refusal.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from ..errors import ConfigurationError

#: ``(token_input, authenticator) -> bool``: True when the authenticator verifies.
Verify = Callable[[bytes, bytes], bool]

#: Environment variable choosing the RSA verifier: ``auto`` (the default) or ``cryptography``.
BACKEND_ENV = "PAT_MIDDLEWARE_RSA_BACKEND"
BACKEND_AUTO = "auto"
BACKEND_CRYPTOGRAPHY = "cryptography"
BACKEND_TINK = "tink"

_TYPE_URL = "type.googleapis.com/google.crypto.tink.RsaSsaPssPublicKey"
_SALT_LENGTH = 48
_MIN_MODULUS_BITS = 2048  # Tink refuses smaller moduli
_MIN_EXPONENT = 65537  # Tink refuses e <= 65536


def requested_backend() -> str:
    """The backend asked for in ``PAT_MIDDLEWARE_RSA_BACKEND``: ``auto`` or ``cryptography``."""
    value = os.environ.get(BACKEND_ENV, "").strip().lower() or BACKEND_AUTO
    if value not in (BACKEND_AUTO, BACKEND_CRYPTOGRAPHY):
        raise ConfigurationError(
            BACKEND_ENV, f"{value!r} is not {BACKEND_AUTO!r} or {BACKEND_CRYPTOGRAPHY!r}"
        )
    return value


def tink_verifier(public_key: rsa.RSAPublicKey) -> Verify | None:
    """A Tink-backed verifier for ``public_key``, or None when Tink is not installed or does
    not take this key (then ``cryptography`` verifies). Call it once per key, at load."""
    numbers = public_key.public_numbers()
    return _verifier(numbers.n, numbers.e)


@functools.lru_cache(maxsize=64)
def _verifier(n: int, e: int) -> Verify | None:
    """Cached by key: building the primitive takes about a millisecond, and the same key is
    loaded again by directory refreshes, issuer clients and the CLI. A primitive holds no
    state between calls and Tink's primitives are thread-safe, so keys share it."""
    if n.bit_length() < _MIN_MODULUS_BITS or e < _MIN_EXPONENT:
        return None
    try:
        primitive = _primitive(n, e)
    except Exception:  # Tink is not installed, or refused the key: cryptography verifies
        return None
    tink_verify: Callable[[bytes, bytes], Any] = primitive.verify

    def verify(token_input: bytes, authenticator: bytes) -> bool:
        try:
            tink_verify(authenticator, token_input)
        except Exception:  # TinkError on a bad signature; anything else fails closed too
            return False
        return True

    return verify


@functools.cache
def _register() -> None:
    """Tink's signature key managers, registered once (each call costs over a millisecond)."""
    from tink import signature

    signature.register()


def _primitive(n: int, e: int) -> Any:
    """Tink's PublicKeyVerify for the public key (n, e) with the type-2 PSS parameters."""
    import tink
    from tink import signature
    from tink.proto import common_pb2, rsa_ssa_pss_pb2, tink_pb2

    _register()
    params = rsa_ssa_pss_pb2.RsaSsaPssParams(
        sig_hash=common_pb2.SHA384, mgf1_hash=common_pb2.SHA384, salt_length=_SALT_LENGTH
    )
    key = rsa_ssa_pss_pb2.RsaSsaPssPublicKey(
        version=0, params=params, n=_big_endian(n), e=_big_endian(e)
    )
    key_data = tink_pb2.KeyData(
        type_url=_TYPE_URL,
        value=key.SerializeToString(),
        key_material_type=tink_pb2.KeyData.ASYMMETRIC_PUBLIC,
    )
    keyset = tink_pb2.Keyset(
        primary_key_id=1,
        key=[
            tink_pb2.Keyset.Key(
                key_data=key_data,
                status=tink_pb2.ENABLED,
                key_id=1,
                output_prefix_type=tink_pb2.RAW,  # the authenticator carries no key prefix
            )
        ],
    )
    handle = tink.proto_keyset_format.parse_without_secret(keyset.SerializeToString())
    return handle.primitive(signature.PublicKeyVerify)


def _big_endian(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


__all__ = [
    "BACKEND_AUTO",
    "BACKEND_CRYPTOGRAPHY",
    "BACKEND_ENV",
    "BACKEND_TINK",
    "Verify",
    "requested_backend",
    "tink_verifier",
]
