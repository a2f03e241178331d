"""The ``issuers`` setting: each entry's name, keys and directory, keys read through the
token-type registry (:mod:`pat_middleware.tokens.registry`).

Published keys (``token_key``, ``token_keys``, ``token_key_file``) are the issuer's public
keys of a publicly verifiable type (type 2). A privately verifiable type (type 1) is checked
with the issuer's private key, which a joint origin-and-issuer deployment gives as
``private_key_file`` (a PEM file) or ``private_key_env`` (an environment variable holding
the PEM); it is read once, here, and shown nowhere. A private key where a public one is
expected is refused, with where it belongs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from ..core.directory import DIRECTORY_PATH, LEGACY_DIRECTORY_PATH
from ..core.keys import TokenKey
from ..core.wire import TokenChallenge
from ..errors import DecodeError
from ..tokens.base import TokenType
from ..tokens.registry import TokenTypeRegistry, default_registry
from .checks import Fail, fetch_url, has_valid_port, read_limited, split_url, table
from .model import IssuerConfig, field_default

ISSUER_KEYS = frozenset(
    {
        "name", "token_key", "token_keys", "token_key_file", "private_key_file",
        "private_key_env", "allow_4096", "directory", "discover",
    }
)  # fmt: skip
#: Keys an issuer entry needs at least one of.
_KEY_SOURCES = (
    "token_key, token_keys, token_key_file, private_key_file, private_key_env, directory "
    "or discover = true"
)
#: A private key's PEM marker (PKCS#8 "PRIVATE KEY", SEC1 "EC PRIVATE KEY", PKCS#1 ...).
_PRIVATE_PEM = "PRIVATE KEY-----"
_MAX_KEY_FILE = 16 * 1024


class IssuerEntries:
    """Reads the ``issuers`` list. ``fail(setting, message)`` makes the error to raise;
    relative paths are taken from ``base_dir``."""

    def __init__(
        self, fail: Fail, base_dir: Path, registry: TokenTypeRegistry | None = None
    ) -> None:
        self.fail = fail
        self.base_dir = base_dir
        self.registry = registry if registry is not None else default_registry()

    def read(
        self,
        raw: object,
        *,
        origin_info: tuple[str, ...],
        development: bool,
        token_types: frozenset[int],
    ) -> tuple[IssuerConfig, ...]:
        if not isinstance(raw, list | tuple) or not raw:
            raise self.fail(
                "issuers", "at least one issuer (name and token_key) is required, or pst_issuers"
            )
        out = tuple(
            self.entry(entry, f"issuers[{i}]", origin_info, development, token_types)
            for i, entry in enumerate(raw)
        )
        names = [i.name.lower() for i in out]
        if len(set(names)) != len(names):
            raise self.fail("issuers", "each issuer name may appear once")
        key_ids = [k.token_key_id for i in out for k in i.keys]
        if len(set(key_ids)) != len(key_ids):
            raise self.fail("issuers", "the same token key is configured twice")
        held = {k.token_type for i in out for k in i.keys}
        for value in sorted(token_types):
            entry = self.registry[value]
            if not entry.publicly_verifiable and value not in held:
                raise self.fail(
                    "token_types",
                    f"token type {value} ({entry.name}) is verified with the issuer's private "
                    "key: give it to an issuer as private_key_file or private_key_env, or "
                    f"leave {value} out of token_types",
                )
        return out

    def entry(
        self,
        entry: object,
        where: str,
        origin_info: tuple[str, ...],
        development: bool,
        token_types: frozenset[int],
    ) -> IssuerConfig:
        entry = table(entry, where, ISSUER_KEYS, "name and token_key", self.fail)
        name = entry.get("name")
        if not isinstance(name, str):
            raise self.fail(f"{where}.name", "expected the issuer name (host[:port])")
        try:
            TokenChallenge(min(token_types), name, b"", origin_info)
        except DecodeError as e:
            raise self.fail(f"{where}.name", str(e)) from e
        allow_4096 = entry.get("allow_4096", field_default(IssuerConfig, "allow_4096"))
        if not isinstance(allow_4096, bool):
            raise self.fail(f"{where}.allow_4096", "expected true or false")
        keys = [
            self.published_key(setting, text, allow_4096, token_types)
            for setting, text in self.published_texts(entry, where)
        ]
        keys += self.private_keys(entry, where, token_types)
        urls, directory_setting = self.directory_urls(entry, where, name, development)
        if not keys and not urls:
            raise self.fail(f"{where}.token_key", f"expected {_KEY_SOURCES}")
        return IssuerConfig(
            name=name,
            keys=tuple(keys),
            directory_urls=urls,
            allow_4096=allow_4096,
            directory_setting=directory_setting,
            token_types=token_types,
        )

    # -- published keys ----------------------------------------------------------------

    def published_texts(self, entry: Mapping[str, Any], where: str) -> list[tuple[str, Any]]:
        texts: list[tuple[str, Any]] = []
        if "token_key" in entry:
            texts.append((f"{where}.token_key", entry["token_key"]))
        extra = entry.get("token_keys", [])
        if not isinstance(extra, list | tuple):
            raise self.fail(f"{where}.token_keys", "expected a list of token-key strings")
        texts.extend((f"{where}.token_keys[{j}]", text) for j, text in enumerate(extra))
        if "token_key_file" in entry:
            setting = f"{where}.token_key_file"
            texts.append((setting, self.read_file(entry["token_key_file"], setting)))
        return texts

    def published_key(
        self, setting: str, text: Any, allow_4096: bool, token_types: frozenset[int]
    ) -> TokenKey:
        """A public key that verifies tokens, from ``token-key`` text (or a PEM public key),
        of whichever registered type it parses as (the accepted types tried first)."""
        if not isinstance(text, str):
            raise self.fail(setting, "expected a base64url token-key string")
        if _PRIVATE_PEM in text:
            raise self.fail(setting, self.private_key_misplaced(text))
        order = sorted(self.registry, key=lambda e: (e.value not in token_types, e.value))
        problems: list[str] = []
        for token_type in order:
            try:
                key = token_type.load_public_key_text(text, allow_4096=allow_4096)
            except DecodeError as e:
                problems.append(f"as type {token_type.value} ({token_type.name}): {e}")
                continue
            if not isinstance(key, TokenKey):
                raise self.fail(
                    setting,
                    f"a type-{token_type.value} ({token_type.name}) public key: tokens of "
                    "that type verify only with the issuer's private key; give it as "
                    "private_key_file or private_key_env",
                )
            if key.token_type not in token_types:
                raise self.fail(setting, _unlisted(key.token_type))
            return key
        raise self.fail(setting, "not a valid token-key: " + "; ".join(problems))

    def private_key_misplaced(self, pem: str) -> str:
        """Why a private key may not stand where a published key is expected."""
        entry = self._private_key_type(pem)
        if entry is None:
            return (
                "holds a private key where the issuer's public token-key is expected "
                "(base64url, or a PEM PUBLIC KEY for type 2)"
            )
        if entry.publicly_verifiable:
            return (
                f"holds a type-{entry.value} ({entry.name}) private key; an origin needs only "
                f"the issuer's type-{entry.value} public key: give its token-key (or PEM "
                "PUBLIC KEY) and keep the private key with the issuer"
            )
        return (
            f"holds a type-{entry.value} ({entry.name}) private key: give it as "
            "private_key_file or private_key_env (token_key settings hold published keys)"
        )

    def _private_key_type(self, pem: str) -> TokenType | None:
        try:
            loaded = serialization.load_pem_private_key(pem.encode("ascii", "replace"), None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            return None
        return self.registry.private_key_type(loaded)

    # -- private keys ------------------------------------------------------------------

    def private_keys(
        self, entry: Mapping[str, Any], where: str, token_types: frozenset[int]
    ) -> list[TokenKey]:
        """The issuer's private keys (types an origin verifies with the issuer's secret)."""
        sources: list[tuple[str, str]] = []
        if "private_key_file" in entry:
            setting = f"{where}.private_key_file"
            sources.append((setting, self.read_file(entry["private_key_file"], setting)))
        if "private_key_env" in entry:
            setting = f"{where}.private_key_env"
            var = entry["private_key_env"]
            if not isinstance(var, str) or not var:
                raise self.fail(setting, "expected the name of an environment variable")
            value = os.environ.get(var)
            if value is None:
                raise self.fail(setting, f"environment variable {var!r} is not set")
            sources.append((setting, value))
        return [self.private_key(setting, pem, token_types) for setting, pem in sources]

    def private_key(self, setting: str, pem: str, token_types: frozenset[int]) -> TokenKey:
        entry = self._private_key_type(pem)
        if entry is None:
            # The text is never echoed: it may be a secret in the wrong format.
            raise self.fail(
                setting,
                "expected an unencrypted PEM private key (PKCS#8) of a token type whose "
                f"tokens the issuer's private key verifies; registered: {self.registry.describe()}",
            )
        if entry.publicly_verifiable:
            raise self.fail(
                setting,
                f"a type-{entry.value} ({entry.name}) private key: type {entry.value} is "
                "verified with the issuer's public key; give its token-key instead and keep "
                "the private key with the issuer",
            )
        if entry.value not in token_types:
            raise self.fail(setting, _unlisted(entry.value))
        try:
            return entry.load_private_key(pem.encode("ascii", "replace"))
        except DecodeError as e:
            raise self.fail(setting, str(e)) from None

    def read_file(self, value: Any, setting: str) -> str:
        path, data = read_limited(value, setting, self.base_dir, _MAX_KEY_FILE, self.fail)
        if len(data) > _MAX_KEY_FILE:
            raise self.fail(setting, f"{path} is larger than any key file")
        try:
            return data.decode("ascii").strip()
        except UnicodeError:
            raise self.fail(setting, f"{path} is not a key file (not ASCII text)") from None

    # -- directories -------------------------------------------------------------------

    def directory_urls(
        self, entry: Mapping[str, Any], where: str, name: str, development: bool
    ) -> tuple[tuple[str, ...], str]:
        """The directory URLs to try for one issuer, and the setting that gave them."""
        discover = entry.get("discover", False)
        if not isinstance(discover, bool):
            raise self.fail(f"{where}.discover", "expected true or false")
        if "directory" not in entry:
            if not discover:
                return (), ""
            origin = "https://" + name
            parts = split_url(origin)
            if (
                parts is None
                or not parts.hostname
                or parts.netloc != name
                or not has_valid_port(parts)
            ):
                raise self.fail(
                    f"{where}.discover",
                    f"needs a name that is host[:port] to find the directory, not {name!r}; "
                    "give directory = URL instead",
                )
            return (origin + DIRECTORY_PATH, origin + LEGACY_DIRECTORY_PATH), f"{where}.discover"
        setting = f"{where}.directory"
        if discover:
            raise self.fail(setting, "give directory or discover = true, not both")
        url, parts = fetch_url(entry["directory"], setting, self.fail, development=development)
        if parts.path in ("", "/") and not parts.query:
            origin = f"{parts.scheme}://{parts.netloc}"
            return (origin + DIRECTORY_PATH, origin + LEGACY_DIRECTORY_PATH), setting
        return (url,), setting


def _unlisted(token_type: int) -> str:
    return f"a type-{token_type} key, but token_types does not list {token_type}"


__all__ = ["ISSUER_KEYS", "IssuerEntries"]
