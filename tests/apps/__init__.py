"""Small apps the security tests serve with real servers (gunicorn, uvicorn).

Every protected view answers :data:`MARK`; every protected file holds ``SECRET-FILE``. The
settings (pat-middleware's, as JSON) come from ``$PAT_TEST_SETTINGS``, so one app module
serves both the protected run and the unprotected control run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

#: What a protected view answers: a response carrying it without a token is a bypass.
MARK = "SECRET-CONTENT"
FILE_MARK = "SECRET-FILE"
FILES = Path(__file__).resolve().parent / "files"
SETTINGS_ENV = "PAT_TEST_SETTINGS"
#: The rules every app is protected by (in the protected run).
RULES = [
    "/members/*",
    "/loose",
    "/café",
    "/files/secret.txt",
    "/files/private/*",
    "/dl/secret.txt",
    "/dl/private/*",
    "/cached",
    "/x",
]


def settings_from_env() -> dict[str, Any]:
    """pat-middleware settings for the app, from ``$PAT_TEST_SETTINGS``."""
    data: dict[str, Any] = json.loads(os.environ[SETTINGS_ENV])
    return data
