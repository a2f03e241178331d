"""The precomputed-pad HMAC-SHA256 gives exactly what the standard library gives."""

from __future__ import annotations

import hmac

from hypothesis import given
from hypothesis import strategies as st

from pat_middleware.core.hmac import HmacSha256


@given(st.binary(max_size=200), st.binary(max_size=300))
def test_equals_hmac_digest(key: bytes, message: bytes) -> None:
    mac = HmacSha256(key)
    assert mac.digest(message) == hmac.digest(key, message, "sha256")
    assert mac.digest(message) == mac.digest(message), "the kept states are not consumed"


def test_rfc_4231_case_2() -> None:
    mac = HmacSha256(b"Jefe")
    assert mac.digest(b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_repr_hides_the_key() -> None:
    assert repr(HmacSha256(b"secret-key")) == "HmacSha256(<key hidden>)"
