"""The ``pat-middleware`` command line: the parser and :func:`main`.

The commands live beside this module: :mod:`.keys` (``keygen``), :mod:`.inspect`
(``verify``, ``inspect``), :mod:`.servers` (``issuer``, ``origin``, ``store-init``,
``fetch``, ``demo``) and :mod:`.pst` (the Private State Token commands).

Exit codes: 0 success, 1 the input was examined and refused (a bad token, bad key file),
2 usage errors (argparse). Errors print one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from .._version import __version__
from ..errors import PrivateTokenError
from ..settings import SETTINGS_ENV
from ..tokens.registry import default_registry
from .check import cmd_check
from .common import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    UsageError,
    non_negative_int,
    positive_int,
)
from .inspect import cmd_inspect, cmd_verify, inspect_value
from .keys import cmd_keygen
from .keys import load_private_keys as _load_private_keys
from .keys import split_not_before as _split_not_before
from .servers import (
    cmd_demo,
    cmd_fetch,
    cmd_issuer,
    cmd_origin,
    cmd_store_init,
)
from .servers import uvicorn_run as _uvicorn_run


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"pat-middleware: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pat-middleware",
        description="Private Access Tokens (Privacy Pass) for web origins.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    types = sorted(default_registry().values())
    p = sub.add_parser("keygen", help="write a new issuer private key (PEM, PKCS#8)")
    p.add_argument("--out", required=True, help="PEM file to write (mode 0600)")
    p.add_argument(
        "--token-type",
        type=int,
        choices=types,
        default=2,
        help="2: RSA (Blind RSA, default); 1: EC P-384 (VOPRF, for joint origin and issuer)",
    )
    p.add_argument("--bits", type=int, choices=(2048, 4096), help="type 2 only (default 2048)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("verify", help="verify one token against a challenge and key")
    key_source = p.add_mutually_exclusive_group(required=True)
    key_source.add_argument("--token-key", help="issuer token-key, base64url (type 2)")
    key_source.add_argument(
        "--issuer-private-key",
        metavar="FILE.pem",
        help="the issuer's private key, for a type that only it verifies (type 1)",
    )
    p.add_argument(
        "--challenge",
        required=True,
        help="TokenChallenge, base64url, or a whole WWW-Authenticate value (with or without "
        "the header name; the challenge the token answers is used)",
    )
    p.add_argument(
        "--token",
        required=True,
        help="Token, base64url, or a whole Authorization value (with or without the header name)",
    )
    p.add_argument("--allow-4096", action="store_true", help="accept 4096-bit issuer keys")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "inspect",
        help="decode a challenge, token, token-key, TokenRequest, TokenResponse, PEM key or "
        "header value, or a PST commitment, JWK Set, Sec-Private-State-Token or "
        "Sec-Redemption-Record value ('-': stdin)",
    )
    p.add_argument(
        "value",
        help="the value to decode: base64(url), a whole header (with or without its name), "
        "a PEM key, JSON, or '-' to read it from stdin",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("issuer", help="serve a test issuer (directory + issuance) with uvicorn")
    p.add_argument(
        "--key",
        action="append",
        metavar="FILE[:NOT_BEFORE]",
        help="issuer private key PEM (RSA: type 2, EC P-384: type 1), optionally with a "
        "not-before (Unix seconds, or +SECONDS from start); repeatable, types may be mixed; "
        "listed newest not-before first",
    )
    p.add_argument(
        "--rotate-every",
        type=positive_int,
        metavar="SECONDS",
        help="generate keys in memory: a new preferred key every SECONDS, published one "
        "period ahead with its not-before (instead of --key)",
    )
    p.add_argument(
        "--overlap",
        type=non_negative_int,
        metavar="SECONDS",
        help="with --rotate-every: keep a replaced key published and signing this long "
        "(default: one period)",
    )
    p.add_argument(
        "--directory-max-age",
        type=non_negative_int,
        default=86400,
        metavar="SECONDS",
        help="Cache-Control max-age of the directory (with rotation, never past the next "
        "change; default 86400)",
    )
    p.add_argument("--name", required=True, help="issuer name (host[:port]) in challenges")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=8001, help="port to listen on (default %(default)s)")
    p.add_argument("--allow-4096", action="store_true", help="accept 4096-bit keys")
    p.set_defaults(func=cmd_issuer)

    p = sub.add_parser("origin", help="serve a demo origin whose /protected needs a token")
    p.add_argument(
        "--issuer-name",
        help="issuer name in challenges (required unless only --pst-issuer is given)",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--token-key", help="issuer token-key, base64url SPKI (type 2)")
    source.add_argument(
        "--issuer-directory",
        metavar="URL",
        help="fetch (and keep fetching) the issuer's keys from its directory: its URL, or "
        "the issuer's base URL; http only on loopback",
    )
    p.add_argument(
        "--issuer-private-key",
        metavar="FILE.pem",
        help="the issuer's type-1 (VOPRF P-384) private key: challenge with type 1 and verify "
        "type-1 tokens (a joint origin and issuer); may go with --token-key",
    )
    p.add_argument(
        "--pst-issuer",
        action="append",
        metavar="URL",
        help="a Private State Token issuer origin whose redemption records also pass "
        "/protected (its record keys fetched from it); repeatable",
    )
    p.add_argument("--config", help="TOML settings file merged under the demo defaults")
    p.add_argument(
        "--replay-store", metavar="URL", help="replay store URL (wins over the config's)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default %(default)s; more than 1 needs a shared store, "
        "e.g. redis://)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default %(default)s)")
    p.set_defaults(func=cmd_origin)

    p = sub.add_parser(
        "store-init",
        help="mark a new shared replay store as holding no spends (no wait before the "
        "first tokens are accepted)",
    )
    p.add_argument(
        "--replay-store",
        required=True,
        metavar="URL",
        help="the store's URL, as in the settings (redis://, rediss://, unix://)",
    )
    p.set_defaults(func=cmd_store_init)

    p = sub.add_parser("fetch", help="GET a URL, answering PrivateToken challenges")
    p.add_argument("url", help="the URL to GET (a protected page); redirects are followed")
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print the whole WWW-Authenticate challenge and the Authorization sent (what "
        "verify and inspect take)",
    )
    p.add_argument("--issuer", help="issuer base URL (default: https://<issuer_name>)")
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="per-request timeout (default %(default)g)",
    )
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser(
        "check",
        help="validate a settings file for CI: a summary and exit 0, or one line per problem "
        "naming the setting and exit 1; --connect also reaches the replay store, issuer "
        "directories and PST record-key sets",
    )
    p.add_argument(
        "settings",
        nargs="?",
        metavar="SETTINGS",
        help=f"the TOML settings file (default: ${SETTINGS_ENV})",
    )
    p.add_argument(
        "--connect",
        action="store_true",
        help="also reach what the settings name, as start-up does: the replay store (PING "
        "for Redis, nothing spent; other stores opened and closed), every issuer directory "
        "and PST record-key set (fetched once); each reported",
    )
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("demo", help="run issuer, origin and client on loopback, step by step")
    p.set_defaults(func=cmd_demo)

    from .pst import add_pst_commands

    add_pst_commands(sub, positive_int, UsageError)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UsageError as e:
        print(f"pat-middleware {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (PrivateTokenError, OSError) as e:
        print(f"pat-middleware {args.command}: {e}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130


__all__ = [
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "UsageError",
    "_load_private_keys",
    "_split_not_before",
    "_uvicorn_run",
    "build_parser",
    "inspect_value",
    "main",
]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
