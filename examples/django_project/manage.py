#!/usr/bin/env python
"""A Django project whose /members/ pages and /download/ need a Private Access Token.

Run it from this directory (``pip install -e '.[django,server]'`` in the repository first)::

    python manage.py runserver 127.0.0.1:8000

Settings come from ``pat.toml`` beside this file, through
``PAT_MIDDLEWARE = {"settings_file": ...}``. When ``$PAT_ISSUER_NAME`` / ``$PAT_TOKEN_KEY``
are set they replace the issuer (the file is then read into an inline ``PAT_MIDDLEWARE``
dict); otherwise the token-key is read from ``examples/issuer.token-key``. To try the whole
flow on loopback with the test issuer, from the repository root::

    pat-middleware keygen --out examples/issuer.pem | tail -n 1 > examples/issuer.token-key
    pat-middleware issuer --key examples/issuer.pem --name 127.0.0.1:8001 &
    (cd examples/django_project && python manage.py runserver 127.0.0.1:8000) &
    pat-middleware fetch http://127.0.0.1:8000/members/ --issuer http://127.0.0.1:8001

``/`` is public; ``/members/...`` is protected by the ``protect`` pattern in ``pat.toml``;
``/download/`` by the ``@private_token_required`` decorator.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
