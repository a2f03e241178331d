"""WSGI entry point of the DRF test project, for gunicorn."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.apps.drf_project.settings")
application = get_wsgi_application()
