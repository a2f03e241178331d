"""The token-type registry (pyjwt's algorithm registry, for Privacy Pass token types)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from pat_middleware.core.keys import PublishedKey, TokenKey
from pat_middleware.core.wire import TOKEN_TYPE_BLIND_RSA, TOKEN_TYPE_VOPRF
from pat_middleware.errors import DecodeError
from pat_middleware.tokens.base import TokenType
from pat_middleware.tokens.blind_rsa import BlindRSATokenType, IssuerKey
from pat_middleware.tokens.registry import (
    TokenTypeRegistry,
    default_registry,
    get_default_token_types,
    get_token_type,
)
from pat_middleware.tokens.voprf import VOPRFPublicKey, VOPRFTokenKey, VOPRFTokenType


class _Toy(TokenType):
    """A token type that exists only here: what a new module would provide."""

    value = 0x7777
    name = "toy"
    nk = 4
    publicly_verifiable = True

    def load_public_key(self, published: bytes, *, allow_4096: bool = False) -> PublishedKey:
        raise DecodeError("toy keys do not load")

    def generate_private_key(self, size: int | None = None) -> PrivateKeyTypes:
        raise NotImplementedError

    def published_key_of(self, private_key: PrivateKeyTypes) -> PublishedKey:
        raise NotImplementedError


def test_defaults_are_types_1_and_2_each_call_a_new_dict() -> None:
    first = get_default_token_types()
    assert sorted(first) == [TOKEN_TYPE_VOPRF, TOKEN_TYPE_BLIND_RSA]
    assert isinstance(first[1], VOPRFTokenType) and isinstance(first[2], BlindRSATokenType)
    first.clear()
    assert len(get_default_token_types()) == 2


def test_entries_carry_the_iana_columns() -> None:
    voprf, blind_rsa = get_default_token_types()[1], get_default_token_types()[2]
    assert (voprf.name, voprf.nk, voprf.token_length, voprf.publicly_verifiable) == (
        "VOPRF (P-384, SHA-384)",
        48,
        146,
        False,
    )
    assert (blind_rsa.name, blind_rsa.nk, blind_rsa.token_length) == (
        "Blind RSA (2048-bit)",
        256,
        354,
    )
    assert blind_rsa.publicly_verifiable
    assert repr(voprf) == "<TokenType 0x0001 VOPRF (P-384, SHA-384)>"


def test_register_and_unregister_like_pyjwt() -> None:
    registry = TokenTypeRegistry()
    registry.register(_Toy())
    assert 0x7777 in registry and registry[0x7777].name == "toy"
    assert [entry.value for entry in registry] == [1, 2, 0x7777]
    with pytest.raises(ValueError, match="already registered"):
        registry.register(_Toy())
    with pytest.raises(TypeError):
        registry.register(object())  # type: ignore[arg-type]
    registry.unregister(0x7777)
    assert 0x7777 not in registry
    with pytest.raises(ValueError, match="not registered"):
        registry.unregister(0x7777)
    assert get_token_type(0x7777) is None  # the default registry never saw it


def test_grease_values_cannot_be_registered() -> None:
    toy = _Toy()
    toy.value = 0x0000
    with pytest.raises(ValueError, match="not a usable"):
        TokenTypeRegistry({}).register(toy)


def test_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(DecodeError, match=r"known: 1 \(VOPRF .*\), 2 \(Blind RSA"):
        default_registry()[3]
    assert default_registry().name(0x5A63) == "grease (reserved)"
    assert default_registry().name(3) == "unknown"
    assert default_registry().name(1) == "VOPRF (P-384, SHA-384)"


def test_public_keys_load_by_type(issuer_key: IssuerKey) -> None:
    registry = default_registry()
    loaded = registry.load_public_key(2, issuer_key.published)
    assert isinstance(loaded, TokenKey) and loaded == issuer_key
    secret = VOPRFTokenKey.generate()
    public = registry.load_public_key(1, secret.published)
    assert isinstance(public, VOPRFPublicKey) and public == secret.public
    assert not isinstance(public, TokenKey)  # a type-1 public key verifies nothing
    with pytest.raises(DecodeError):
        registry.load_public_key(1, issuer_key.published)
    with pytest.raises(DecodeError):
        registry.load_public_key(2, secret.published)


def test_private_keys_are_told_apart(rsa_2048: rsa.RSAPrivateKey) -> None:
    registry = default_registry()
    p384 = ec.generate_private_key(ec.SECP384R1())
    assert registry.private_key_type(rsa_2048) is registry[2]
    assert registry.private_key_type(p384) is registry[1]
    assert registry.private_key_type(ec.generate_private_key(ec.SECP256R1())) is None
    assert registry[1].published_key_of(p384).token_key_id == (
        VOPRFTokenKey.from_private_key(p384).token_key_id
    )
    assert registry[2].published_key_of(rsa_2048).token_type == 2


def test_type_2_has_no_origin_private_key_loader(rsa_2048: rsa.RSAPrivateKey) -> None:
    with pytest.raises(DecodeError, match="public key; an origin never needs its private key"):
        default_registry()[2].load_private_key(b"-----BEGIN PRIVATE KEY-----")


def test_generated_keys_have_the_type_s_shape() -> None:
    registry = default_registry()
    assert isinstance(registry[1].generate_private_key(), ec.EllipticCurvePrivateKey)
    with pytest.raises(ValueError):
        registry[1].generate_private_key(2048)
    with pytest.raises(ValueError):
        registry[2].generate_private_key(3072)
