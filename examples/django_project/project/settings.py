"""Settings of the example project: one file, no database.

``PAT_MIDDLEWARE`` points at ``pat.toml``; ``$PAT_ISSUER_NAME`` / ``$PAT_TOKEN_KEY`` replace
its issuer when set.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
PAT_TOML = BASE_DIR / "pat.toml"

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-insecure-example-only")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["pat_middleware.integrations.django"]
MIDDLEWARE = ["pat_middleware.integrations.django.PrivateTokenMiddleware"]
ROOT_URLCONF = "project.urls"
DATABASES: dict[str, Any] = {}
USE_TZ = True


def _pat_settings_from_env() -> dict[str, Any]:
    """``pat.toml`` as an inline dict, its first issuer replaced from the environment."""
    with PAT_TOML.open("rb") as f:
        data = tomllib.load(f)
    issuer = dict(data["issuers"][0])
    if name := os.environ.get("PAT_ISSUER_NAME"):
        issuer["name"] = name
    if token_key := os.environ.get("PAT_TOKEN_KEY"):
        issuer.pop("token_key_file", None)
        issuer["token_key"] = token_key
    data["issuers"] = [issuer]
    return data


PAT_MIDDLEWARE: dict[str, Any] = {"settings_file": PAT_TOML}
if os.environ.get("PAT_ISSUER_NAME") or os.environ.get("PAT_TOKEN_KEY"):
    PAT_MIDDLEWARE = _pat_settings_from_env()
