"""The Private State Token commands of ``pat-middleware`` and what ``inspect`` says about PST.

``pst-keygen`` writes a key set, ``pst-issuer`` serves it, and :func:`describe_pst_value` lets
``inspect`` decode key commitments, JWK Sets, ``Sec-Private-State-Token`` values (issue
request, issue response, redeem request, redemption record) and ``Sec-Redemption-Record``.
:mod:`pat_middleware.cli.commands` wires them in; this module keeps that file's additions small.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from pathlib import Path
from typing import Any

from ..core.codec import b64_decode
from ..core.redemption_record import (
    RecordKeySet,
    normalize_origin,
    parse_redemption_record_header,
    peek_redemption_record,
)
from ..errors import DecodeError
from ..issuer.pst_wire import (
    PROTOCOL_VERSION,
    TOKEN_LENGTH,
    IssueRequest,
    IssueResponse,
    KeyCommitment,
    RedeemRequest,
)

#: A compact JWS: three base64url parts, the header JSON (so "eyJ").
_JWS = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_PST_PREFIX = "sec-private-state-token:"
_RR_PREFIX = "sec-redemption-record:"
_MAX_TEXT = 64 * 1024


def _when(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def describe_commitment(commitment: KeyCommitment, now: float) -> dict[str, Any]:
    return {
        "kind": "PST key commitment",
        "protocol_version": PROTOCOL_VERSION,
        "id": commitment.commitment_id,
        "batchsize": commitment.batch_size,
        "keys": [
            {
                "key_id": key.key_id,
                "public_key": key.public_key.compressed.hex(),
                "expiry_us": key.expiry_us,
                "expiry": _when(key.expiry_us / 1_000_000),
                "expired": key.expiry_us <= now * 1_000_000,
            }
            for key in commitment.keys
        ],
    }


def describe_record(text: str) -> dict[str, Any]:
    record = peek_redemption_record(text)
    return {
        "kind": "PST redemption record (signature NOT checked)",
        "length": len(text),
        "alg": "EdDSA",
        "kid": record.kid,
        "iss": record.issuer,
        "redeeming_origin": record.redeeming_origin,
        "key_id": record.key_id,
        "iat": f"{record.issued_at} ({_when(record.issued_at)})",
        "exp": f"{record.expires_at} ({_when(record.expires_at)})",
        "jti": record.record_id,
    }


def describe_pst_bytes(raw: bytes) -> dict[str, Any]:
    """A decoded ``Sec-Private-State-Token`` value: issue request, issue response or redeem
    request, told apart by their exact layouts. Raises :class:`DecodeError` for none."""
    if raw[:2] == TOKEN_LENGTH.to_bytes(2, "big"):
        request = RedeemRequest.from_bytes(raw)
        info: dict[str, Any] = {
            "kind": "PST redeem request",
            "length": len(raw),
            "key_id": request.key_id,
            "nonce": request.nonce.hex(),
        }
        try:
            data = request.parsed_client_data()
            info["redeeming_origin"] = data.redeeming_origin
            info["redemption_timestamp"] = (
                f"{data.redemption_timestamp} ({_when(min(data.redemption_timestamp, 2**35))})"
            )
        except DecodeError as e:
            info["client_data"] = {"error": str(e), "hex": request.client_data.hex()}
        return info
    errors = []
    for parse in (IssueRequest.from_bytes, IssueResponse.from_bytes):
        try:
            message = parse(raw)
        except DecodeError as e:
            errors.append(str(e))
            continue
        if isinstance(message, IssueRequest):
            return {"kind": "PST issue request", "length": len(raw), "count": len(message.blinded)}
        return {
            "kind": "PST issue response",
            "length": len(raw),
            "issued": len(message.evaluated),
            "key_id": message.key_id,
            "proof": message.proof.to_bytes().hex(),
        }
    raise DecodeError("not a PST message: " + "; ".join(errors))


def describe_pst_value(value: str, *, now: float) -> dict[str, Any] | None:
    """What ``inspect`` says about a PST value, or None when it does not look like one."""
    text = value.strip()
    if len(text) > _MAX_TEXT:
        return None
    lower = text.lower()
    if lower.startswith(_RR_PREFIX):
        return _describe_rr_header(text[len(_RR_PREFIX) :])
    if text.startswith('"') and "redemption-record=" in text:
        return _describe_rr_header(text)
    if lower.startswith(_PST_PREFIX):
        text = text[len(_PST_PREFIX) :].strip().strip('"')
        if _JWS.fullmatch(text):
            return describe_record(text)
        return describe_pst_bytes(b64_decode(text))
    if _JWS.fullmatch(text.strip('"')):  # quoted, as some tools show header values
        return describe_record(text.strip('"'))
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            raise DecodeError("not JSON") from None
        if isinstance(obj, dict) and PROTOCOL_VERSION in obj:
            return describe_commitment(KeyCommitment.from_json(obj), now)
        if _by_origin(obj):
            # Chromium's --additional-private-state-token-key-commitments value (what
            # pst-issuer prints): issuer origin -> commitment.
            return {
                "kind": "PST key commitments by issuer",
                "issuers": {
                    origin: describe_commitment(KeyCommitment.from_json(value), now)
                    for origin, value in obj.items()
                },
            }
        if isinstance(obj, dict) and "keys" in obj:
            keys = RecordKeySet.from_json(obj)
            return {
                "kind": "JWK Set (PST redemption record keys)",
                "keys": [{"kid": key.kid, "x": key.to_jwk()["x"]} for key in keys.keys],
            }
        raise DecodeError("JSON that is neither a PST key commitment nor a JWK Set")
    try:  # bare base64 that parses exactly as a PST message
        return describe_pst_bytes(b64_decode(text, max_length=_MAX_TEXT))
    except DecodeError:
        return None


def _by_origin(obj: object) -> bool:
    """True for a non-empty object of origin -> key commitment (by its protocol key)."""
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(
            isinstance(origin, str)
            and origin.startswith(("https://", "http://"))
            and isinstance(value, dict)
            and PROTOCOL_VERSION in value
            for origin, value in obj.items()
        )
    )


def _describe_rr_header(value: str) -> dict[str, Any]:
    entries = parse_redemption_record_header(value.strip())
    out: list[dict[str, Any]] = []
    for entry in entries:
        try:
            out.append({"issuer": entry.issuer, "record": describe_record(entry.record)})
        except DecodeError as e:
            out.append({"issuer": entry.issuer, "record": {"error": str(e)}})
    return {"kind": "Sec-Redemption-Record", "records": out}


# ---------------------------------------------------------------------------- commands


def cmd_pst_keygen(args: argparse.Namespace, usage_error: type[Exception]) -> int:
    from ..issuer.pst_keys import new_key_set

    out = Path(args.out)
    if out.exists() and not args.force:
        raise usage_error(f"{out} exists; pass --force to overwrite")
    keys = new_key_set(lifetime=args.lifetime)
    keys.save(out)
    token_key = keys.token_keys[0]
    print(
        f"wrote PST key set to {out} (mode 0600): token key {token_key.key_id} expires "
        f"{_when(token_key.expiry_us / 1_000_000)}, record key kid {keys.record_kid}"
    )
    return 0


def cmd_pst_rotate(args: argparse.Namespace) -> int:
    """Add a token key to a key set file as Chrome allows (or, with ``--record-key``,
    replace the record signing key), drop expired keys, and write the file back (0600,
    atomically). A rotation Chrome would not take is refused and the file left as it was."""
    from ..errors import ConfigurationError
    from ..issuer.pst_keys import (
        MAX_TOKEN_KEYS,
        MIN_ROTATION_INTERVAL,
        SETTING,
        PSTKeySet,
        drop_expired,
        now_us,
        rotate_record_key,
        rotate_token_key,
    )

    keys = PSTKeySet.load(args.file)
    at = now_us()
    live = keys.unexpired(at)
    expired = [key.key_id for key in keys.token_keys if key.expired(at)]
    if args.record_key:
        rotated = rotate_record_key(drop_expired(keys), keep_for=args.keep_record_key)
        done = (
            f"record signing key replaced: kid {rotated.record_kid} (was {keys.record_kid}, "
            f"still published for {args.keep_record_key} s)"
        )
    else:
        if live:
            newest = max(key.created_us for key in live) / 1_000_000
            allowed = newest + MIN_ROTATION_INTERVAL
            if allowed > at / 1_000_000:
                raise ConfigurationError(
                    SETTING,
                    f"Chrome takes a new token key no sooner than "
                    f"{MIN_ROTATION_INTERVAL // 86_400} days after the newest, made "
                    f"{_when(newest)}: allowed from {_when(allowed)}",
                )
            if len(live) >= MAX_TOKEN_KEYS:
                raise ConfigurationError(
                    SETTING,
                    f"{len(live)} live keys already, Chrome's most; the oldest expires "
                    f"{_when(min(key.expiry_us for key in live) / 1_000_000)}",
                )
        rotated = rotate_token_key(keys, lifetime=args.lifetime, activate_after=args.activate_after)
        new = rotated.token_keys[-1]
        done = (
            f"token key {new.key_id} added: signs from {_when(new.not_before_us / 1_000_000)}, "
            f"expires {_when(new.expiry_us / 1_000_000)}; commitment id {rotated.commitment_id}"
        )
    if expired:
        done += f"; dropped expired token key(s) {', '.join(map(str, expired))}"
    if not args.dry_run:
        rotated.save(args.file)
    print(f"{'would rotate' if args.dry_run else 'rotated'} {args.file}: {done}")
    for key in rotated.token_keys:
        print(
            f"  token key {key.key_id}: signs from {_when(key.not_before_us / 1_000_000)}, "
            f"expires {_when(key.expiry_us / 1_000_000)}"
        )
    if args.dry_run:
        return 0
    if args.record_key:
        print("restart pst-issuer to sign with it (its JWK Set lists both keys)")
    else:
        print(
            "restart pst-issuer to serve it; browsers given "
            "--additional-private-state-token-key-commitments need the new value it prints"
        )
    return 0


def cmd_pst_issuer(args: argparse.Namespace, usage_error: type[Exception]) -> int:
    from ..issuer.pst import PSTIssuer
    from ..issuer.pst_keys import PSTKeySet
    from ..issuer.pst_server import COMMITMENT_PATH, create_pst_issuer_app
    from ..stores import open_replay_store

    origin = args.issuer_origin or f"http://localhost:{args.port}"
    try:
        origin = normalize_origin(origin)
    except DecodeError as e:
        raise usage_error(f"--issuer-origin: {e}") from None
    keys = PSTKeySet.load(args.keys)
    store = open_replay_store(args.replay_store, setting="--replay-store")
    issuer = PSTIssuer(
        keys,
        issuer_origin=origin,
        batch_size=args.batch_size,
        record_lifetime=args.rr_lifetime,
        replay_store=store,
    )
    app = create_pst_issuer_app(issuer, allow_origins=args.allow_origin)
    flag = json.dumps({origin: issuer.commitment().to_json()}, separators=(",", ":"))
    print(f"PST issuer {origin}: {keys!r}; commitment at {origin}{COMMITMENT_PATH}")
    print(f"chromium --additional-private-state-token-key-commitments='{flag}'")
    sys.stdout.flush()
    import uvicorn

    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def cmd_pst_demo(args: argparse.Namespace) -> int:
    """Serve the Private State Token demo until interrupted."""
    from .pst_demo import run_pst_demo

    return run_pst_demo(
        sys.stdout, host=args.host, issuer_port=args.issuer_port, origin_port=args.origin_port
    )


def add_pst_commands(
    sub: Any, positive_int: Any, usage_error: type[Exception]
) -> None:  # sub: argparse's _SubParsersAction
    """Register ``pst-keygen``, ``pst-rotate``, ``pst-issuer`` and ``pst-demo`` on the
    parser."""
    from ..core.redemption_record import DEFAULT_LEEWAY
    from ..issuer.pst import DEFAULT_BATCH_SIZE, DEFAULT_RECORD_LIFETIME
    from ..issuer.pst_keys import DEFAULT_ACTIVATION_DELAY, DEFAULT_KEY_LIFETIME
    from .common import non_negative_int

    p = sub.add_parser("pst-keygen", help="write a new Private State Token key set (JSON, 0600)")
    p.add_argument("--out", required=True, help="key set file to write (mode 0600)")
    p.add_argument(
        "--lifetime",
        type=positive_int,
        default=DEFAULT_KEY_LIFETIME,
        metavar="SECONDS",
        help=f"token key lifetime (default {DEFAULT_KEY_LIFETIME}, 180 days)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=lambda a: cmd_pst_keygen(a, usage_error))

    p = sub.add_parser(
        "pst-rotate",
        help="add a token key to a key set as Chrome allows (no sooner than 60 days after the "
        "newest, at most 6 live keys), expired keys dropped; or replace the record key",
    )
    p.add_argument("file", metavar="FILE", help="key set from pst-keygen (rewritten, mode 0600)")
    p.add_argument(
        "--lifetime",
        type=positive_int,
        default=DEFAULT_KEY_LIFETIME,
        metavar="SECONDS",
        help=f"the new token key's lifetime from when it signs (default {DEFAULT_KEY_LIFETIME}, "
        "180 days)",
    )
    p.add_argument(
        "--activate-after",
        type=non_negative_int,
        default=DEFAULT_ACTIVATION_DELAY,
        metavar="SECONDS",
        help="the new key is published at once and signs from this long after "
        f"(default {DEFAULT_ACTIVATION_DELAY}, 7 days), so browsers hold it first",
    )
    p.add_argument(
        "--record-key",
        action="store_true",
        help="replace the record signing key instead (no token key is added)",
    )
    keep = DEFAULT_RECORD_LIFETIME + DEFAULT_LEEWAY
    p.add_argument(
        "--keep-record-key",
        type=positive_int,
        default=keep,
        metavar="SECONDS",
        help="with --record-key: how long the old record key stays in the JWK Set, at least "
        f"pst-issuer's --rr-lifetime plus the origins' leeway (default {keep})",
    )
    p.add_argument("--dry-run", action="store_true", help="say what would change; write nothing")
    p.set_defaults(func=cmd_pst_rotate)

    p = sub.add_parser(
        "pst-issuer", help="serve a Private State Token issuer (commitment, issuance, redemption)"
    )
    p.add_argument("--keys", required=True, metavar="FILE", help="key set from pst-keygen")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8555, help="port to listen on (default 8555)")
    p.add_argument(
        "--issuer-origin",
        metavar="ORIGIN",
        help="the origin browsers know the issuer by, put into every record "
        "(default http://localhost:PORT)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"tokens per issuance, the commitment's batchsize (1-100, default "
        f"{DEFAULT_BATCH_SIZE})",
    )
    p.add_argument(
        "--rr-lifetime",
        type=positive_int,
        default=DEFAULT_RECORD_LIFETIME,
        metavar="SECONDS",
        help=f"redemption record lifetime (default {DEFAULT_RECORD_LIFETIME})",
    )
    p.add_argument(
        "--replay-store",
        default="memory://",
        metavar="URL",
        help="where spent token nonces are kept: memory:// (default) or redis://HOST:PORT/DB",
    )
    p.add_argument(
        "--allow-origin",
        action="append",
        metavar="ORIGIN",
        help="page origin allowed to call issuance and redemption (CORS); repeatable; default: any",
    )
    p.set_defaults(func=lambda a: cmd_pst_issuer(a, usage_error))

    p = sub.add_parser(
        "pst-demo",
        help="serve a PST issuer and an origin that accepts its records, with pages to "
        "click through in Chromium (prints the command line)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--issuer-port", type=int, default=8555, help="the issuer's port (default 8555)")
    p.add_argument("--origin-port", type=int, default=8000, help="the origin's port (default 8000)")
    p.set_defaults(func=cmd_pst_demo)


__all__ = [
    "add_pst_commands",
    "describe_pst_bytes",
    "describe_pst_value",
    "describe_record",
]
