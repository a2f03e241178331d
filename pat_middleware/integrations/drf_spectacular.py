"""drf-spectacular: :class:`~pat_middleware.integrations.drf.PrivateTokenAuthentication` in
the OpenAPI document as ``{"type": "http", "scheme": "PrivateToken"}``.

drf-spectacular finds extensions by import; the Django app
``pat_middleware.integrations.django`` imports this module when ``drf_spectacular`` is in
``INSTALLED_APPS``. Importing it imports drf-spectacular.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

#: The HTTP authentication scheme name (RFC 9577 §2.1).
SCHEME = "PrivateToken"


class PrivateTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """The security scheme of ``PrivateTokenAuthentication``."""

    target_class = "pat_middleware.integrations.drf.PrivateTokenAuthentication"
    name = SCHEME

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": SCHEME,
            "description": "Privacy Pass (RFC 9577): answer the 401's PrivateToken challenge",
        }


__all__ = ["SCHEME", "PrivateTokenScheme"]
