"""Django integration: settings, middleware, view decorator and system checks.

Add ``"pat_middleware.contrib.django"`` to ``INSTALLED_APPS`` (system checks) and
``"pat_middleware.contrib.django.middleware.PrivateTokenMiddleware"`` to ``MIDDLEWARE``.
Configure ``PAT_MIDDLEWARE``: a dict with the keys of the TOML settings file, or
``{"settings_file": path}`` (relative paths resolve against ``BASE_DIR`` when it is set).

``PAT_MIDDLEWARE`` is read on every request and the policy rebuilt when it changes, so
``override_settings`` works; a rebuilt policy starts a new in-memory replay store.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike, fspath
from pathlib import Path

from django.conf import settings as django_settings

from ...errors import ConfigurationError
from ...policy import Policy
from ...settings import Settings, load_settings

#: The Django setting holding pat-middleware's settings.
SETTING = "PAT_MIDDLEWARE"
#: The ``PAT_MIDDLEWARE`` key naming a TOML settings file instead of inline settings.
SETTINGS_FILE_KEY = "settings_file"

_MISSING = object()


def _base_dir() -> Path:
    base = getattr(django_settings, "BASE_DIR", None)
    return Path(base) if isinstance(base, str | PathLike) else Path.cwd()


def read_settings(raw: object = _MISSING) -> Settings:
    """Validated :class:`Settings` from ``PAT_MIDDLEWARE`` (or ``raw``, a value for it)."""
    if raw is _MISSING:
        raw = getattr(django_settings, SETTING, _MISSING)
    if raw is _MISSING:
        raise ConfigurationError(SETTING, "is not set")
    if not isinstance(raw, Mapping):
        raise ConfigurationError(SETTING, "expected a dict of settings or {'settings_file': path}")
    if SETTINGS_FILE_KEY not in raw:
        return Settings.from_mapping(raw, base_dir=_base_dir(), source=f"settings.{SETTING}")
    if len(raw) > 1:
        raise ConfigurationError(SETTINGS_FILE_KEY, "give settings_file alone, or inline settings")
    path = raw[SETTINGS_FILE_KEY]
    if not isinstance(path, str | PathLike):
        raise ConfigurationError(SETTINGS_FILE_KEY, "expected a file path")
    file = Path(fspath(path))
    try:
        return load_settings(file if file.is_absolute() else _base_dir() / file)
    except ConfigurationError as e:
        if e.setting == "PAT_SETTINGS":  # load_settings names the environment variable
            raise ConfigurationError(SETTINGS_FILE_KEY, e.message) from e
        raise


@dataclass(frozen=True, slots=True)
class _Entry:
    raw: object  # the PAT_MIDDLEWARE object the policy was built from
    snapshot: object  # a deep copy, so changes made in place are noticed too
    policy: Policy


class _PolicyCache:
    """One policy for the current ``PAT_MIDDLEWARE``, rebuilt when the setting changes."""

    def __init__(self) -> None:
        self._entry: _Entry | None = None
        self._lock = threading.Lock()

    def _current(self, raw: object) -> Policy | None:
        entry = self._entry
        if entry is not None and entry.raw is raw and entry.snapshot == raw:
            return entry.policy
        return None

    def get(self) -> Policy:
        raw = getattr(django_settings, SETTING, _MISSING)
        policy = self._current(raw)
        if policy is not None:
            return policy
        with self._lock:  # one build, so concurrent requests share one replay store
            policy = self._current(raw)
            if policy is None:
                policy = Policy(read_settings(raw))
                self._entry = _Entry(raw, copy.deepcopy(raw), policy)
            return policy


_cache = _PolicyCache()


def get_policy() -> Policy:
    """The :class:`Policy` for the current ``PAT_MIDDLEWARE`` (built once per value)."""
    return _cache.get()


__all__ = ["SETTING", "SETTINGS_FILE_KEY", "get_policy", "read_settings"]
