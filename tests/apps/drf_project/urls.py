"""Views of the DRF test project: protected by default (``HasPrivateToken``), a public one,
one accepting fresh tokens only, and the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pat_middleware.integrations.drf import HasPrivateToken

from .. import MARK


def _describe(request: Request) -> dict[str, Any]:
    token = getattr(request, "private_token", None)
    return {
        "mark": MARK,
        "signal": token.signal if token is not None else None,
        "user_authenticated": bool(request.user and request.user.is_authenticated),
    }


class Items(APIView):
    def get(self, request: Request) -> Response:
        return Response(_describe(request))

    def post(self, request: Request) -> Response:
        return Response(_describe(request), status=201)


class Fresh(APIView):
    permission_classes = (HasPrivateToken.accepting("private-token"),)

    def get(self, request: Request) -> Response:
        return Response(_describe(request))


class Public(APIView):
    permission_classes = (AllowAny,)

    def get(self, request: Request) -> Response:
        return Response({"page": "public"})


class Schema(SpectacularAPIView):
    permission_classes = (AllowAny,)


urlpatterns = [
    path("items", Items.as_view()),
    path("fresh", Fresh.as_view()),
    path("public", Public.as_view()),
    path("schema", Schema.as_view()),
]
