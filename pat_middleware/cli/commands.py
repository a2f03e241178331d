"""The ``pat-middleware`` command line.

Exit codes: 0 success, 1 the input was examined and refused (a bad token, bad key file),
2 usage errors (argparse). Errors print one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ..core.codec import b64_decode
from ..core.headers import (
    DEFAULT_MAX_WWW_AUTHENTICATE_LENGTH,
    parse_auth_items,
    parse_authorization,
    parse_www_authenticate,
)
from ..core.verify import KeyRing, TrustedKey, verify_token
from ..core.wire import (
    AUTHENTICATOR_INPUT_LENGTH,
    GREASE_TOKEN_TYPES,
    TOKEN_TYPE_BLIND_RSA,
    TOKEN_TYPE_VOPRF,
    Token,
    TokenChallenge,
    peek_token_type,
)
from ..errors import DecodeError, PrivateTokenError, TokenError
from ..tokens.blind_rsa import IssuerKey

if TYPE_CHECKING:
    from ..settings import Settings

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2

TOKEN_TYPE_NAMES = {
    TOKEN_TYPE_VOPRF: "VOPRF (P-384, SHA-384)",
    TOKEN_TYPE_BLIND_RSA: "Blind RSA (RSABSSA-SHA384-PSS-Deterministic)",
}


class UsageError(Exception):
    """Bad command-line input: exit 2."""


def _type_name(token_type: int) -> str:
    if token_type in GREASE_TOKEN_TYPES:
        return "grease (reserved)"
    return TOKEN_TYPE_NAMES.get(token_type, "unknown")


# --------------------------------------------------------------------------------- keygen


def cmd_keygen(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from ..tokens.blind_rsa import encode_pss_spki

    out = Path(args.out)
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists; pass --force to overwrite")
    private = rsa.generate_private_key(public_exponent=65537, key_size=args.bits)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    key = IssuerKey.from_spki(encode_pss_spki(private.public_key()), allow_4096=True)
    print(f"wrote RSA-{args.bits} issuer private key to {out} (mode 0600)")
    print(f"token_key_id: {key.token_key_id.hex()}")
    print("token-key (base64url RSASSA-PSS SPKI):")
    print(key.token_key)
    return EXIT_OK


# --------------------------------------------------------------------------------- verify


def _decode_arg(value: str, what: str) -> bytes:
    try:
        return b64_decode(value, max_length=8192)
    except DecodeError as e:
        raise UsageError(f"--{what}: {e}") from e


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        key = IssuerKey.from_base64(args.token_key, allow_4096=args.allow_4096)
    except DecodeError as e:
        raise UsageError(f"--token-key: {e}") from e
    try:
        challenge = TokenChallenge.from_bytes(_decode_arg(args.challenge, "challenge"))
    except DecodeError as e:
        raise UsageError(f"--challenge: {e}") from e
    try:
        raw = b64_decode(args.token, max_length=8192)
    except DecodeError as e:
        print(f"invalid: malformed: token is not base64: {e}")
        return EXIT_REFUSED
    ring = KeyRing([TrustedKey(challenge.issuer_name, key)])
    try:
        result = verify_token(raw, keys=ring, challenges=[challenge])
    except TokenError as e:
        print(f"invalid: {e.reason.value}: {e.detail}")
        return EXIT_REFUSED
    print("valid")
    print(f"  issuer:       {result.issuer_name}")
    print(f"  token type:   0x{result.token_type:04x} {_type_name(result.token_type)}")
    print(f"  token_key_id: {result.token_key_id.hex()}")
    print(f"  key size:     {key.modulus_bits} bits (Nk={key.authenticator_length})")
    print(f"  challenge:    {challenge.digest.hex()}")
    return EXIT_OK


# -------------------------------------------------------------------------------- inspect


def describe_challenge(raw: bytes) -> dict[str, Any]:
    token_type = peek_token_type(raw) if len(raw) >= 2 else None
    info: dict[str, Any] = {"kind": "TokenChallenge", "length": len(raw)}
    if token_type is not None:
        info["token_type"] = token_type
        info["token_type_name"] = _type_name(token_type)
    if token_type in GREASE_TOKEN_TYPES:
        info["note"] = "grease challenge: random body, not parsed"
        return info
    challenge = TokenChallenge.from_bytes(raw)
    info.update(
        issuer_name=challenge.issuer_name,
        redemption_context=challenge.redemption_context.hex(),
        origin_info=list(challenge.origin_info),
        digest=challenge.digest.hex(),
    )
    return info


def describe_token(raw: bytes, key: IssuerKey | None = None) -> dict[str, Any]:
    token_type = peek_token_type(raw)
    info: dict[str, Any] = {
        "kind": "Token",
        "length": len(raw),
        "token_type": token_type,
        "token_type_name": _type_name(token_type),
    }
    if len(raw) < AUTHENTICATOR_INPUT_LENGTH:
        raise DecodeError(f"token is {len(raw)} bytes, shorter than its 98-byte header")
    nk = key.authenticator_length if key else len(raw) - AUTHENTICATOR_INPUT_LENGTH
    token = Token.from_bytes(raw, nk)
    info.update(
        nonce=token.nonce.hex(),
        challenge_digest=token.challenge_digest.hex(),
        token_key_id=token.token_key_id.hex(),
        nk=nk,
        authenticator=token.authenticator.hex(),
    )
    if token_type == TOKEN_TYPE_BLIND_RSA and nk not in (256, 512):
        info["note"] = f"Nk={nk} matches neither a 2048- nor a 4096-bit key"
    return info


def describe_token_key(raw: bytes, token_type: int = TOKEN_TYPE_BLIND_RSA) -> dict[str, Any]:
    if token_type != TOKEN_TYPE_BLIND_RSA:
        info: dict[str, Any] = {
            "kind": "token-key",
            "length": len(raw),
            "token_type": token_type,
            "token_key_id": hashlib.sha256(raw).hexdigest(),
        }
        if token_type == TOKEN_TYPE_VOPRF and len(raw) != 49:
            info["note"] = "a type-1 key is a 49-byte compressed P-384 point"
        return info
    key = IssuerKey.from_spki(raw, allow_4096=True)
    return {
        "kind": "token-key",
        "length": len(raw),
        "algorithm": "RSASSA-PSS (SHA-384, MGF1-SHA-384, salt 48)",
        "modulus_bits": key.modulus_bits,
        "nk": key.authenticator_length,
        "token_key_id": key.token_key_id.hex(),
    }


def _describe_bytes(raw: bytes) -> dict[str, Any]:
    """Guess what a decoded value is: a token-key, a token or a challenge."""
    errors: list[str] = []
    guesses: list[Callable[[bytes], dict[str, Any]]] = []
    if raw[:1] == b"\x30":
        guesses.append(describe_token_key)
    if len(raw) >= AUTHENTICATOR_INPUT_LENGTH and len(raw) - AUTHENTICATOR_INPUT_LENGTH in (
        48,
        256,
        512,
    ):
        guesses.append(describe_token)
    guesses.append(describe_challenge)
    if describe_token not in guesses and len(raw) > AUTHENTICATOR_INPUT_LENGTH:
        guesses.append(describe_token)
    for guess in guesses:
        try:
            return guess(raw)
        except DecodeError as e:
            errors.append(f"not a {guess.__name__.removeprefix('describe_')}: {e}")
    raise DecodeError("; ".join(errors))


def inspect_value(value: str) -> dict[str, Any]:
    """Describe a challenge, token, token-key, or a whole header value; or a Private State
    Token value (key commitment, JWK Set, Sec-Private-State-Token, Sec-Redemption-Record)."""
    import time

    from .pst import describe_pst_value

    pst = describe_pst_value(value, now=time.time())
    if pst is not None:
        return pst
    text = value.strip()
    for prefix in ("www-authenticate:", "authorization:"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :].strip()
    items = parse_auth_items(text, max_length=DEFAULT_MAX_WWW_AUTHENTICATE_LENGTH)
    private = [i for i in items if i.is_private_token]
    if private:
        if any("token" in i.params for i in private):
            tokens = parse_authorization(text, max_length=DEFAULT_MAX_WWW_AUTHENTICATE_LENGTH)
            return {"kind": "Authorization", "tokens": [describe_token(t) for t in tokens]}
        out: list[dict[str, Any]] = []
        for params in parse_www_authenticate(text):
            entry: dict[str, Any] = {}
            try:
                entry["challenge"] = describe_challenge(params.challenge)
            except DecodeError as e:
                entry["challenge"] = {"kind": "TokenChallenge", "error": str(e)}
            if params.token_key is not None:
                key_type = entry["challenge"].get("token_type", TOKEN_TYPE_BLIND_RSA)
                try:
                    entry["token_key"] = describe_token_key(params.token_key, key_type)
                except DecodeError as e:
                    entry["token_key"] = {"kind": "token-key", "error": str(e)}
            entry["max_age"] = params.max_age
            out.append(entry)
        if not out:
            raise DecodeError("PrivateToken challenge without a decodable challenge parameter")
        return {"kind": "WWW-Authenticate", "challenges": out}
    if " " in text or "=" in text.rstrip("="):
        raise DecodeError("no PrivateToken challenge or credential in this header value")
    return _describe_bytes(b64_decode(text, max_length=DEFAULT_MAX_WWW_AUTHENTICATE_LENGTH))


def _print_tree(value: Any, indent: int = 0) -> None:
    pad = "  " * indent
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, dict | list) and v:
                print(f"{pad}{k}:")
                _print_tree(v, indent + 1)
            else:
                print(f"{pad}{k}: {v if v not in ('', [], None) else '(empty)'}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            print(f"{pad}[{i}]")
            _print_tree(v, indent + 1)
    else:
        print(f"{pad}{value}")


def cmd_inspect(args: argparse.Namespace) -> int:
    value = args.value if args.value != "-" else sys.stdin.read()
    info = inspect_value(value)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_tree(info)
    return EXIT_OK


# --------------------------------------------------------------------------------- issuer


def _split_not_before(spec: str, now: int) -> tuple[str, int | None]:
    """``FILE``, ``FILE:UNIX_SECONDS`` or ``FILE:+SECONDS`` (from now) -> (file, not-before)."""
    path, sep, suffix = spec.rpartition(":")
    if not sep or not suffix.lstrip("+").isdigit() or len(suffix) > 12:
        return spec, None
    return path, now + int(suffix) if suffix.startswith("+") else int(suffix)


def _load_private_keys(specs: Sequence[str]) -> list[Any]:
    """Issuer keys from ``--key FILE[:NOT_BEFORE]``, newest not-before first (the directory
    order: clients use the first key whose not-before has passed)."""
    import time

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from ..issuer import SigningKey

    now = int(time.time())
    keys: list[SigningKey] = []
    for spec in specs:
        path, not_before = _split_not_before(spec, now)
        try:
            data = Path(path).read_bytes()
            key = serialization.load_pem_private_key(data, password=None)
        except OSError as e:
            raise UsageError(f"--key {path}: {e.strerror}") from e
        except (ValueError, TypeError) as e:
            raise UsageError(f"--key {path}: not an unencrypted PEM private key") from e
        if not isinstance(key, rsa.RSAPrivateKey):
            raise UsageError(f"--key {path}: not an RSA key")
        keys.append(SigningKey(key, not_before))
    keys.sort(key=lambda k: -1 if k.not_before is None else k.not_before, reverse=True)
    return keys


def _uvicorn_run(
    app: Any, host: str, port: int, workers: int = 1, *, factory: bool = False
) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="info", workers=workers, factory=factory)


def cmd_issuer(args: argparse.Namespace) -> int:
    import time

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
        key = served.preferred_key(now)
        count = f"a new key every {served.period} s (overlap {served.overlap} s)"
    else:
        served = Issuer(args.name, *_load_private_keys(args.key), allow_4096=args.allow_4096)
        key = served.preferred_key_at(now)
        count = f"{len(served.public_keys)} key(s)"
    print(f"issuer {args.name}: {count}; preferred key id {key.token_key_id.hex()}")
    print(f"token-key: {key.token_key}")
    print(f"directory: http://{args.host}:{args.port}/.well-known/private-token-issuer-directory")
    sys.stdout.flush()
    app = create_issuer_app(served, directory_max_age=args.directory_max_age)
    _uvicorn_run(app, args.host, args.port)
    return EXIT_OK


#: Environment variable carrying the origin's command-line choices to its worker processes.
ORIGIN_SPEC_ENV = "PAT_ORIGIN_SPEC"
#: Environment variable holding the origin's secret (wins over the config file's).
SECRET_ENV = "PAT_SECRET"  # noqa: S105 - a variable name, not a secret
_SECRET_KEYS = ("secret", "secret_env", "secret_file")


def _origin_base(spec: dict[str, Any]) -> dict[str, Any]:
    """The settings mapping from ``--config`` and ``--replay-store``."""
    import tomllib

    base: dict[str, Any] = {}
    config = spec.get("config")
    if config:
        try:
            loaded = tomllib.loads(Path(config).read_text(encoding="utf-8"))
        except OSError as e:
            raise UsageError(f"--config {config}: {e.strerror}") from e
        except tomllib.TOMLDecodeError as e:
            raise UsageError(f"--config {config}: not valid TOML: {e}") from e
        base = dict(loaded.get("pat_middleware", loaded))
    if spec.get("replay_store"):
        base["replay_store"] = spec["replay_store"]
    return base


def _origin_settings(spec: dict[str, Any]) -> Settings:
    """The demo origin's settings from its command-line choices (also run in each worker)."""
    from .demo import origin_settings

    return origin_settings(
        spec["issuer_name"],
        spec["token_key"],
        directory=spec.get("issuer_directory"),
        base=_origin_base(spec),
        secret=os.environ.get(SECRET_ENV),
    )


def _origin_app_factory() -> Any:
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
    spec: dict[str, Any] = {
        "issuer_name": args.issuer_name,
        "token_key": args.token_key,
        "issuer_directory": args.issuer_directory,
        "config": str(Path(args.config).resolve()) if args.config else None,
        "replay_store": args.replay_store,
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
    print(
        f"origin on http://{args.host}:{args.port}: GET / is public, GET /protected needs "
        f"a token from {args.issuer_name}; replay store {store.split('://', 1)[0]}://, "
        f"{args.workers} worker(s)"
    )
    sys.stdout.flush()
    if args.workers == 1:
        _uvicorn_run(create_origin_app(policy), args.host, args.port)
        return EXIT_OK
    policy.close()  # each worker builds its own
    os.environ[ORIGIN_SPEC_ENV] = json.dumps(spec)
    _uvicorn_run(
        "pat_middleware.cli.commands:_origin_app_factory",
        args.host,
        args.port,
        args.workers,
        factory=True,
    )
    return EXIT_OK


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

    from .demo import follow

    with httpx.Client(timeout=args.timeout, follow_redirects=False) as client:
        try:
            result = follow(client, args.url, issuer_url=args.issuer)
        except httpx.HTTPError as e:
            print(f"pat-middleware fetch: request failed: {e}", file=sys.stderr)
            return EXIT_REFUSED
    print(result.body.rstrip("\n"))
    return EXIT_OK if 200 <= result.status < 300 else EXIT_REFUSED


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo()


# ----------------------------------------------------------------------------------- main


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    if not text.isdigit() or len(text) > 9:
        raise argparse.ArgumentTypeError(f"expected whole seconds, got {text!r}")
    return int(text)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"pat-middleware: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pat-middleware",
        description="Private Access Tokens (Privacy Pass) for web origins.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("keygen", help="write a new RSA issuer private key (PEM)")
    p.add_argument("--out", required=True, help="PEM file to write (mode 0600)")
    p.add_argument("--bits", type=int, choices=(2048, 4096), default=2048)
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("verify", help="verify one token against a challenge and key")
    p.add_argument("--token-key", required=True, help="issuer token-key, base64url SPKI")
    p.add_argument("--challenge", required=True, help="TokenChallenge, base64url")
    p.add_argument("--token", required=True, help="Token, base64url")
    p.add_argument("--allow-4096", action="store_true", help="accept 4096-bit issuer keys")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "inspect",
        help="decode a challenge, token, token-key or header value, or a PST commitment, "
        "JWK Set, Sec-Private-State-Token or Sec-Redemption-Record value ('-': stdin)",
    )
    p.add_argument("value")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("issuer", help="serve a test issuer (directory + issuance) with uvicorn")
    p.add_argument(
        "--key",
        action="append",
        metavar="FILE[:NOT_BEFORE]",
        help="issuer private key PEM, optionally with a not-before (Unix seconds, or +SECONDS "
        "from start); repeatable; listed newest not-before first",
    )
    p.add_argument(
        "--rotate-every",
        type=_positive_int,
        metavar="SECONDS",
        help="generate keys in memory: a new preferred key every SECONDS, published one "
        "period ahead with its not-before (instead of --key)",
    )
    p.add_argument(
        "--overlap",
        type=_non_negative_int,
        metavar="SECONDS",
        help="with --rotate-every: keep a replaced key published and signing this long "
        "(default: one period)",
    )
    p.add_argument(
        "--directory-max-age",
        type=_non_negative_int,
        default=86400,
        metavar="SECONDS",
        help="Cache-Control max-age of the directory (with rotation, never past the next "
        "change; default 86400)",
    )
    p.add_argument("--name", required=True, help="issuer name (host[:port]) in challenges")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--allow-4096", action="store_true", help="accept 4096-bit keys")
    p.set_defaults(func=cmd_issuer)

    p = sub.add_parser("origin", help="serve a demo origin whose /protected needs a token")
    p.add_argument("--issuer-name", required=True, help="issuer name in challenges")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--token-key", help="issuer token-key, base64url SPKI")
    source.add_argument(
        "--issuer-directory",
        metavar="URL",
        help="fetch (and keep fetching) the issuer's keys from its directory: its URL, or "
        "the issuer's base URL; http only on loopback",
    )
    p.add_argument("--config", help="TOML settings file merged under the demo defaults")
    p.add_argument(
        "--replay-store", metavar="URL", help="replay store URL (wins over the config's)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (more than 1 needs a shared store, e.g. redis://)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
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
    p.add_argument("url")
    p.add_argument("--issuer", help="issuer base URL (default: https://<issuer_name>)")
    p.add_argument("--timeout", type=float, default=10.0)
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("demo", help="run issuer, origin and client on loopback, step by step")
    p.set_defaults(func=cmd_demo)

    from .pst import add_pst_commands

    add_pst_commands(sub, _positive_int, UsageError)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
