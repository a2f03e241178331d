"""What every ``pat-middleware`` command shares: exit codes, the usage error, argument types,
and reading issuer private keys through the token-type registry."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from ..core.codec import b64_decode
from ..errors import DecodeError, UsageError
from ..tokens.base import TokenType
from ..tokens.registry import default_registry

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
#: Bound on a PEM key file read from the command line.
MAX_KEY_FILE = 16 * 1024


def type_name(token_type: int) -> str:
    """The registered name of a token type, ``grease (reserved)`` or ``unknown``."""
    return default_registry().name(token_type)


def decode_arg(value: str, flag: str) -> bytes:
    """A base64(url) argument, or a usage error naming ``flag``."""
    try:
        return b64_decode(value, max_length=8192)
    except DecodeError as e:
        raise UsageError(f"{flag}: {e}") from e


def read_private_key(path: str, flag: str) -> tuple[TokenType, PrivateKeyTypes, bytes]:
    """An issuer private key file (unencrypted PEM): its token type, the loaded key and the
    file's bytes. Every failure is a usage error naming ``flag`` and the path, never the
    key material."""
    try:
        with Path(path).open("rb") as f:
            data = f.read(MAX_KEY_FILE + 1)
    except OSError as e:
        raise UsageError(f"{flag} {path}: {e.strerror}") from e
    if len(data) > MAX_KEY_FILE:
        raise UsageError(f"{flag} {path}: larger than any key file")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise UsageError(f"{flag} {path}: not an unencrypted PEM private key") from None
    token_type = default_registry().private_key_type(key)
    if token_type is None:
        raise UsageError(
            f"{flag} {path}: not an issuer key of a registered token type "
            f"({default_registry().describe()})"
        )
    return token_type, key, data


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise argparse.ArgumentTypeError(f"expected whole seconds, got {text!r}")
    return int(text)


__all__ = [
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "UsageError",
    "decode_arg",
    "non_negative_int",
    "positive_int",
    "read_private_key",
    "type_name",
]
