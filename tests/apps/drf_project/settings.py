"""Settings of the DRF test project (``DJANGO_SETTINGS_MODULE=tests.apps.drf_project.settings``)."""

from __future__ import annotations

from tests.apps import settings_from_env

SECRET_KEY = "drf-test-key-not-secret-0123456789-abcdefghijkl"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.apps.drf_project.urls"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "drf_spectacular",
    "pat_middleware.integrations.django",
]
MIDDLEWARE = ["pat_middleware.integrations.django.PrivateTokenMiddleware"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
PAT_MIDDLEWARE = settings_from_env()
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "pat_middleware.integrations.drf.PrivateTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["pat_middleware.integrations.drf.HasPrivateToken"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
USE_TZ = True
LOGGING_CONFIG = None
