"""Protected views by path rule, and protected files served by ``static.serve``."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path, re_path
from django.views.static import serve

from tests.apps import FILES, MARK


def secret(request: HttpRequest) -> HttpResponse:
    return HttpResponse(MARK)


def cached(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(MARK)
    response["Cache-Control"] = "public, max-age=600"
    return response


def public(request: HttpRequest) -> HttpResponse:
    return HttpResponse("public")


urlpatterns = [
    path("members/", secret),
    path("café", secret),
    path("loose", secret),
    path("cached", cached),
    path("public", public),
    re_path(r"^files/(?P<path>.*)$", serve, {"document_root": FILES}),
]
