"""Settings: a TOML file or a mapping in, a validated frozen :class:`Settings` out.

``model`` holds the dataclasses (each default written once), ``rules`` the protected-path
patterns, ``loader`` the validation of TOML files, Django's ``PAT_MIDDLEWARE`` and Flask's
``PAT_*`` config.
"""

from __future__ import annotations

from .loader import (
    ISSUER_KEYS,
    KNOWN_KEYS,
    SETTINGS_ENV,
    build_settings,
    load_settings,
)
from .model import (
    DEFAULT_CHALLENGE_BODY,
    ContextMode,
    CookieOptions,
    DiscoveryOptions,
    IssuerConfig,
    Settings,
)
from .rules import PathRule, compile_protection, protected_methods

__all__ = [
    "DEFAULT_CHALLENGE_BODY",
    "ISSUER_KEYS",
    "KNOWN_KEYS",
    "SETTINGS_ENV",
    "ContextMode",
    "CookieOptions",
    "DiscoveryOptions",
    "IssuerConfig",
    "PathRule",
    "Settings",
    "build_settings",
    "compile_protection",
    "load_settings",
    "protected_methods",
]
