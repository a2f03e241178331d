"""Checks the settings readers share (:mod:`.loader`, :mod:`.issuers`, :mod:`.pst`): how an
error names its settings file, a table's keys, a file read at start-up with a size bound, and
the URL of a document fetched and refreshed in the background (an issuer directory, a PST
issuer's JWK Set), refused here so that it cannot fail later in the refresher."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from ..errors import ConfigurationError
from .suggest import unknown

#: ``fail(setting, message)``: the error to raise for a setting.
Fail = Callable[[str, str], ConfigurationError]

_URL_TEXT = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no space
_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def failer(source: str) -> Fail:
    """A ``fail`` whose messages name the settings file ``source`` (when there is one)."""
    where = f" (in {source})" if source else ""

    def fail(setting: str, message: str) -> ConfigurationError:
        return ConfigurationError(setting, message + where)

    return fail


def table(
    entry: object, where: str, keys: Collection[str], expected: str, fail: Fail
) -> Mapping[str, Any]:
    """``entry`` as a table of only ``keys`` (a misspelt key is refused with a suggestion);
    ``expected`` says what the table should hold."""
    if not isinstance(entry, Mapping):
        raise fail(where, f"expected a table with {expected}")
    extra = sorted(set(entry) - set(keys))
    if extra:
        raise fail(f"{where}.{extra[0]}", unknown(extra[0], keys))
    return entry


def read_limited(
    value: object, setting: str, base_dir: Path, limit: int, fail: Fail
) -> tuple[Path, bytes]:
    """A file named by a setting (relative to ``base_dir``): its absolute path, as errors
    name it, and at most ``limit + 1`` bytes of it (more than ``limit`` means too large)."""
    if not isinstance(value, str):
        raise fail(setting, "expected a file path")
    path = Path(os.path.abspath(base_dir / value))
    try:
        with path.open("rb") as f:
            return path, f.read(limit + 1)
    except OSError as e:
        raise fail(setting, f"cannot read {path}: {e.strerror}") from e


def fetch_url(
    value: object, setting: str, fail: Fail, *, development: bool
) -> tuple[str, SplitResult]:
    """A URL a document is fetched from, as settings may give it, and its parts: one the
    refresher can fetch (:func:`fetchable_url`), without user information or a fragment;
    plain http only for loopback hosts or with ``development``."""
    url, parts = fetchable_url(value, setting, fail)
    if "@" in parts.netloc or parts.fragment:
        raise fail(setting, "must not carry user information or a fragment")
    if parts.scheme == "http" and not (development or is_loopback(parts.hostname or "")):
        raise fail(
            setting,
            "plain http is allowed only for loopback hosts or with development = true; use https",
        )
    return url, parts


def fetchable_url(value: object, setting: str, fail: Fail) -> tuple[str, SplitResult]:
    """A URL the refresher can fetch, and its parts: printable ASCII, http(s), a host and a
    valid port. Never echoed: its query may hold an API key."""
    if not isinstance(value, str) or not _URL_TEXT.fullmatch(value):
        raise fail(setting, "expected an http(s) URL")
    parts = split_url(value)
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or not has_valid_port(parts)
    ):
        raise fail(setting, "expected an http(s) URL with a host and a valid port")
    return value, parts


def split_url(url: str) -> SplitResult | None:
    """``urlsplit(url)``, or None where it raises (an unbalanced "[", a bad IP literal)."""
    try:
        return urlsplit(url)
    except ValueError:
        return None


def has_valid_port(parts: SplitResult) -> bool:
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number in range
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
