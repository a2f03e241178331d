"""Loaders for the official test vectors copied into tests/vectors/ (see its README)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTOR_DIR = Path(__file__).parent / "vectors"


def load(name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((VECTOR_DIR / name).read_text())
    return data


TYPE2_ISSUANCE = load("rfc9578-type2-blind-rsa-issuance.json")
CHALLENGE_REDEMPTION = load("rfc9577-challenge-redemption.json")
HTTP_HEADERS = load("rfc9577-http-headers.json")
HTTP_HEADERS_UNQUOTED = load("privacypass-ts-http-header-unquoted.json")
RSABSSA = load("rfc9474-rsabssa.json")


def h(value: str) -> bytes:
    return bytes.fromhex(value)
