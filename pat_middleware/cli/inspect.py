"""``pat-middleware verify`` and ``inspect``: one token checked against a challenge and key,
and any Privacy Pass value decoded field by field, for every registered token type."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..core.codec import b64_decode, b64url_encode
from ..core.headers import (
    AUTHORIZATION,
    DEFAULT_MAX_WWW_AUTHENTICATE_LENGTH,
    WWW_AUTHENTICATE,
    parse_auth_items,
    parse_authorization,
    parse_www_authenticate,
)
from ..core.keyring import KeyRing, TrustedKey
from ..core.keys import PublishedKey, TokenKey
from ..core.verify import verify_token
from ..core.wire import (
    AUTHENTICATOR_INPUT_LENGTH,
    CHALLENGE_DIGEST_OFFSET,
    GREASE_TOKEN_TYPES,
    TOKEN_KEY_ID_OFFSET,
    TOKEN_TYPE_BLIND_RSA,
    TOKEN_TYPE_VOPRF,
    Token,
    TokenChallenge,
    peek_token_type,
)
from ..errors import DecodeError, TokenError
from ..tokens.blind_rsa import IssuerKey, encode_pss_spki
from ..tokens.registry import default_registry
from ..tokens.voprf import VOPRF_PUBLIC_KEY_LENGTH
from .common import EXIT_OK, EXIT_REFUSED, UsageError, decode_arg, read_private_key, type_name

#: Token and TokenRequest sizes by token type, for telling what a value is.
_TOKEN_NKS = (48, 256, 512)
_BLIND_RSA_REQUEST_LENGTHS = (3 + 256, 3 + 512)
_BLIND_RSA_RESPONSE_LENGTHS = (256, 512)
_VOPRF_REQUEST_LENGTH = 3 + VOPRF_PUBLIC_KEY_LENGTH
_VOPRF_RESPONSE_LENGTH = VOPRF_PUBLIC_KEY_LENGTH + 96


# --------------------------------------------------------------------------------- verify


def _verifying_key(args: argparse.Namespace, challenge: TokenChallenge) -> TokenKey:
    """The key from ``--token-key`` (read as the challenge's token type) or
    ``--issuer-private-key``."""
    registry = default_registry()
    if args.issuer_private_key is not None:
        entry, _, pem = read_private_key(args.issuer_private_key, "--issuer-private-key")
        if entry.publicly_verifiable:
            raise UsageError(
                f"--issuer-private-key: a type-{entry.value} ({entry.name}) key; tokens of "
                "that type verify with the public key: pass --token-key"
            )
        try:
            return entry.load_private_key(pem)
        except DecodeError as e:
            raise UsageError(f"--issuer-private-key: {e}") from e
    public = registry.get(challenge.token_type)
    if public is None:
        raise UsageError(f"--challenge: token type {challenge.token_type} is not registered")
    try:
        key = public.load_public_key_text(args.token_key, allow_4096=args.allow_4096)
    except DecodeError as e:
        raise UsageError(f"--token-key: not a type-{public.value} token-key: {e}") from e
    if not isinstance(key, TokenKey):
        raise UsageError(
            f"--token-key: a type-{public.value} ({public.name}) key verifies nothing without "
            "the issuer's private key; pass --issuer-private-key FILE.pem"
        )
    return key


def header_value(text: str, name: str) -> str | None:
    """``text`` as the value of header ``name`` when it is one (with or without the
    ``Name:`` in front), or None when it is a bare base64 value: a header value has a
    space or an '=' before its end, which base64 has not."""
    value = text.strip()
    if value.lower().startswith(name.lower() + ":"):
        return value[len(name) + 1 :].strip()
    if any(c in value for c in " \t") or "=" in value.rstrip("="):
        return value
    return None


def read_challenges(text: str, flag: str = "--challenge") -> list[TokenChallenge]:
    """The challenges of ``--challenge``: a bare base64 TokenChallenge, or a whole
    ``WWW-Authenticate`` value (every PrivateToken challenge in it that decodes; grease and
    other schemes are skipped, as a client skips them)."""
    header = header_value(text, WWW_AUTHENTICATE)
    if header is None:
        try:
            return [TokenChallenge.from_bytes(decode_arg(text, flag))]
        except DecodeError as e:
            raise UsageError(f"{flag}: {e}") from e
    try:
        params = parse_www_authenticate(header, max_length=DEFAULT_MAX_WWW_AUTHENTICATE_LENGTH)
    except DecodeError as e:
        raise UsageError(f"{flag}: {e}") from e
    challenges: list[TokenChallenge] = []
    for item in params:
        try:
            challenges.append(TokenChallenge.from_bytes(item.challenge))
        except DecodeError:
            continue  # a grease challenge, or one of no shape we know
    if not challenges:
        raise UsageError(f"{flag}: no PrivateToken challenge that decodes in this header value")
    return challenges


def read_token(text: str, flag: str = "--token") -> bytes:
    """The token of ``--token``: bare base64, or a whole ``Authorization`` value holding
    one PrivateToken credential. Raises :class:`DecodeError` for a token that is not
    base64 (the peer's fault: ``invalid: malformed``), :class:`UsageError` for a header
    value without exactly one token."""
    header = header_value(text, AUTHORIZATION)
    if header is None:
        return b64_decode(text, max_length=8192)
    tokens = parse_authorization(header, max_length=DEFAULT_MAX_WWW_AUTHENTICATE_LENGTH)
    if not tokens:
        raise UsageError(f"{flag}: no PrivateToken credential in this header value")
    if len(tokens) > 1:
        raise UsageError(f"{flag}: {len(tokens)} tokens in this header value; pass one")
    return tokens[0]


def _answered(raw: bytes, challenges: list[TokenChallenge]) -> TokenChallenge:
    """The challenge a token answers (by its challenge digest), else the first of its
    token type, else the first: the one whose issuer and type the key is read for."""
    digest = raw[CHALLENGE_DIGEST_OFFSET:TOKEN_KEY_ID_OFFSET]
    token_type = peek_token_type(raw) if len(raw) >= 2 else None
    for challenge in challenges:
        if challenge.digest == digest:
            return challenge
    return next((c for c in challenges if c.token_type == token_type), challenges[0])


def cmd_verify(args: argparse.Namespace) -> int:
    challenges = read_challenges(args.challenge)
    try:
        raw = read_token(args.token)
    except DecodeError as e:
        print(f"invalid: malformed: token is not base64: {e}")
        return EXIT_REFUSED
    challenge = _answered(raw, challenges)
    key = _verifying_key(args, challenge)
    ring = KeyRing([TrustedKey(challenge.issuer_name, key)])
    try:
        result = verify_token(raw, keys=ring, challenges=challenges)
    except TokenError as e:
        print(f"invalid: {e.reason.value}: {e.detail}")
        return EXIT_REFUSED
    size = f"{key.modulus_bits} bits, " if isinstance(key, IssuerKey) else ""
    print("valid")
    print(f"  issuer:       {result.issuer_name}")
    print(f"  token type:   0x{result.token_type:04x} {type_name(result.token_type)}")
    print(f"  token_key_id: {result.token_key_id.hex()}")
    print(f"  key:          {size}Nk={key.authenticator_length}")
    print(f"  challenge:    {challenge.digest.hex()}")
    return EXIT_OK


# -------------------------------------------------------------------------------- inspect


def describe_challenge(raw: bytes) -> dict[str, Any]:
    token_type = peek_token_type(raw) if len(raw) >= 2 else None
    info: dict[str, Any] = {"kind": "TokenChallenge", "length": len(raw)}
    if token_type is not None:
        info["token_type"] = token_type
        info["token_type_name"] = type_name(token_type)
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


def describe_token(raw: bytes, key: PublishedKey | None = None) -> dict[str, Any]:
    token_type = peek_token_type(raw)
    info: dict[str, Any] = {
        "kind": "Token",
        "length": len(raw),
        "token_type": token_type,
        "token_type_name": type_name(token_type),
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
    entry = default_registry().get(token_type)
    if token_type == TOKEN_TYPE_BLIND_RSA and nk not in (256, 512):
        info["note"] = f"Nk={nk} matches neither a 2048- nor a 4096-bit key"
    elif entry is not None and token_type != TOKEN_TYPE_BLIND_RSA and nk != entry.nk:
        info["note"] = f"Nk={nk}; a type-{token_type} token has Nk={entry.nk}"
    return info


def describe_token_key(raw: bytes, token_type: int = TOKEN_TYPE_BLIND_RSA) -> dict[str, Any]:
    entry = default_registry().get(token_type)
    if entry is None:
        raise DecodeError(f"token type {token_type} is not registered")
    info: dict[str, Any] = {
        "kind": "token-key",
        "length": len(raw),
        "token_type": token_type,
        "token_type_name": entry.name,
    }
    try:
        key = entry.load_public_key(raw, allow_4096=True)
    except DecodeError as e:
        if token_type == TOKEN_TYPE_BLIND_RSA:
            raise
        # RFC 9577 A.2 vector 2 publishes 48 random bytes as a type-1 key: say so, go on.
        info.update(token_key_id=hashlib.sha256(raw).hexdigest(), note=str(e))
        return info
    info.update(
        nk=key.authenticator_length,
        token_key_id=key.token_key_id.hex(),
        publicly_verifiable=entry.publicly_verifiable,
    )
    if isinstance(key, IssuerKey):
        info.update(
            algorithm="RSASSA-PSS (SHA-384, MGF1-SHA-384, salt 48)",
            modulus_bits=key.modulus_bits,
        )
    elif token_type == TOKEN_TYPE_VOPRF:
        info["algorithm"] = "VOPRF P384-SHA384 (RFC 9497), compressed public key"
    return info


def describe_rsa_encryption_key(raw: bytes) -> dict[str, Any]:
    """An RSA public key as a plain rsaEncryption SPKI (what exporting a key pair's public
    key gives): not a type-2 token-key, which is the id-RSASSA-PSS form. Says so, as the
    settings loader does, and shows the key in that form. Raises :class:`DecodeError` for
    anything else."""
    try:
        loaded = serialization.load_der_public_key(raw)
    except (ValueError, UnsupportedAlgorithm):
        raise DecodeError("not an RSA public key") from None
    # cryptography writes an RSA public key as the rsaEncryption SPKI: the same bytes.
    if not isinstance(loaded, rsa.RSAPublicKey) or raw != loaded.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise DecodeError("not an rsaEncryption SPKI")
    try:
        IssuerKey.from_spki(raw, allow_4096=True)
    except DecodeError as e:
        problem = str(e)  # the loader's words: "token-key is an rsaEncryption SPKI; ..."
    else:  # pragma: no cover - from_spki refuses every rsaEncryption SPKI
        raise DecodeError("a type-2 token-key")
    pss = encode_pss_spki(loaded)
    return {
        "kind": "RSA public key (rsaEncryption SPKI), not a type-2 token-key",
        "length": len(raw),
        "modulus_bits": loaded.key_size,
        "problem": problem,
        "fix": "give token_key exactly as the issuer's directory lists it "
        "(/.well-known/private-token-issuer-directory, token-keys[].token-key; "
        "pat-middleware keygen prints it for a key of your own). If this is the issuer's "
        "key, that is most likely the value below: check its key id against the directory",
        "token_key_as_rsassa_pss": b64url_encode(pss),
        "token_key_id_as_rsassa_pss": hashlib.sha256(pss).hexdigest(),
    }


def describe_voprf_token_key(raw: bytes) -> dict[str, Any]:
    return describe_token_key(raw, TOKEN_TYPE_VOPRF)


def describe_token_request(raw: bytes) -> dict[str, Any]:
    """A TokenRequest of either type: its type, truncated key id and blinded message."""
    from ..issuer.protocol import TokenRequest
    from ..issuer.voprf import VOPRFTokenRequest

    token_type = peek_token_type(raw)
    if token_type == TOKEN_TYPE_VOPRF:
        request: TokenRequest | VOPRFTokenRequest = VOPRFTokenRequest.from_bytes(raw)
        blinded = request.blinded_msg
    elif token_type == TOKEN_TYPE_BLIND_RSA:
        request = TokenRequest.from_bytes(raw, nk=len(raw) - 3)
        blinded = request.blinded_msg
    else:
        raise DecodeError(f"no TokenRequest format for token type {token_type}")
    return {
        "kind": "TokenRequest",
        "length": len(raw),
        "token_type": token_type,
        "token_type_name": type_name(token_type),
        "truncated_token_key_id": f"0x{request.truncated_token_key_id:02x}",
        "blinded_msg": blinded.hex(),
    }


def describe_token_response(raw: bytes) -> dict[str, Any]:
    """A TokenResponse, told by its size: 145 bytes for type 1, Nk for type 2."""
    from ..issuer.voprf import VOPRFTokenResponse

    if len(raw) == _VOPRF_RESPONSE_LENGTH:
        response = VOPRFTokenResponse.from_bytes(raw)
        proof = response.proof
        return {
            "kind": "TokenResponse",
            "length": len(raw),
            "token_type": TOKEN_TYPE_VOPRF,
            "token_type_name": type_name(TOKEN_TYPE_VOPRF),
            "evaluate_msg": response.evaluate_msg.hex(),
            "evaluate_proof": {"c": f"{proof.c:096x}", "s": f"{proof.s:096x}"},
        }
    if len(raw) in _BLIND_RSA_RESPONSE_LENGTHS:
        return {
            "kind": "TokenResponse",
            "length": len(raw),
            "token_type": TOKEN_TYPE_BLIND_RSA,
            "token_type_name": type_name(TOKEN_TYPE_BLIND_RSA),
            "blind_sig": raw.hex(),
        }
    raise DecodeError(f"{len(raw)} bytes is no TokenResponse size")


def describe_private_key_pem(text: str) -> dict[str, Any]:
    """A PEM key: its token type, key id and token-key. Never a byte of a private key."""
    raw = text.strip().encode("ascii", "replace")
    registry = default_registry()
    if b"PRIVATE KEY-----" in raw:
        try:
            loaded = serialization.load_pem_private_key(raw, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise DecodeError("not an unencrypted PEM private key") from None
        entry = registry.private_key_type(loaded)
        if entry is None:
            raise DecodeError("a private key of no registered token type")
        key = entry.published_key_of(loaded)
        kind = "issuer private key"
    else:
        entry = registry[TOKEN_TYPE_BLIND_RSA]
        try:
            key = entry.load_public_key_text(text, allow_4096=True)
        except DecodeError:
            try:
                der = serialization.load_pem_public_key(raw).public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            except (ValueError, UnsupportedAlgorithm):
                raise DecodeError("not a PEM public or private key") from None
            try:
                return describe_rsa_encryption_key(der)
            except DecodeError:
                pass
            raise
        kind = "token-key (PEM)"
    return {
        "kind": kind,
        "token_type": entry.value,
        "token_type_name": entry.name,
        "token_key_id": key.token_key_id.hex(),
        "token_key": key.token_key,
    }


def _guesses(raw: bytes) -> list[Callable[[bytes], dict[str, Any]]]:
    """What a decoded value may be, most likely first."""
    token_type = peek_token_type(raw) if len(raw) >= 2 else None
    guesses: list[Callable[[bytes], dict[str, Any]]] = []
    if raw[:1] == b"\x30":
        guesses.append(describe_token_key)
        guesses.append(describe_rsa_encryption_key)
    if len(raw) == VOPRF_PUBLIC_KEY_LENGTH and raw[0] in (2, 3):
        guesses.append(describe_voprf_token_key)
    if len(raw) - AUTHENTICATOR_INPUT_LENGTH in _TOKEN_NKS:
        guesses.append(describe_token)
    if (token_type == TOKEN_TYPE_VOPRF and len(raw) == _VOPRF_REQUEST_LENGTH) or (
        token_type == TOKEN_TYPE_BLIND_RSA and len(raw) in _BLIND_RSA_REQUEST_LENGTHS
    ):
        guesses.append(describe_token_request)
    if len(raw) == _VOPRF_RESPONSE_LENGTH or (
        len(raw) in _BLIND_RSA_RESPONSE_LENGTHS and token_type != TOKEN_TYPE_BLIND_RSA
    ):
        guesses.append(describe_token_response)
    guesses.append(describe_challenge)
    if describe_token not in guesses and len(raw) > AUTHENTICATOR_INPUT_LENGTH:
        guesses.append(describe_token)
    return guesses


def _describe_bytes(raw: bytes) -> dict[str, Any]:
    """Guess what a decoded value is: a token-key, a token, a TokenRequest or -Response, or
    a challenge."""
    errors: list[str] = []
    for guess in _guesses(raw):
        try:
            return guess(raw)
        except DecodeError as e:
            name = guess.__name__.removeprefix("describe_").removeprefix("voprf_")
            errors.append(f"not a {name}: {e}")
    raise DecodeError("; ".join(errors))


def inspect_value(value: str) -> dict[str, Any]:
    """Describe a challenge, token, token-key, TokenRequest, TokenResponse, PEM key, or a
    whole header value; or a Private State Token value (key commitment, JWK Set,
    Sec-Private-State-Token, Sec-Redemption-Record)."""
    import time

    from .pst import describe_pst_value

    pst = describe_pst_value(value, now=time.time())
    if pst is not None:
        return pst
    text = value.strip()
    if text.startswith("-----BEGIN"):
        return describe_private_key_pem(text)
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


__all__ = [
    "cmd_inspect",
    "cmd_verify",
    "describe_challenge",
    "describe_private_key_pem",
    "describe_rsa_encryption_key",
    "describe_token",
    "describe_token_key",
    "describe_token_request",
    "describe_token_response",
    "header_value",
    "inspect_value",
    "read_challenges",
    "read_token",
]
