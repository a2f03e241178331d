"""Django integration: middleware, view decorator and system checks.

Add ``"pat_middleware.integrations.django"`` to ``INSTALLED_APPS`` (system checks),
``"pat_middleware.integrations.django.PrivateTokenMiddleware"`` to ``MIDDLEWARE``, and set
``PAT_MIDDLEWARE`` to a dict of settings or ``{"settings_file": path}``. Protect single views
with :func:`private_token_required`.
"""

from __future__ import annotations

from .decorators import private_token_required
from .middleware import (
    METRICS_SETTING,
    SETTING,
    SETTINGS_FILE_KEY,
    PrivateTokenMiddleware,
    get_policy,
    read_settings,
)

__all__ = [
    "METRICS_SETTING",
    "SETTING",
    "SETTINGS_FILE_KEY",
    "PrivateTokenMiddleware",
    "get_policy",
    "private_token_required",
    "read_settings",
]
