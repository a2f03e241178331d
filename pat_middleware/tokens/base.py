"""What a token type module provides: :class:`TokenType`, one registry entry.

Modelled on pyjwt's ``Algorithm``: one small object per token type that knows how to load
that type's keys, and nothing else does. :mod:`.registry` holds the entries by token type
value (pyjwt's ``get_default_algorithms`` / ``register_algorithm``); settings, discovery,
the command line and the issuer tools ask it, so a new token type is one module defining
its keys and a :class:`TokenType`, plus one line in
:func:`~pat_middleware.tokens.registry.get_default_token_types`.
"""

from __future__ import annotations

import abc

from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from ..core.codec import b64_decode
from ..core.keys import PublishedKey, TokenKey
from ..core.wire import AUTHENTICATOR_INPUT_LENGTH
from ..errors import DecodeError

#: Bound on a ``token-key`` as text (base64 of a 4096-bit PSS SPKI is 800 characters).
MAX_TOKEN_KEY_TEXT = 2048


class TokenType(abc.ABC):
    """One Privacy Pass token type (an entry of the IANA "Privacy Pass Token Types").

    Subclasses set the class attributes and implement :meth:`load_public_key`; a type whose
    tokens only the issuer's private key verifies (``publicly_verifiable = False``) also
    implements :meth:`load_private_key`, which gives the :class:`TokenKey` an origin holding
    that secret verifies with. Every loader raises :class:`DecodeError` for bad input.
    """

    #: The token type value (u16).
    value: int
    #: The IANA name, e.g. ``"Blind RSA (2048-bit)"``.
    name: str
    #: Nk, the authenticator length (a key may set its own, e.g. 4096-bit RSA).
    nk: int
    #: IANA "Publicly Verifiable": the published key alone verifies a token.
    publicly_verifiable: bool

    def __repr__(self) -> str:
        return f"<TokenType 0x{self.value:04x} {self.name}>"

    @property
    def token_length(self) -> int:
        """98 + Nk: the length of a token of this type (under a key of the default Nk)."""
        return AUTHENTICATOR_INPUT_LENGTH + self.nk

    # -- published keys ------------------------------------------------------------------

    @abc.abstractmethod
    def load_public_key(self, published: bytes, *, allow_4096: bool = False) -> PublishedKey:
        """The key from its exact published bytes (``token-key``, directory entry). For a
        publicly verifiable type the result is a :class:`TokenKey`. ``allow_4096`` is the
        type-2 opt-in for legacy key sizes; other types ignore it."""

    def load_public_key_text(self, text: str | bytes, *, allow_4096: bool = False) -> PublishedKey:
        """The key from ``token-key`` text: base64url or base64, padded or not."""
        return self.load_public_key(
            b64_decode(text, max_length=MAX_TOKEN_KEY_TEXT), allow_4096=allow_4096
        )

    # -- private keys --------------------------------------------------------------------

    def owns_private_key(self, key: PrivateKeyTypes) -> bool:
        """True when ``key`` (a loaded ``cryptography`` private key) is an issuer key of
        this token type."""
        return False

    def load_private_key(self, pem: bytes) -> TokenKey:
        """The verifying key from the issuer's private key (unencrypted PKCS#8 PEM), for
        types an origin verifies with the issuer's secret."""
        raise DecodeError(
            f"token type {self.value} ({self.name}) is verified with the issuer's public "
            "key; an origin never needs its private key"
        )

    @abc.abstractmethod
    def generate_private_key(self, size: int | None = None) -> PrivateKeyTypes:
        """A new issuer private key (``size``: a key size where the type has several)."""

    @abc.abstractmethod
    def published_key_of(self, private_key: PrivateKeyTypes) -> PublishedKey:
        """The published form of an issuer private key of this type."""


__all__ = ["MAX_TOKEN_KEY_TEXT", "TokenType"]
