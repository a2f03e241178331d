"""One public view, one protected by the ``protect`` pattern, one by the decorator."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from pat_middleware.integrations.django import private_token_required


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Public. /members/ and /download/ need a Private Access Token.\n")


def members(request: HttpRequest) -> HttpResponse:
    # Protected by protect = ["/members/*"] in pat.toml.
    token = getattr(request, "private_token", None)
    return HttpResponse(f"Members only. You proved: {token}\n")


@private_token_required
def download(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Here is your download.\n")
