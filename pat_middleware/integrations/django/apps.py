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
        from .checks import check_settings

        checks.register(check_settings, checks.Tags.security)


__all__ = ["PrivateTokensConfig"]
