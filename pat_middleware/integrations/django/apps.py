"""The Django app ``pat_middleware.integrations.django``: registers the system checks."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class PrivateTokensConfig(AppConfig):
    """Add ``"pat_middleware.integrations.django"`` to ``INSTALLED_APPS`` to run the checks."""

    name = "pat_middleware.integrations.django"
    label = "pat_middleware"
    verbose_name = "Private Access Tokens"

    def ready(self) -> None:
        from django.apps import apps

        from .checks import check_drf, check_settings

        checks.register(check_settings, checks.Tags.security)
        checks.register(check_drf, checks.Tags.security)
        if apps.is_installed("drf_spectacular"):  # it finds extensions by import
            from .. import drf_spectacular  # noqa: F401


__all__ = ["PrivateTokensConfig"]
