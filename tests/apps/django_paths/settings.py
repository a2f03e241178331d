"""Settings of the Django test project; pat-middleware's come from ``$PAT_TEST_SETTINGS``."""

from __future__ import annotations

from tests.apps import settings_from_env

SECRET_KEY = "django-test-key-not-secret-0123456789-abcdefghij"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.apps.django_paths.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["pat_middleware.integrations.django.PrivateTokenMiddleware"]
PAT_MIDDLEWARE = settings_from_env()
USE_TZ = True
LOGGING_CONFIG = None
