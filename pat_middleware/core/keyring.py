"""The keys an origin accepts, looked up by ``token_key_id`` (RFC 9577 §2.2.2 step "key").

A :class:`KeyRing` holds :class:`TrustedKey` entries: an issuer name and a
:class:`~pat_middleware.core.keys.TokenKey` of any token type. The token types a ring can
verify are the types of its keys; :func:`~pat_middleware.core.verify.verify_token` refuses
every other type as unsupported.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .keys import TokenKey


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """An issuer key the origin accepts, tied to the issuer name its challenges carry."""

    issuer_name: str
    key: TokenKey


#: (token_key_id, its entries, its entries by token type)
_Group = tuple[bytes, tuple[TrustedKey, ...], dict[int, tuple[TrustedKey, ...]]]


def _by_type(group: tuple[TrustedKey, ...]) -> dict[int, tuple[TrustedKey, ...]]:
    by_type: dict[int, tuple[TrustedKey, ...]] = {}
    for entry in group:
        by_type[entry.key.token_type] = (*by_type.get(entry.key.token_type, ()), entry)
    return by_type


class KeyRing:
    """The keys an origin currently accepts, looked up by ``token_key_id``.

    One key may be trusted for several issuers (two directories may list it); each
    (issuer, key) pair is held once. Lookup is one dict lookup by the id: a key id is the
    hash of a published (public) key, so the time a lookup takes tells nothing secret.
    """

    __slots__ = ("_by_id", "_entries", "_groups", "_types")

    def __init__(self, entries: Iterable[TrustedKey] = ()) -> None:
        self._entries: tuple[TrustedKey, ...] = ()
        # Per token_key_id: every entry with it, and those entries by token type. Built
        # when the ring changes, never per lookup.
        self._groups: tuple[_Group, ...] = ()
        self._by_id: dict[bytes, _Group] = {}
        self._types: frozenset[int] = frozenset()
        for entry in entries:
            self.add(entry)

    def add(self, entry: TrustedKey) -> None:
        name = entry.issuer_name.lower()
        if any(
            e.key.token_key_id == entry.key.token_key_id and e.issuer_name.lower() == name
            for e in self._entries
        ):
            return
        self._entries = (*self._entries, entry)
        by_id: dict[bytes, tuple[TrustedKey, ...]] = {}
        for e in self._entries:
            by_id[e.key.token_key_id] = (*by_id.get(e.key.token_key_id, ()), e)
        self._groups = tuple((key_id, group, _by_type(group)) for key_id, group in by_id.items())
        self._by_id = {group[0]: group for group in self._groups}
        self._types = frozenset(e.key.token_type for e in self._entries)

    @property
    def token_types(self) -> frozenset[int]:
        """The token types this ring's keys verify."""
        return self._types

    def find(self, token_key_id: bytes) -> TrustedKey | None:
        """The first entry with this key id."""
        found = self.find_all(token_key_id)
        return found[0] if found else None

    def find_all(
        self, token_key_id: bytes, token_type: int | None = None
    ) -> tuple[TrustedKey, ...]:
        """Every entry with this key id (one per issuer trusting the key), in the order
        added; with ``token_type``, only the entries for that token type."""
        if type(token_key_id) is not bytes:
            # Bytes-like in, as before; memoryview refuses an int (bytes(32) would be 32
            # zero bytes) and a list of ints, as the comparison it replaces did.
            token_key_id = bytes(memoryview(token_key_id))
        found = self._by_id.get(token_key_id)
        if found is None:
            return ()
        return found[1] if token_type is None else found[2].get(token_type, ())

    def __iter__(self) -> Iterator[TrustedKey]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"KeyRing({len(self._entries)} keys)"


__all__ = ["KeyRing", "TrustedKey"]
