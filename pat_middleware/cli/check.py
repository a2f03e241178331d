"""``pat-middleware check [SETTINGS]``: a settings file validated as start-up validates it,
for a CI pipeline, and with ``--connect`` what it names reached as start-up reaches it.

On success it prints what the settings say (issuers, token types, protected paths, replay
store, mode) and exits 0. A problem is one line on stderr naming the setting
(``pat-middleware check: SETTING: message``) and exits 1: the first problem the settings
loader finds (it stops there), then, with ``--connect``, every unreachable thing:

* the replay store: a spend-free check (``PING`` for Redis, on every node of a cluster; a
  store without one is opened and closed);
* every issuer directory and every PST record-key JWK Set, each fetched once as start-up
  fetches it (``directory_timeout``, the same size and media-type rules).

Exit 2 is a usage error (no file given and ``PAT_SETTINGS`` unset).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, PrivateTokenError
from ..settings import SETTINGS_ENV, Settings, load_settings
from ..settings.loader import absolute
from ..stores.registry import url_scheme
from ..tokens.registry import default_registry
from .common import EXIT_OK, EXIT_REFUSED, UsageError


@dataclass(frozen=True, slots=True)
class Reached:
    """One thing ``--connect`` tried to reach: the setting that names it, and what came
    of it (``ok`` or not, in one line)."""

    setting: str
    ok: bool
    detail: str


def cmd_check(args: argparse.Namespace) -> int:
    chosen = args.settings or os.environ.get(SETTINGS_ENV)
    if not chosen:
        raise UsageError(f"give the settings file, or set {SETTINGS_ENV}")
    with _quiet():  # what start-up would log is said here, as notes and problems
        return _check(absolute_path(chosen), connect=args.connect)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    logger = logging.getLogger("pat_middleware")
    was = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = was


def _check(file: Path, *, connect: bool) -> int:
    try:
        settings = load_settings(file)
    except ConfigurationError as e:
        problem(e.setting, e.message)
        return EXIT_REFUSED
    print(f"{file}: valid")
    for line in summary(settings, connect=connect):
        print(f"  {line}")
    if not connect:
        return EXIT_OK
    failed = False
    for result in reach(settings):
        if result.ok:
            print(f"  ok: {result.setting}: {result.detail}")
        else:
            failed = True
            problem(result.setting, result.detail)
    return EXIT_REFUSED if failed else EXIT_OK


def absolute_path(path: str) -> Path:
    """``path`` as the settings loader reads it (and names it in errors)."""
    return absolute(Path(path))


def problem(setting: str, message: str) -> None:
    sys.stdout.flush()  # the report and the problems, in the order they happened
    print(f"pat-middleware check: {setting}: {message}", file=sys.stderr, flush=True)


# -------------------------------------------------------------------------------- summary


def summary(settings: Settings, *, connect: bool = False) -> list[str]:
    """What the settings say, a line per subject."""
    from ..discovery.fetch import shown_url

    registry = default_registry()
    lines: list[str] = []
    issuers = []
    for issuer in settings.issuers:
        parts = []
        if issuer.keys:
            types = ", ".join(str(t) for t in sorted({k.token_type for k in issuer.keys}))
            count = len(issuer.keys)
            parts.append(f"{count} static key{'s' if count > 1 else ''} (type {types})")
        if issuer.directory_urls:
            fetched = "" if connect else " (fetched with --connect)"
            parts.append(f"directory {shown_url(issuer.directory_urls[0])}{fetched}")
        issuers.append(f"{issuer.name}: {', '.join(parts)}")
    lines.append("issuers: " + ("; ".join(issuers) or "none (PST records only)"))
    types = ", ".join(f"{t} ({registry.name(t)})" for t in sorted(settings.token_types))
    lines.append(f"token types: {types}")
    lines.append(f"protect: {_protect(settings)}")
    lines.append(f"replay store: {url_scheme(settings.replay_store)}://")
    mode = settings.redemption_context.value
    verified = (
        f"verified sessions {settings.verified_duration} s"
        if settings.verified_duration
        else "no verified sessions"
    )
    lines.append(f"mode: {mode}; challenges honoured {settings.max_age} s; {verified}")
    pst = settings.pst
    if pst.issuers:
        entries = []
        for entry in pst.issuers:
            where = []
            if entry.jwks_url is not None:
                fetched = "" if connect else " (fetched with --connect)"
                where.append(f"JWK Set {shown_url(entry.jwks_url)}{fetched}")
            if entry.keys:
                where.append(f"{len(entry.keys)} configured record key(s)")
            entries.append(f"{entry.origin}: {', '.join(where)}")
        lines.append("pst issuers: " + "; ".join(entries))
        lines.append("pst accepted origins: " + ", ".join(sorted(pst.accepted_origins)))
    lines += [f"note: {note}" for note in notes(settings)]
    return lines


def _protect(settings: Settings) -> str:
    if not settings.protect:
        return "nothing (decorators only)"
    rules = ", ".join(f"{rule.pattern} ({rule.kind})" for rule in settings.protect)
    methods = settings.protect_methods
    return f"{rules}; {'only ' + ', '.join(sorted(methods)) if methods else 'every method'}"


def notes(settings: Settings) -> Iterator[str]:
    """What is valid but worth a look before production (the warnings start-up logs)."""
    if not settings.origin_info:
        yield (
            "origin_info is empty: challenges name no origin, so tokens minted for this "
            "site's challenges can be redeemed at any origin trusting the same issuer"
        )
    if settings.development:
        yield "development = true: a missing secret is random per process"
    if not settings.cookies.secure:
        yield "cookie_secure = false: session cookies travel over plain http"
    if url_scheme(settings.replay_store) == "memory":
        yield (
            "memory:// keeps spent tokens in one process: several workers or hosts need a "
            "shared store (redis://...)"
        )


# ---------------------------------------------------------------------------------- reach


def reach(settings: Settings) -> list[Reached]:
    """The replay store, then every issuer directory and PST record-key set, each reached
    once, as start-up reaches them."""
    return [reach_store(settings), *reach_documents(settings)]


def reach_store(settings: Settings) -> Reached:
    """A spend-free check of the replay store: its ``ping()`` when it has one (Redis:
    ``PING``), else opened and closed."""
    from ..stores import open_replay_store

    setting = "replay_store"
    try:
        store = open_replay_store(settings.replay_store, setting=setting)
    except PrivateTokenError as e:  # pragma: no cover - the settings opened it already
        return Reached(setting, False, str(e))
    ping: Callable[[], None] | None = getattr(store, "ping", None)
    try:
        if ping is not None:
            ping()
            detail = f"{store!r} answered PING"
        else:
            detail = f"{store!r} opened and closed (it has no spend-free check to run)"
    except PrivateTokenError as e:  # StoreUnavailable, with the URL's secrets redacted
        return Reached(setting, False, f"not reached: {e}")
    finally:
        store.close()
    return Reached(setting, True, detail)


def reach_documents(settings: Settings) -> list[Reached]:
    """Every issuer directory and PST record-key JWK Set, fetched once (all at once, each
    within ``directory_timeout``), as :func:`pat_middleware.discovery.refresher.attach`
    fetches them at start-up."""
    from ..discovery import KeySource, RecordKeySource
    from ..discovery.fetch import shown_url
    from ..discovery.source import RefreshingSource

    sources: list[RefreshingSource[Any]] = [KeySource(settings.issuers, settings.discovery)]
    if settings.pst.issuers:
        sources.append(RecordKeySource.from_settings(settings.pst, settings.discovery))
    states = [state for source in sources for state in source.states]
    if not states:
        return []
    try:
        from ..discovery.refresher import HttpFetcher  # imports httpx
    except ImportError:
        hint = "fetching needs httpx: pip install 'pat-middleware[discovery]'"
        return [Reached(state.setting, False, hint) for state in states]
    for source in sources:
        source.fetcher = HttpFetcher(settings.discovery.timeout)
        source.refresh(force=True)
    now = time.time()
    out: list[Reached] = []
    for state in states:
        url = shown_url(state.url)
        if state.last_error is not None:
            detail = f"no {state.key_noun} could be fetched from {url} ({state.last_error})"
            out.append(Reached(state.setting, False, detail))
        elif not state.has_keys:
            out.append(Reached(state.setting, False, f"{url} lists no usable {state.key_noun}"))
        else:
            out.append(Reached(state.setting, True, f"{state.name}: {state.describe(now)}"))
    return out


__all__ = ["Reached", "cmd_check", "notes", "reach", "reach_documents", "reach_store", "summary"]
