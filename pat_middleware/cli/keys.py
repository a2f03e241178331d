"""``pat-middleware keygen`` and the issuer keys ``issuer --key`` reads, of any token type
(through the token-type registry)."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..core.wire import TOKEN_TYPE_BLIND_RSA
from ..tokens.registry import default_registry
from .common import EXIT_OK, UsageError, read_private_key

if TYPE_CHECKING:
    from ..issuer import SigningKey

#: What keygen prints before the token-key, per token type (the encoding published).
_PUBLISHED_AS = {
    1: "base64url, 49-byte compressed P-384 point",
    2: "base64url RSASSA-PSS SPKI",
}


def cmd_keygen(args: argparse.Namespace) -> int:
    registry = default_registry()
    entry = registry.get(args.token_type)
    if entry is None:
        raise UsageError(f"--token-type: not a registered type ({registry.describe()})")
    if args.bits is not None and args.token_type != TOKEN_TYPE_BLIND_RSA:
        raise UsageError(f"--bits applies to type-2 keys only; a type-{entry.value} key has none")
    out = Path(args.out)
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists; pass --force to overwrite")
    try:
        private = entry.generate_private_key(args.bits)
    except (ValueError, NotImplementedError) as e:
        raise UsageError(f"--token-type {entry.value}: {e}") from e
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(out, 0o600)  # an existing file (--force) keeps its mode through os.open
    key = entry.published_key_of(private)
    size = f"RSA-{private.key_size} " if isinstance(private, rsa.RSAPrivateKey) else ""
    print(f"wrote {size}issuer private key, token type {entry.value} ({entry.name}), to {out}")
    print("  (mode 0600; keep it secret)")
    print(f"token_key_id: {key.token_key_id.hex()}")
    print(f"token-key ({_PUBLISHED_AS.get(entry.value, 'base64url')}):")
    print(key.token_key)
    return EXIT_OK


def split_not_before(spec: str, now: int) -> tuple[str, int | None]:
    """``FILE``, ``FILE:UNIX_SECONDS`` or ``FILE:+SECONDS`` (from now) -> (file, not-before)."""
    path, sep, suffix = spec.rpartition(":")
    digits = suffix.removeprefix("+")  # one sign: int("++5") raises
    if not sep or not (digits.isascii() and digits.isdigit()) or len(suffix) > 12:
        return spec, None
    return path, now + int(suffix) if suffix.startswith("+") else int(suffix)


def load_private_keys(specs: Sequence[str]) -> list[SigningKey]:
    """Issuer keys from ``--key FILE[:NOT_BEFORE]`` (RSA for type 2, EC P-384 for type 1),
    newest not-before first (the directory order: clients use the first key whose not-before
    has passed)."""
    from ..issuer import SigningKey

    now = int(time.time())
    keys: list[SigningKey] = []
    for spec in specs:
        path, not_before = split_not_before(spec, now)
        _, key, _ = read_private_key(path, "--key")
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise UsageError(f"--key {path}: not an RSA (type 2) or EC P-384 (type 1) key")
        keys.append(SigningKey(key, not_before))
    keys.sort(key=lambda k: -1 if k.not_before is None else k.not_before, reverse=True)
    return keys


__all__ = ["cmd_keygen", "load_private_keys", "split_not_before"]
