"""System checks for ``PAT_MIDDLEWARE``. Ids are stable; each one is listed here.

* ``pat_middleware.E001``: ``PAT_MIDDLEWARE`` is not set.
* ``pat_middleware.E002``: ``PAT_MIDDLEWARE`` is invalid (the message names the setting).
* ``pat_middleware.E003``: ``PAT_METRICS`` does not name a metrics hook.
* ``pat_middleware.E004``: ``replay_store`` is a ``django-cache://`` URL naming a cache whose
  ``add`` is not atomic across processes (local-memory, file, database...), or whose
  client hides errors or has no timeouts.
* ``pat_middleware.W001``: ``cookie_secure`` is false while ``DEBUG`` is off.
* ``pat_middleware.W002``: ``development`` is true (random per-process secret) while
  ``DEBUG`` is off.
* ``pat_middleware.W003``: ``protect`` lists paths but ``PrivateTokenMiddleware`` is not in
  ``MIDDLEWARE``, so those paths are not protected.
* ``pat_middleware.W004``: ``PrivateTokenAuthentication`` is in Django REST framework's
  ``DEFAULT_AUTHENTICATION_CLASSES`` but not first: DRF asks only the first class for the
  ``WWW-Authenticate`` of a 401, so a refused token gets a 403 without a challenge.
* ``pat_middleware.E005``: ``REST_FRAMEWORK`` names a class of
  :mod:`pat_middleware.integrations.drf` but ``PrivateTokenMiddleware`` is not in
  ``MIDDLEWARE``: it writes their decisions' cookies on DRF's responses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings as django_settings
from django.core import checks

from ...errors import ConfigurationError
from .middleware import (
    METRICS_SETTING,
    SETTING,
    read_metrics,
    read_settings,
)
from .store import UnsuitableCache

MIDDLEWARE_PATH = "pat_middleware.integrations.django.PrivateTokenMiddleware"
#: Either spelling of the middleware in ``MIDDLEWARE``.
MIDDLEWARE_PATHS = frozenset(
    {MIDDLEWARE_PATH, "pat_middleware.integrations.django.middleware.PrivateTokenMiddleware"}
)


def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Validate ``PAT_MIDDLEWARE`` as the middleware will read it."""
    if not hasattr(django_settings, SETTING):
        return [
            checks.Error(
                f"{SETTING} is not set.",
                hint=f'Set {SETTING} = {{"settings_file": "pat.toml"}} or a dict of settings.',
                id="pat_middleware.E001",
            )
        ]
    try:
        settings = read_settings()
    except UnsuitableCache as e:
        return [
            checks.Error(
                f"{SETTING}: {e}",
                hint="Point replay_store at a cache on Redis or memcached, or use redis://.",
                id="pat_middleware.E004",
            )
        ]
    except ConfigurationError as e:
        return [checks.Error(f"{SETTING} is invalid: {e}", id="pat_middleware.E002")]
    messages: list[checks.CheckMessage] = []
    try:
        read_metrics()
    except ConfigurationError as e:
        messages.append(
            checks.Error(f"{METRICS_SETTING} is invalid: {e.message}", id="pat_middleware.E003")
        )
    if not django_settings.DEBUG and not settings.cookies.secure:
        messages.append(
            checks.Warning(
                f"{SETTING}: cookie_secure is false, so the session cookies travel over "
                "plain HTTP.",
                hint="Remove cookie_secure = false outside local development.",
                id="pat_middleware.W001",
            )
        )
    if not django_settings.DEBUG and settings.development:
        messages.append(
            checks.Warning(
                f"{SETTING}: development is true: the secret is random per process, so "
                "sessions do not survive a restart or cross workers.",
                hint="Set secret, secret_env or secret_file and remove development = true.",
                id="pat_middleware.W002",
            )
        )
    installed = MIDDLEWARE_PATHS.intersection(getattr(django_settings, "MIDDLEWARE", ()))
    if settings.protect and not installed:
        messages.append(
            checks.Warning(
                f"{SETTING}: protect lists paths, but PrivateTokenMiddleware is not in "
                "MIDDLEWARE, so they are not protected.",
                hint=f"Add {MIDDLEWARE_PATH!r} to MIDDLEWARE.",
                id="pat_middleware.W003",
            )
        )
    return messages


DRF_AUTHENTICATION = "pat_middleware.integrations.drf.PrivateTokenAuthentication"
_DRF_MODULE = "pat_middleware.integrations.drf."


def _class_path(entry: object) -> str:
    """A ``REST_FRAMEWORK`` class entry (dotted path or class) as a dotted path."""
    if isinstance(entry, str):
        return entry
    return f"{getattr(entry, '__module__', '')}.{getattr(entry, '__qualname__', '')}"


def check_drf(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """How the Django REST framework classes are installed (W004, E005)."""
    config = getattr(django_settings, "REST_FRAMEWORK", None)
    if not isinstance(config, dict):
        return []
    messages: list[checks.CheckMessage] = []
    authentication = [_class_path(c) for c in config.get("DEFAULT_AUTHENTICATION_CLASSES", ())]
    if DRF_AUTHENTICATION in authentication[1:]:
        messages.append(
            checks.Warning(
                "REST_FRAMEWORK: PrivateTokenAuthentication is not the first of "
                "DEFAULT_AUTHENTICATION_CLASSES; DRF asks only the first class for the "
                "WWW-Authenticate of a 401, so a refused token gets a 403 without a challenge.",
                hint=f"Move {DRF_AUTHENTICATION!r} to the top of the list.",
                id="pat_middleware.W004",
            )
        )
    named = [
        _class_path(c)
        for key in ("DEFAULT_AUTHENTICATION_CLASSES", "DEFAULT_PERMISSION_CLASSES")
        for c in config.get(key, ())
    ]
    installed = MIDDLEWARE_PATHS.intersection(getattr(django_settings, "MIDDLEWARE", ()))
    if any(path.startswith(_DRF_MODULE) for path in named) and not installed:
        messages.append(
            checks.Error(
                "REST_FRAMEWORK names pat-middleware's classes, but PrivateTokenMiddleware "
                "is not in MIDDLEWARE: it writes their cookies on DRF's responses.",
                hint=f"Add {MIDDLEWARE_PATH!r} to MIDDLEWARE.",
                id="pat_middleware.E005",
            )
        )
    return messages


__all__ = ["DRF_AUTHENTICATION", "MIDDLEWARE_PATH", "check_drf", "check_settings"]
