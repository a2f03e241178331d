"""The ``pat-middleware`` commands that serve or fetch over HTTP: ``issuer``, ``origin``,
``store-init``, ``fetch`` and ``demo``."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.keys import PublishedKey
from ..errors import ConfigurationError
from .common import EXIT_OK, EXIT_REFUSED, UsageError, read_private_key, type_name
from .keys import load_private_keys

if TYPE_CHECKING:
    from ..settings import Settings
    from .demo import IssuanceFailed

#: Environment variable carrying the origin's command-line choices to its worker processes.
ORIGIN_SPEC_ENV = "PAT_ORIGIN_SPEC"
#: Environment variable holding the origin's secret (wins over the config file's).
SECRET_ENV = "PAT_SECRET"  # noqa: S105 - a variable name, not a secret
_SECRET_KEYS = ("secret", "secret_env", "secret_file")


def uvicorn_run(app: Any, host: str, port: int, workers: int = 1, *, factory: bool = False) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="info", workers=workers, factory=factory)


# --------------------------------------------------------------------------------- issuer


def cmd_issuer(args: argparse.Namespace) -> int:
    from ..issuer import Issuer
    from ..issuer.rotation import RotatingIssuer
    from ..issuer.server import create_issuer_app

    if bool(args.key) == (args.rotate_every is not None):
        raise UsageError("give --key FILE (repeatable) or --rotate-every SECONDS")
    if args.overlap is not None and args.rotate_every is None:
        raise UsageError("--overlap goes with --rotate-every")
    now = time.time()
    served: Issuer | RotatingIssuer
    if args.rotate_every is not None:
        served = RotatingIssuer(args.name, period=args.rotate_every, overlap=args.overlap)
        preferred: list[PublishedKey] = [served.preferred_key(now)]
        count = f"a new key every {served.period} s (overlap {served.overlap} s)"
    else:
        served = Issuer(args.name, *load_private_keys(args.key), allow_4096=args.allow_4096)
        types = dict.fromkeys(key.token_type for key in served.published_keys)
        preferred = [served.preferred(token_type, now=now) for token_type in types]
        count = f"{len(served.published_keys)} key(s)"
    print(f"issuer {args.name}: {count}; preferred key id {preferred[0].token_key_id.hex()}")
    for key in preferred:
        if len(preferred) > 1:
            print(f"token type {key.token_type} ({type_name(key.token_type)}):")
        print(f"token-key: {key.token_key}")
    print(f"directory: http://{args.host}:{args.port}/.well-known/private-token-issuer-directory")
    sys.stdout.flush()
    app = create_issuer_app(served, directory_max_age=args.directory_max_age)
    uvicorn_run(app, args.host, args.port)
    return EXIT_OK


# --------------------------------------------------------------------------------- origin


def _origin_base(spec: dict[str, Any]) -> dict[str, Any]:
    """The settings mapping from ``--config`` and ``--replay-store``. A file with keys
    outside its ``[pat_middleware]`` table is refused (:func:`read_settings_file`)."""
    from ..settings.loader import read_settings_file

    base: dict[str, Any] = {}
    config = spec.get("config")
    if config:
        try:
            section, _ = read_settings_file(config, setting="--config")
        except ConfigurationError as e:
            if e.setting == "--config":  # the file itself: a usage error
                raise UsageError(str(e)) from e
            raise
        base = dict(section)
    if spec.get("replay_store"):
        base["replay_store"] = spec["replay_store"]
    return base


def _origin_settings(spec: dict[str, Any]) -> Settings:
    """The demo origin's settings from its command-line choices (also run in each worker)."""
    from .demo import origin_settings

    config = spec.get("config")
    return origin_settings(
        spec["issuer_name"],
        spec["token_key"],
        directory=spec.get("issuer_directory"),
        private_key_file=spec.get("issuer_private_key"),
        base=_origin_base(spec),
        secret=os.environ.get(SECRET_ENV),
        pst_issuers=spec.get("pst_issuers") or (),
        own_origins=spec.get("own_origins") or (),
        # Paths in the file are relative to the file, as in every settings file.
        base_dir=Path(config).parent if config else None,
        source=config or "origin settings",
    )


def origin_app_factory() -> Any:
    """Uvicorn's app factory in each ``origin --workers N`` process."""
    from ..policy import Policy
    from .demo import create_origin_app

    spec = json.loads(os.environ[ORIGIN_SPEC_ENV])
    return create_origin_app(Policy(_origin_settings(spec)))


def cmd_origin(args: argparse.Namespace) -> int:
    from ..policy import Policy
    from .demo import create_origin_app

    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    keyed = bool(args.token_key or args.issuer_directory or args.issuer_private_key)
    if keyed and args.issuer_name is None:
        raise UsageError(
            "--token-key, --issuer-directory and --issuer-private-key need --issuer-name"
        )
    if args.issuer_name is None and not args.pst_issuer:
        raise UsageError("give --issuer-name (with its key) or --pst-issuer URL")
    if args.issuer_name is not None and not keyed:
        raise UsageError("give --token-key, --issuer-directory or --issuer-private-key")
    if args.token_key and args.issuer_directory:
        raise UsageError("give --token-key or --issuer-directory, not both")
    private_key = None
    if args.issuer_private_key:
        entry, _, _ = read_private_key(args.issuer_private_key, "--issuer-private-key")
        if entry.publicly_verifiable:
            raise UsageError(
                f"--issuer-private-key: a type-{entry.value} ({entry.name}) key; the origin "
                "verifies that type with the public key: pass --token-key"
            )
        private_key = str(Path(args.issuer_private_key).resolve())
    spec: dict[str, Any] = {
        "issuer_name": args.issuer_name,
        "token_key": args.token_key,
        "issuer_directory": args.issuer_directory,
        "issuer_private_key": private_key,
        "config": str(Path(args.config).resolve()) if args.config else None,
        "replay_store": args.replay_store,
        "pst_issuers": args.pst_issuer or [],
        "own_origins": [
            f"http://{name}:{args.port}" for name in dict.fromkeys(("localhost", args.host))
        ],
    }
    base = _origin_base(spec)
    if args.workers > 1 and str(base.get("replay_store", "memory://")).startswith("memory:"):
        raise UsageError(
            f"--workers {args.workers} needs a shared replay store: each worker would keep its "
            "own memory:// store and accept a replayed token once per worker; pass "
            "--replay-store redis://HOST:PORT/DB (or set replay_store in --config)"
        )
    if (
        args.workers > 1
        and SECRET_ENV not in os.environ
        and not any(k in base for k in _SECRET_KEYS)
    ):
        # No secret given: one random secret for all workers, handed over in their
        # environment and never printed (contexts and cookies must verify on every worker).
        os.environ[SECRET_ENV] = secrets.token_urlsafe(32)
        print(f"{args.workers} workers share a random per-run secret (set {SECRET_ENV} to fix it)")
    settings = _origin_settings(spec)  # every setting is checked here, before any worker starts
    # So are the checks that need I/O (issuer directories): a worker failing them would be
    # restarted by uvicorn forever, with a traceback each time.
    policy = Policy(settings, refresh_in_background=args.workers == 1)
    store = settings.replay_store
    types = ", ".join(str(t) for t in sorted(settings.token_types))
    needs = []
    if args.issuer_name is not None:
        needs.append(f"a token (type {types}) from {args.issuer_name}")
    if args.pst_issuer:
        needs.append("a redemption record from " + " or ".join(args.pst_issuer))
    print(
        f"origin on http://{args.host}:{args.port}: GET / is public, GET /protected needs "
        f"{' or '.join(needs)}; replay store {store.split('://', 1)[0]}://, "
        f"{args.workers} worker(s)"
    )
    sys.stdout.flush()
    if args.workers == 1:
        uvicorn_run(create_origin_app(policy), args.host, args.port)
        return EXIT_OK
    policy.close()  # each worker builds its own
    os.environ[ORIGIN_SPEC_ENV] = json.dumps(spec)
    uvicorn_run(
        "pat_middleware.cli.servers:origin_app_factory",
        args.host,
        args.port,
        args.workers,
        factory=True,
    )
    return EXIT_OK


# ---------------------------------------------------------------- store-init, fetch, demo


def cmd_store_init(args: argparse.Namespace) -> int:
    """Stamp a shared store's epoch markers as old: a new Redis accepts spends at once."""
    from ..stores import open_replay_store

    store = open_replay_store(args.replay_store, setting="--replay-store")
    initialize: Callable[[], int] | None = getattr(store, "initialize", None)
    if initialize is None:
        raise UsageError(
            "--replay-store: a memory:// store lives and dies with its process; only a "
            "shared store (redis://...) is initialised"
        )
    try:
        count = initialize()
    finally:
        close: Callable[[], None] | None = getattr(store, "close", None)
        if close is not None:
            close()
    print(f"{store!r}: {count} epoch markers stamped as old; spends are accepted at once.")
    print(
        "This asserts that no token was spent under this prefix within its replay TTL "
        "before now (a new Redis, or one that lost nothing); on a Redis that lost spends it "
        "lets those tokens be accepted again."
    )
    return EXIT_OK


def cmd_fetch(args: argparse.Namespace) -> int:
    import httpx

    from .demo import IssuanceFailed, TooManyRedirects, follow

    with httpx.Client(timeout=args.timeout, follow_redirects=False) as client:
        try:
            result = follow(client, args.url, issuer_url=args.issuer, verbose=args.verbose)
        except (httpx.HTTPError, TooManyRedirects) as e:
            print(f"pat-middleware fetch: request failed: {e}", file=sys.stderr)
            return EXIT_REFUSED
        except IssuanceFailed as e:
            print(f"pat-middleware fetch: {e}", file=sys.stderr)
            hint = _tls_hint(e)
            if hint:
                print(hint, file=sys.stderr)
            return EXIT_REFUSED
    print(result.body.rstrip("\n"))
    return EXIT_OK if 200 <= result.status < 300 else EXIT_REFUSED


def _tls_hint(error: IssuanceFailed) -> str | None:
    """When issuance failed in the TLS handshake with an https issuer (``--issuer
    https://...``, or the challenge's issuer name, https assumed), the hint that it may
    serve plain http, as a local test issuer does."""
    import ssl

    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    issuer = error.issuer
    if cause is None or issuer.startswith("http://"):
        return None
    url = issuer if "://" in issuer else f"https://{issuer}"
    host = url.split("://", 1)[1].split("/", 1)[0]
    return (
        f"  the TLS handshake with {url.rstrip('/')} failed: if the issuer serves plain http "
        f"(a local test issuer does), pass --issuer http://{host}"
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo()


__all__ = [
    "ORIGIN_SPEC_ENV",
    "SECRET_ENV",
    "cmd_demo",
    "cmd_fetch",
    "cmd_issuer",
    "cmd_origin",
    "cmd_store_init",
    "origin_app_factory",
    "uvicorn_run",
]
