"""Token types by value: the one place that maps 0x0001, 0x0002, ... to their modules.

Modelled on pyjwt's algorithm registry: :func:`get_default_token_types` builds a fresh
``{value: TokenType}`` of everything this library implements (pyjwt's
``get_default_algorithms``), a :class:`TokenTypeRegistry` holds a set of them, and the
module-level functions work on the default registry that settings, discovery, the command
line and the issuer tools consult (pyjwt's ``jwt.register_algorithm``)::

    from pat_middleware.tokens.registry import register_token_type
    register_token_type(MyTokenType())          # a TokenType subclass, new value

The core never imports this: keys reach it through the
:class:`~pat_middleware.core.keys.TokenKey` protocol.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from ..core.keys import PublishedKey
from ..core.wire import GREASE_TOKEN_TYPES
from ..errors import DecodeError
from .base import TokenType
from .blind_rsa import BlindRSATokenType
from .voprf import VOPRFTokenType


def get_default_token_types() -> dict[int, TokenType]:
    """Every token type this library implements, by value: a new dict on each call."""
    return {
        VOPRFTokenType.value: VOPRFTokenType(),
        BlindRSATokenType.value: BlindRSATokenType(),
    }


class TokenTypeRegistry:
    """A set of :class:`TokenType` entries by value. Not a hot path: consulted when keys
    are loaded (start-up, directory refreshes, the command line), never per request."""

    __slots__ = ("_types",)

    def __init__(self, types: Mapping[int, TokenType] | None = None) -> None:
        self._types: dict[int, TokenType] = {}
        for entry in (get_default_token_types() if types is None else types).values():
            self.register(entry)

    def __repr__(self) -> str:
        return f"TokenTypeRegistry({sorted(self._types)})"

    def register(self, entry: TokenType) -> None:
        """Add a token type. Raises ``TypeError`` for something that is not a
        :class:`TokenType` and ``ValueError`` for a value already registered or reserved
        for grease (as pyjwt's ``register_algorithm``)."""
        if not isinstance(entry, TokenType):
            raise TypeError("a token type must be a TokenType instance")
        if not 0 <= entry.value <= 0xFFFF or entry.value in GREASE_TOKEN_TYPES:
            raise ValueError(f"0x{entry.value:04x} is not a usable token type value")
        if entry.value in self._types:
            raise ValueError(f"token type 0x{entry.value:04x} is already registered")
        self._types[entry.value] = entry

    def unregister(self, value: int) -> None:
        """Remove a token type (``ValueError`` when it is not registered)."""
        if value not in self._types:
            raise ValueError(f"token type 0x{value:04x} is not registered")
        del self._types[value]

    def get(self, value: int) -> TokenType | None:
        return self._types.get(value)

    def __getitem__(self, value: int) -> TokenType:
        """The entry for ``value``; :class:`DecodeError` naming the known types if none."""
        entry = self._types.get(value)
        if entry is None:
            raise DecodeError(f"token type {value} is not registered; known: {self.describe()}")
        return entry

    def __contains__(self, value: object) -> bool:
        return value in self._types

    def __iter__(self) -> Iterator[TokenType]:
        return iter([self._types[value] for value in sorted(self._types)])

    def __len__(self) -> int:
        return len(self._types)

    def values(self) -> frozenset[int]:
        return frozenset(self._types)

    def describe(self) -> str:
        """``1 (VOPRF (P-384, SHA-384)), 2 (Blind RSA (2048-bit))``, for messages."""
        return ", ".join(f"{entry.value} ({entry.name})" for entry in self)

    def name(self, value: int) -> str:
        """The name of a token type value, ``grease (reserved)`` or ``unknown``."""
        if value in GREASE_TOKEN_TYPES:
            return "grease (reserved)"
        entry = self._types.get(value)
        return entry.name if entry is not None else "unknown"

    def load_public_key(
        self, token_type: int, published: bytes, *, allow_4096: bool = False
    ) -> PublishedKey:
        """A published key of ``token_type`` from its exact bytes."""
        return self[token_type].load_public_key(published, allow_4096=allow_4096)

    def private_key_type(self, key: PrivateKeyTypes) -> TokenType | None:
        """The token type whose issuer keys look like ``key``, if any."""
        return next((entry for entry in self if entry.owns_private_key(key)), None)


_default = TokenTypeRegistry()


def default_registry() -> TokenTypeRegistry:
    """The registry settings, discovery, the command line and the issuer tools use."""
    return _default


def register_token_type(entry: TokenType) -> None:
    """Add a token type to the default registry (see :meth:`TokenTypeRegistry.register`)."""
    _default.register(entry)


def unregister_token_type(value: int) -> None:
    """Remove a token type from the default registry."""
    _default.unregister(value)


def get_token_type(value: int) -> TokenType | None:
    """The default registry's entry for ``value``, or None."""
    return _default.get(value)


__all__ = [
    "TokenType",
    "TokenTypeRegistry",
    "default_registry",
    "get_default_token_types",
    "get_token_type",
    "register_token_type",
    "unregister_token_type",
]
