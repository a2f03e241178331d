"""The path forms protect rules are matched against (pat_middleware.core.paths), and a property:
whatever spelling a framework routes to a protected view, the adapter does not pass it
without a token.

The property runs the real frameworks in process, fed exactly as their servers feed them:
gunicorn's PATH_INFO (percent-decoded bytes as latin-1) and RAW_URI for Flask, uvicorn's
scope (``unquote`` of the target, ``raw_path`` as sent) for Starlette. The same spellings go
over real servers in test_security.py.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pat_middleware.core.paths import (
    asgi_paths,
    canonical_path,
    path_forms,
    percent_decode,
    wsgi_paths,
    wsgi_text,
)
from pat_middleware.errors import DecodeError
from pat_middleware.tokens.blind_rsa import IssuerKey

from ._path_servers import path_settings
from .apps import FILE_MARK, MARK, RULES, SETTINGS_ENV

# ------------------------------------------------------------------------- unit tests


@pytest.mark.parametrize(
    ("path", "canonical"),
    [
        # RFC 3986 §5.2.4's own examples, and §5.4.2's abnormal ones that apply to paths.
        ("/a/b/c/./../../g", "/a/g"),
        ("/b/c/.", "/b/c/"),
        ("/b/c/..", "/b/"),
        ("/../g", "/g"),
        ("/./g", "/g"),
        ("/g.", "/g."),
        ("/.g", "/.g"),
        ("/g..", "/g.."),
        ("/..g", "/..g"),
        ("/b/c/./../g", "/b/g"),
        ("/b/c/./g/.", "/b/c/g/"),
        ("/b/c/g/./h", "/b/c/g/h"),
        ("/b/c/g/../h", "/b/c/h"),
        # Repeated slashes merged; a missing leading slash supplied.
        ("//x", "/x"),
        ("/a//b///c/", "/a/b/c/"),
        ("x", "/x"),
        ("", "/"),
        ("/", "/"),
    ],
)
def test_canonical_path(path: str, canonical: str) -> None:
    assert canonical_path(path) == canonical


def test_percent_decoding_reads_utf8_and_refuses_what_is_not() -> None:
    assert percent_decode("/caf%C3%A9") == "/café"
    assert percent_decode("/a%2Fb%2e") == "/a/b."
    assert percent_decode("/plain") == "/plain"
    assert percent_decode("/café") == "/café"  # already text
    with pytest.raises(DecodeError):
        percent_decode("/caf%C3")
    with pytest.raises(DecodeError):
        percent_decode("/%ff")


def test_wsgi_text_is_pep3333_latin1_of_utf8_bytes() -> None:
    assert wsgi_text("/caf\xc3\xa9") == "/café"
    assert wsgi_text("/café\u0101") == "/café\u0101"  # not latin-1: already text
    with pytest.raises(DecodeError):
        wsgi_text("/\xff")
    assert wsgi_text("/\xff", strict=False) == "/\ufffd"  # as Werkzeug reads it


def test_forms_of_a_plain_path_are_it_and_its_trailing_slash_twin() -> None:
    assert path_forms(["/members/"]) == ("/members/", "/members")
    assert path_forms(["/x"]) == ("/x", "/x/")
    assert path_forms(["/"]) == ("/",)


def test_forms_cover_every_reading() -> None:
    forms = set(path_forms(["/files/%2e/x/../secret.txt/"]))
    assert {"/files/secret.txt", "/files/secret.txt/"} <= forms
    assert {"/members/", "/members"} <= set(path_forms(["//members//"]))
    assert "/café" in path_forms(["/caf%C3%A9"])


def test_wsgi_spellings_include_path_info_alone_and_the_raw_target() -> None:
    environ = {
        "PATH_INFO": "/members/",
        "SCRIPT_NAME": "/x",
        "RAW_URI": "http://h//x/members/?q=1",
    }
    assert wsgi_paths(environ) == ("/members/", "/x/members/", "//x/members/")


def test_asgi_spellings_add_and_remove_root_path() -> None:
    assert asgi_paths({"path": "/api/x", "root_path": "/api"}) == ("/api/x", "/x")
    assert asgi_paths({"path": "/x", "root_path": "/api"}) == ("/x", "/api/x")
    assert asgi_paths({"path": "/x", "raw_path": b"/%78"}) == ("/x", "/%78")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.text(max_size=60))
def test_forms_raise_only_decode_errors(path: str, other: str) -> None:
    try:
        forms = path_forms([path, other])
    except DecodeError:
        return
    assert all(form for form in forms)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_wsgi_and_asgi_spellings_raise_only_decode_errors(raw: bytes) -> None:
    text = raw.decode("latin-1")
    for strict in (True, False):
        try:
            wsgi_paths({"PATH_INFO": text, "SCRIPT_NAME": text, "RAW_URI": text}, strict=strict)
            asgi_paths({"path": text, "raw_path": raw, "root_path": text}, strict=strict)
        except DecodeError:
            assert strict


# --------------------------------------------------------- the property, in-process

_SEGMENTS = st.sampled_from(
    [
        "members",
        "files",
        "dl",
        "secret.txt",
        "private",
        "loose",
        "caf%C3%A9",
        "x",
        ".",
        "..",
        "%2e",
        "%2E%2e",
        "",
        "%2f",
        "%2Fmembers",
    ]
)
_TARGETS = st.builds(
    lambda lead, parts, trail: lead + "/".join(parts) + trail,
    st.sampled_from(["/", "//", "///", "/%2f"]),
    st.lists(_SEGMENTS, min_size=1, max_size=5),
    st.sampled_from(["", "/", "//"]),
)
_BYPASSES = [
    "//members/",
    "/%2fmembers/",
    "/caf%C3%A9",
    "/loose/",
    "/files/./secret.txt",
    "/files/%2e/secret.txt",
    "/files/secret.txt/",
    "/files/x/../private/secret.txt",
    "/dl/x/../private/secret.txt",
]


def _leaks(status: int, body: bytes) -> bool:
    return status == 200 and (MARK.encode() in body or FILE_MARK.encode() in body)


def _gunicorn_environ(target: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": unquote_to_bytes(target).decode("latin-1"),
        "SCRIPT_NAME": "",
        "RAW_URI": target,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def _call_wsgi(app: Any, target: str) -> tuple[int, bytes]:
    status: list[str] = []

    def start_response(line: str, headers: Any, exc_info: Any = None) -> Any:
        status.append(line)
        return lambda data: None

    result = app(_gunicorn_environ(target), start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return int(status[0][:3]), body


def _call_asgi(app: Any, target: str) -> tuple[int, bytes]:
    """As uvicorn's h11 protocol builds the scope (unquote of the target, raw_path)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(target),
        "raw_path": target.encode("ascii"),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"localhost")],
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 5000),
    }
    sent: list[dict[str, Any]] = []
    requested: list[bool] = []

    async def receive() -> dict[str, Any]:
        if not requested:
            requested.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected (file responses listen)
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(start["status"]), body


@pytest.fixture(scope="module")
def apps(issuer_key: IssuerKey) -> Iterator[dict[str, tuple[Any, Any, Any]]]:
    """Per adapter: (protected app, control app without rules, how to call them)."""
    import json

    from .apps.flask_paths import create_app
    from .apps.starlette_paths import starlette_app

    def flask(protection: str, rules: list[str]) -> Any:
        os.environ[SETTINGS_ENV] = json.dumps(path_settings(issuer_key, rules))
        try:
            return create_app(protection)
        finally:
            del os.environ[SETTINGS_ENV]

    yield {
        "flask-extension": (flask("extension", RULES), flask("none", []), _call_wsgi),
        "flask-middleware": (flask("middleware", RULES), flask("none", []), _call_wsgi),
        "starlette": (
            starlette_app(path_settings(issuer_key, RULES)),
            starlette_app(path_settings(issuer_key, [])),
            _call_asgi,
        ),
    }


@pytest.mark.parametrize("adapter", ["flask-extension", "flask-middleware", "starlette"])
@settings(max_examples=250, deadline=None)
@given(target=_TARGETS)
@example(target=_BYPASSES[0])
@example(target=_BYPASSES[1])
@example(target=_BYPASSES[2])
@example(target=_BYPASSES[3])
@example(target=_BYPASSES[4])
@example(target=_BYPASSES[5])
@example(target=_BYPASSES[6])
@example(target=_BYPASSES[7])
@example(target=_BYPASSES[8])
def test_whatever_the_framework_routes_to_a_protected_view_needs_a_token(
    apps: dict[str, tuple[Any, Any, Any]], adapter: str, target: str
) -> None:
    protected, control, call = apps[adapter]
    if not _leaks(*call(control, target)):
        return  # the framework does not serve protected content for this spelling
    status, body = call(protected, target)
    assert not _leaks(status, body), f"{target!r} reached protected content ({status})"
    assert status in (400, 401), status


def test_the_property_is_not_vacuous(apps: dict[str, tuple[Any, Any, Any]]) -> None:
    """The known bypass spellings do reach protected content on the unprotected apps."""
    for adapter, (_, control, call) in apps.items():
        reached = [t for t in _BYPASSES if _leaks(*call(control, t))]
        assert len(reached) >= 5, (adapter, reached)
