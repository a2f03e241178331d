"""What the core needs of an issuer key, whatever its token type: the seam between the
sans-IO verification in :mod:`.verify` and the algorithms in :mod:`pat_middleware.tokens`.

Two protocols. :class:`PublishedKey` is a key as an issuer publishes it (``token-key`` in a
challenge, an entry of the issuer directory): enough to name it, to look it up by
``token_key_id`` and to size a token. :class:`TokenKey` adds :meth:`TokenKey.verify`, the
authenticator check: a public key for publicly verifiable types (type 2, Blind RSA), the
issuer's private key for privately verifiable ones (type 1, VOPRF). Only a :class:`TokenKey`
goes into a :class:`~pat_middleware.core.keyring.KeyRing`.

The core defines these shapes and never builds a key: :mod:`pat_middleware.tokens.registry`
maps each token type to the module that loads its keys.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class PublishedKey(Protocol):
    """An issuer key as published (RFC 9577 §2.1.2 ``token-key``, RFC 9578 §4 directory)."""

    @property
    def token_type(self) -> int:
        """The token type this key makes tokens of (0x0001, 0x0002, ...)."""
        ...

    @property
    def token_key_id(self) -> bytes:
        """SHA-256 of :attr:`published`, exactly those bytes (RFC 9578 §5.5, §6.5)."""
        ...

    @property
    def published(self) -> bytes:
        """The key's bytes exactly as the issuer publishes them (never a re-encoding)."""
        ...

    @property
    def token_key(self) -> str:
        """:attr:`published` as padded base64url, for a ``token-key`` parameter."""
        ...

    @property
    def authenticator_length(self) -> int:
        """Nk: the length of a token's authenticator under this key."""
        ...

    @property
    def token_length(self) -> int:
        """The length of a whole token under this key: 98 + Nk."""
        ...


@runtime_checkable
class TokenKey(PublishedKey, Protocol):
    """A key that can check a token's authenticator. Built once, at start-up, and reused
    for every verification; ``repr`` shows no secret."""

    def verify(self, token_input: bytes, authenticator: bytes) -> bool:
        """True when ``authenticator`` is valid for the 98-byte ``token_input``
        (``token_type || nonce || challenge_digest || token_key_id``). Never raises for
        bad input: a wrong length is simply False. Compares secrets in constant time."""
        ...


__all__ = ["PublishedKey", "TokenKey"]
