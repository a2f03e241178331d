"""The Django project's WSGI application (``DJANGO_SETTINGS_MODULE`` is set here)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.apps.django_paths.settings")
application = get_wsgi_application()
