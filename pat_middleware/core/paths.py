"""The spellings of one request path that a server, a framework or a file handler may act on.

A protect rule is only as good as the path it is matched against. Servers, frameworks and
file-serving handlers each read the request target their own way: Werkzeug merges leading
slashes before routing, WSGI servers decode ``%2f`` into ``/``, ``PATH_INFO`` is latin-1
text of UTF-8 bytes, a client-supplied ``SCRIPT_NAME`` shifts the path a middleware sees
away from the one the router uses, ASGI ``root_path`` is stripped by Starlette's router only
when present, and static-file handlers resolve ``.`` and ``..`` segments and ignore a
trailing slash. So a request is protected when *any* of its forms matches a rule:

* every path the adapter can see (the raw target path, the server's decoded path, the
  framework's routed path, with and without ``root_path`` / ``SCRIPT_NAME``);
* each of them percent-decoded once as UTF-8 (``/caf%C3%A9`` is ``/café``);
* each of them in canonical form: repeated slashes merged and dot segments removed
  (RFC 3986 §5.2.4), so ``/files//x``, ``/files/./x`` and ``/files/a/../x`` are ``/files/x``;
* each of those with and without a trailing slash (``/loose/`` is ``/loose``).

A path that cannot be decoded (bad percent-encoding of bytes that are not UTF-8) raises
:class:`~pat_middleware.errors.DecodeError`: the adapters refuse such a request with 400
whenever path rules are configured, rather than guess how the framework will read it.

This module is sans-IO and imports nothing from a framework.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from ..errors import DecodeError

#: A path no reader can spell differently: ASCII segments of RFC 3986 pchar without '%',
#: no empty, "." or ".." segment, at most one trailing slash. One C-level match per request.
_PLAIN = re.compile(r"(?:/(?!\.\.?(?:/|\Z))[!$&-.0-9:;=@A-Z_a-z~]+)*/?", re.ASCII)
_SLASHES = re.compile(r"/{2,}")


def canonical_path(path: str) -> str:
    """``path`` with repeated slashes merged and dot segments removed (RFC 3986 §5.2.4).

    Always starts with ``/``. A trailing ``.`` or ``..`` segment leaves a trailing slash,
    as RFC 3986 does (``/a/b/..`` is ``/a/``).
    """
    merged = _SLASHES.sub("/", path if path.startswith("/") else "/" + path)
    segments = merged.split("/")[1:]
    out: list[str] = []
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == ".":
            if last:
                out.append("")
        elif segment == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)


def percent_decode(path: str) -> str:
    """``path`` percent-decoded once, the bytes read as UTF-8 (strictly)."""
    if "%" not in path:
        return path
    try:
        return unquote_to_bytes(path).decode("utf-8")
    except UnicodeDecodeError as e:
        raise DecodeError("request path is not valid UTF-8 after percent-decoding") from e


def wsgi_text(value: str, *, strict: bool = True) -> str:
    """A WSGI string (latin-1 text of the raw bytes, PEP 3333) as the text its UTF-8 bytes
    spell, as Werkzeug and Django read it. Text that is not latin-1 is taken as already
    decoded. Bytes that are not UTF-8 raise :class:`DecodeError` (``strict``) or become
    U+FFFD, as Werkzeug makes them."""
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        return value
    try:
        return raw.decode("utf-8", "strict" if strict else "replace")
    except UnicodeDecodeError as e:
        raise DecodeError("request path is not valid UTF-8") from e


def _toggled(path: str) -> str:
    """``path`` with its trailing slash removed, or one added."""
    if path.endswith("/"):
        return path.rstrip("/") or "/"
    return path + "/"


def path_forms(paths: Iterable[str]) -> tuple[str, ...]:
    """Every form of the request path that protect rules are matched against (see above).

    ``paths`` are the spellings the adapter sees: raw target path, decoded path, routed
    path, with or without the mount prefix. Raises :class:`DecodeError` for a path that
    does not decode. The common case, one plain path, costs one regex match.
    """
    forms: dict[str, None] = {}
    for path in paths:
        if not path:
            path = "/"
        if _PLAIN.fullmatch(path) is not None:
            forms[path] = None
            forms[_toggled(path)] = None
            continue
        for spelling in (path, percent_decode(path)):
            for form in (spelling, canonical_path(spelling)):
                forms[form] = None
                forms[_toggled(form)] = None
    return tuple(forms)


def _target_path(target: str) -> str:
    """The path of a request target: no query or fragment; for the absolute form
    (RFC 9112 §3.2.2, ``http://host//x``) the part after the authority."""
    target = target.partition("?")[0].partition("#")[0]
    if not target.startswith("/") and "://" in target:
        rest = target.partition("://")[2]
        slash = rest.find("/")
        target = rest[slash:] if slash >= 0 else "/"
    return target


def asgi_paths(scope: Mapping[str, Any], *, strict: bool = True) -> tuple[str, ...]:
    """The path spellings of an ASGI HTTP or WebSocket scope (see :func:`path_forms`).

    ``path`` as the server decoded it; ``raw_path`` as sent; and with ``root_path`` both
    removed (what Starlette's router matches when ``path`` starts with it) and added (what
    a rule written with the mount prefix expects when the server left it out). A
    ``raw_path`` whose bytes are not UTF-8 raises :class:`DecodeError` when ``strict``.
    """
    path = scope.get("path")
    if not isinstance(path, str):
        path = "/"
    elif not path.startswith("/"):
        path = _target_path(path)
    spellings = [path]
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        text = raw.decode("latin-1")
        # The usual request: raw_path is the path itself, ASCII, no query or fragment, so
        # reading it again would give the path (nothing to add). Otherwise read it.
        if text != path or not text.isascii() or "?" in text or "#" in text:
            text = _target_path(wsgi_text(text, strict=strict))
            if text != path:
                spellings.append(text)
    root = scope.get("root_path")
    if isinstance(root, str) and root and root != "/":
        if path.startswith(root):
            spellings.append(path[len(root) :] or "/")
        else:
            spellings.append(root.rstrip("/") + path)
    return tuple(spellings)


def wsgi_paths(environ: Mapping[str, Any], *, strict: bool = True) -> tuple[str, ...]:
    """The path spellings of a WSGI environ (see :func:`path_forms`), as text.

    ``PATH_INFO`` is what Flask and Django route on; ``SCRIPT_NAME + PATH_INFO`` what the
    application's URL is; ``RAW_URI`` / ``REQUEST_URI`` (gunicorn, uWSGI, mod_wsgi) the
    target as sent, before the server decoded ``%2f`` or split off a ``SCRIPT_NAME``. Bytes
    that are not UTF-8 raise :class:`DecodeError` when ``strict`` (see :func:`wsgi_text`).
    """
    info = environ.get("PATH_INFO")
    info = wsgi_text(info, strict=strict) if isinstance(info, str) and info else "/"
    spellings = [info]
    script = environ.get("SCRIPT_NAME")
    if isinstance(script, str) and script:
        spellings.append(wsgi_text(script, strict=strict).rstrip("/") + info)
    target = raw_target(environ, strict=strict)
    if target is not None and target != info:
        spellings.append(target)
    return tuple(spellings)


def raw_target(environ: Mapping[str, Any], *, strict: bool = True) -> str | None:
    """The path of the request target as sent (``RAW_URI`` from gunicorn, ``REQUEST_URI``
    from uWSGI and mod_wsgi), or None when the server gives neither."""
    for key in ("RAW_URI", "REQUEST_URI"):
        raw = environ.get(key)
        if isinstance(raw, str) and raw:
            return _target_path(wsgi_text(raw, strict=strict)) or None
    return None


__all__ = [
    "asgi_paths",
    "canonical_path",
    "path_forms",
    "percent_decode",
    "raw_target",
    "wsgi_paths",
    "wsgi_text",
]
