"""The pat-middleware command line, against real processes and servers on loopback."""

from __future__ import annotations

import argparse
import json
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pat_middleware import IssuerKey, TokenChallenge, b64url_encode, build_authorization
from pat_middleware.cli.commands import _load_private_keys, _split_not_before, main
from pat_middleware.core.codec import b64_decode
from pat_middleware.issuer import Issuer
from pat_middleware.issuer.client import fetch_token

from ._servers import CLI, free_port
from ._servers import cli_process as _process
from .vectors import HTTP_HEADERS, TYPE2_ISSUANCE, h

ISSUER_NAME = "issuer.example"


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("keys") / "issuer.pem"
    out = subprocess.run(
        [*CLI, "keygen", "--out", str(path)], capture_output=True, text=True, check=True
    )
    token_key = out.stdout.strip().splitlines()[-1]
    return path, token_key


def test_keygen_writes_a_private_file_and_prints_the_token_key(key_file: tuple[Path, str]) -> None:
    path, token_key = key_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = IssuerKey.from_base64(token_key)
    assert IssuerKey.from_pem(path.read_bytes()).token_key_id == key.token_key_id
    assert main(["keygen", "--out", str(path)]) == 2  # refuses to overwrite


@pytest.fixture(scope="module")
def minted(key_file: tuple[Path, str]) -> tuple[str, str, str]:
    """(token-key, challenge, token), the token minted by `pat-middleware issuer` over HTTP."""
    path, token_key = key_file
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["issuer", "--key", str(path), "--name", ISSUER_NAME, "--port", str(port)]
    with _process(args, base + "/.well-known/private-token-issuer-directory"):
        key = IssuerKey.from_base64(token_key)
        challenge = TokenChallenge(2, ISSUER_NAME, bytes(range(32)), ("origin.example",))
        with httpx.Client() as client:
            token = fetch_token(challenge, key, base, client)
    return (
        token_key,
        b64url_encode(challenge.to_bytes()),
        b64url_encode(token.to_bytes(), padded=False),
    )


def test_token_from_issuer_process_verifies_with_verify_process(
    minted: tuple[str, str, str],
) -> None:
    token_key, challenge, token = minted
    run = subprocess.run(
        [*CLI, "verify", "--token-key", token_key, "--challenge", challenge, "--token", token],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("valid")
    assert ISSUER_NAME in run.stdout


def _flip(text: str, index: int) -> str:
    raw = bytearray(b64_decode(text))
    raw[index] ^= 0x80
    return b64url_encode(bytes(raw))


@pytest.mark.parametrize(
    ("index", "reason"),
    [
        (0, "unsupported_type"),
        (1, "unsupported_type"),
        (2, "bad_signature"),  # nonce
        (33, "bad_signature"),
        (34, "challenge_mismatch"),
        (65, "challenge_mismatch"),
        (66, "unknown_key"),
        (97, "unknown_key"),
        (98, "bad_signature"),  # authenticator
        (353, "bad_signature"),
    ],
)
def test_flipped_byte_exits_1_with_reason(
    minted: tuple[str, str, str], index: int, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    token_key, challenge, token = minted
    code = main(
        [
            "verify",
            "--token-key",
            token_key,
            "--challenge",
            challenge,
            "--token",
            _flip(token, index),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith(f"invalid: {reason}")


def test_every_byte_flip_is_refused(minted: tuple[str, str, str]) -> None:
    token_key, challenge, token = minted
    for index in range(354):
        assert (
            main(
                [
                    "verify",
                    "--token-key",
                    token_key,
                    "--challenge",
                    challenge,
                    "--token",
                    _flip(token, index),
                ]
            )
            == 1
        )


def test_verify_accepts_padded_and_unpadded(minted: tuple[str, str, str]) -> None:
    token_key, challenge, token = minted
    for form in (token, token + "=" * (-len(token) % 4)):
        assert (
            main(
                [
                    "verify",
                    "--token-key",
                    token_key.rstrip("="),
                    "--challenge",
                    challenge,
                    "--token",
                    form,
                ]
            )
            == 0
        )


def _headers(token_key: str, challenge: str, token: str) -> tuple[str, str]:
    """(WWW-Authenticate, Authorization) values carrying this challenge and token, the
    challenge after a grease one and a type-1 one, as an origin may list them."""
    from pat_middleware.core.headers import ChallengeParams, build_www_authenticate

    ours = ChallengeParams(b64_decode(challenge), b64_decode(token_key), 10)
    grease = ChallengeParams(b"\x0a\x0a" + bytes(40), None, 10)
    other = ChallengeParams(TokenChallenge(1, "other.example").to_bytes(), None, 10)
    www = build_www_authenticate([grease, other, ours])
    return www, build_authorization(b64_decode(token))


@pytest.mark.parametrize("named", [False, True], ids=["values", "whole-header-lines"])
def test_verify_takes_whole_header_values(
    minted: tuple[str, str, str], named: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a browser's network panel shows can be pasted as it is, as inspect takes it."""
    token_key, challenge, token = minted
    www, authorization = _headers(token_key, challenge, token)
    if named:
        www, authorization = f"WWW-Authenticate: {www}", f"Authorization: {authorization}"
    args = ["verify", "--token-key", token_key, "--challenge", www, "--token", authorization]
    assert main(args) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert out.startswith("valid") and ISSUER_NAME in out
    flipped = build_authorization(b64_decode(_flip(token, 98)))
    assert main([*args[:-1], flipped]) == 1
    assert capsys.readouterr().out.startswith("invalid: bad_signature")


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--challenge", "PrivateToken token-key=AAAA", "--challenge: no PrivateToken challenge"),
        ("--challenge", 'Basic realm="x"', "--challenge: no PrivateToken challenge"),
        ("--token", "Bearer abc", "--token: no PrivateToken credential"),
        ("--token", "PrivateToken token=AAAA, PrivateToken token=AAAA", "--token: 2 tokens"),
    ],
)
def test_verify_header_values_without_what_it_needs_are_usage_errors(
    minted: tuple[str, str, str],
    flag: str,
    value: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token_key, challenge, token = minted
    args = {"--challenge": challenge, "--token": token, flag: value}
    argv = ["verify", "--token-key", token_key]
    argv += ["--challenge", args["--challenge"], "--token", args["--token"]]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_verify_rfc_vector(capsys: pytest.CaptureFixture[str]) -> None:
    v = TYPE2_ISSUANCE[0]
    args = [
        "verify",
        "--token-key", b64url_encode(h(v["pkS"])),
        "--challenge", b64url_encode(h(v["token_challenge"])),
        "--token", b64url_encode(h(v["token"])),
    ]  # fmt: skip
    assert main(args) == 0
    assert "ca572f89" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "--token-key", "!!!", "--challenge", "AAI", "--token", "AAI"],
        [
            "verify",
            "--token-key",
            b64url_encode(h(TYPE2_ISSUANCE[0]["pkS"])),
            "--challenge",
            "AAIA",
            "--token",
            "AAI",
        ],
        ["verify"],
        ["nonsense"],
    ],
)
def test_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) if len(args) == 1 else _no_raise() as _:
        code = main(args)
        assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip()


@contextmanager
def _no_raise() -> Iterator[None]:
    yield


def test_malformed_token_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    v = TYPE2_ISSUANCE[0]
    code = main(
        [
            "verify",
            "--token-key",
            b64url_encode(h(v["pkS"])),
            "--challenge",
            b64url_encode(h(v["token_challenge"])),
            "--token",
            "$$$",
        ]
    )
    assert code == 1
    assert capsys.readouterr().out.startswith("invalid: malformed")


def test_4096_needs_the_flag(rsa_4096: object, capsys: pytest.CaptureFixture[str]) -> None:
    from pat_middleware import encode_pss_spki

    from .conftest import sign_token

    assert isinstance(rsa_4096, rsa.RSAPrivateKey)
    key = IssuerKey.from_spki(encode_pss_spki(rsa_4096.public_key()), allow_4096=True)
    challenge = TokenChallenge(2, ISSUER_NAME)
    token = sign_token(rsa_4096, key, challenge)
    args = [
        "verify",
        "--token-key",
        key.token_key,
        "--challenge",
        b64url_encode(challenge.to_bytes()),
        "--token",
        b64url_encode(token),
    ]
    assert main(args) == 2
    assert main([*args, "--allow-4096"]) == 0


# ---------------------------------------------------------------------------- inspect


def _inspect(value: str) -> dict[str, object]:
    run = subprocess.run([*CLI, "inspect", "--json", value], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    data: dict[str, object] = json.loads(run.stdout)
    return data


def test_inspect_each_kind() -> None:
    v = TYPE2_ISSUANCE[0]
    challenge = _inspect(b64url_encode(h(v["token_challenge"])))
    assert challenge["kind"] == "TokenChallenge"
    assert challenge["issuer_name"] == "issuer.example"
    assert challenge["origin_info"] == ["origin.example"]
    token = _inspect(b64url_encode(h(v["token"]), padded=False))
    assert token["kind"] == "Token"
    assert token["nk"] == 256
    assert token["nonce"] == v["nonce"]
    key = _inspect(b64url_encode(h(v["pkS"])))
    assert key["kind"] == "token-key"
    assert str(key["token_key_id"]).startswith("ca572f89")
    header = _inspect(HTTP_HEADERS[2]["WWW-Authenticate"])
    assert header["kind"] == "WWW-Authenticate"
    assert isinstance(header["challenges"], list) and len(header["challenges"]) == 2
    auth = _inspect("Authorization: " + build_authorization(h(v["token"])))
    assert auth["kind"] == "Authorization"


@pytest.mark.parametrize("form", ["base64url", "pem"])
def test_inspect_names_an_rsa_encryption_key(
    rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey, form: str
) -> None:
    """The key a newcomer exports from an RSA key pair is an rsaEncryption SPKI, not the
    RSASSA-PSS one type 2 publishes: inspect says so, as the settings loader does, and
    gives the form to use (here the issuer's own token-key, as keygen would print it)."""
    public = rsa_2048.public_key()
    if form == "pem":
        value = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
    else:
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        value = b64url_encode(der)
    info = _inspect(value)
    assert info["kind"] == "RSA public key (rsaEncryption SPKI), not a type-2 token-key"
    assert info["modulus_bits"] == 2048
    assert "rsaEncryption" in str(info["problem"]) and "id-RSASSA-PSS" in str(info["problem"])
    assert "issuer's directory" in str(info["fix"])
    assert info["token_key_as_rsassa_pss"] == issuer_key.token_key
    assert info["token_key_id_as_rsassa_pss"] == issuer_key.token_key_id.hex()


def test_inspect_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", HTTP_HEADERS[0]["WWW-Authenticate"]]) == 0
    out = capsys.readouterr().out
    assert "issuer_name: issuer.example" in out
    assert "max_age: 10" in out


@pytest.mark.parametrize("value", ["garbage!!", "AAIA", "PrivateToken token=%%%", ""])
def test_inspect_bad_input_one_line(value: str) -> None:
    run = subprocess.run([*CLI, "inspect", value], capture_output=True, text=True)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------- origin, fetch, demo


def test_origin_and_fetch_processes(key_file: tuple[Path, str]) -> None:
    path, token_key = key_file
    issuer_port, origin_port = free_port(), free_port()
    issuer_url = f"http://127.0.0.1:{issuer_port}"
    origin_url = f"http://127.0.0.1:{origin_port}"
    issuer_args = ["issuer", "--key", str(path), "--name", ISSUER_NAME, "--port", str(issuer_port)]
    origin_args = [
        "origin",
        "--issuer-name",
        ISSUER_NAME,
        "--token-key",
        token_key,
        "--port",
        str(origin_port),
    ]
    with (
        _process(issuer_args, issuer_url + "/.well-known/private-token-issuer-directory"),
        _process(origin_args, origin_url + "/"),
    ):
        assert httpx.get(origin_url + "/").status_code == 200
        challenge = httpx.get(origin_url + "/protected")
        assert challenge.status_code == 401
        assert challenge.headers["www-authenticate"].startswith("PrivateToken challenge=")
        _fetch_protected(origin_url, issuer_url)


def _fetch_protected(origin_url: str, issuer_url: str) -> None:
    """`pat-middleware fetch` answers the origin's challenge with a token from the issuer."""
    run = subprocess.run(
        [*CLI, "fetch", origin_url + "/protected", "--issuer", issuer_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "<- 401" in run.stdout and "<- 200" in run.stdout
    assert "token accepted" in run.stdout


def test_rotating_issuer_and_origin_on_its_directory(tmp_path: Path) -> None:
    issuer_port, origin_port = free_port(), free_port()
    issuer_url = f"http://127.0.0.1:{issuer_port}"
    origin_url = f"http://127.0.0.1:{origin_port}"
    config = tmp_path / "origin.toml"
    config.write_text("directory_refresh_min = 1\n", encoding="utf-8")
    issuer_args = [
        "issuer", "--rotate-every", "2", "--name", ISSUER_NAME, "--port", str(issuer_port)
    ]  # fmt: skip
    origin_args = [
        "origin", "--issuer-name", ISSUER_NAME, "--issuer-directory", issuer_url,
        "--config", str(config), "--port", str(origin_port),
    ]  # fmt: skip
    with (
        _process(issuer_args, issuer_url + "/.well-known/private-token-issuer-directory"),
        _process(origin_args, origin_url + "/"),
    ):
        directory = httpx.get(issuer_url + "/.well-known/private-token-issuer-directory")
        assert directory.headers["cache-control"] in ("max-age=1", "max-age=2")
        not_before = [key["not-before"] for key in directory.json()["token-keys"]]
        assert len(not_before) >= 2 and not_before == sorted(not_before, reverse=True)
        assert not_before[0] - not_before[1] == 2  # the next key, published one period early
        _fetch_protected(origin_url, issuer_url)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", ISSUER_NAME], "give --key FILE"),
        (["--name", ISSUER_NAME, "--key", "k.pem", "--rotate-every", "5"], "give --key FILE"),
        (["--name", ISSUER_NAME, "--key", "k.pem", "--overlap", "5"], "--overlap goes with"),
    ],
)
def test_issuer_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["issuer", *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "soon"])
def test_rotate_every_must_be_whole_positive_seconds(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["issuer", "--name", ISSUER_NAME, "--rotate-every", value])
    assert info.value.code == 2
    assert "--rotate-every" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("issuer.pem", ("issuer.pem", None)),
        ("issuer.pem:1700000000", ("issuer.pem", 1_700_000_000)),
        ("issuer.pem:+30", ("issuer.pem", 1_000_030)),
        ("C:/keys/issuer.pem", ("C:/keys/issuer.pem", None)),
        ("keys:v2.pem", ("keys:v2.pem", None)),
        ("dir:1/issuer.pem:+0", ("dir:1/issuer.pem", 1_000_000)),
    ],
)
def test_key_not_before_spec(spec: str, expected: tuple[str, int | None]) -> None:
    assert _split_not_before(spec, 1_000_000) == expected


@pytest.mark.parametrize("spec", ["issuer.pem:²", "issuer.pem:++5", "issuer.pem:+²"])
def test_a_not_before_int_would_refuse_is_part_of_the_file_name(spec: str) -> None:
    # str.isdigit() accepts "²" and lstrip("+") accepted "++": int() raised on both.
    assert _split_not_before(spec, 1_000_000) == (spec, None)


def test_keys_with_not_before_are_listed_newest_first(
    key_file: tuple[Path, str], tmp_path: Path
) -> None:
    path, token_key = key_file
    newer = tmp_path / "newer.pem"
    assert main(["keygen", "--out", str(newer)]) == 0
    keys = _load_private_keys([str(path), f"{newer}:+3600"])
    issuer = Issuer(ISSUER_NAME, *keys)
    now = time.time()
    [first, second] = issuer.directory().token_keys
    assert first.not_before is not None and now + 3590 < first.not_before <= now + 3600
    assert second.not_before is None
    assert issuer.preferred_key_at(now).token_key == token_key
    assert issuer.preferred_key_at(now + 3600).token_key != token_key


def test_fetch_unreachable_is_one_line() -> None:
    run = subprocess.run(
        [*CLI, "fetch", f"http://127.0.0.1:{free_port()}/x", "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr


def test_demo_runs_the_whole_flow(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out
    for step in ("token accepted: 200", "replayed token refused", "servers stopped"):
        assert step in out


# ------------------------------------------------------------------------- origin --config


@pytest.fixture
def no_serving(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """`origin` builds everything but serves nothing: the apps it would serve, in order."""
    served: list[object] = []

    def record(app: object, host: str, port: int, workers: int = 1, **_: object) -> None:
        served.append(app)

    monkeypatch.setattr("pat_middleware.cli.servers.uvicorn_run", record)
    return served


def test_origin_config_with_keys_outside_its_table_is_refused(
    tmp_path: Path,
    key_file: tuple[Path, str],
    no_serving: list[object],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, token_key = key_file
    config = tmp_path / "origin.toml"
    config.write_text("max_age = 30\n[pat_middleware]\ncookie_secure = false\n", encoding="utf-8")
    args = ["origin", "--issuer-name", ISSUER_NAME, "--token-key", token_key]
    assert main([*args, "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pat-middleware origin: max_age: ") and "[pat_middleware]" in err
    assert no_serving == []


# ------------------------------------------------------------------ --version, --help texts


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from pat_middleware import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"pat-middleware {__version__}"
    run = subprocess.run([*CLI, "--version"], capture_output=True, text=True)
    assert (run.returncode, run.stdout.strip()) == (0, f"pat-middleware {__version__}")


def _options() -> Iterator[tuple[str, argparse.ArgumentParser, argparse.Action]]:
    from pat_middleware.cli.commands import build_parser

    parser = build_parser()
    for action in parser._actions:
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            yield "pat-middleware", parser, action
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for option in sub._actions:
                    if not isinstance(option, argparse._HelpAction):
                        yield name, sub, option


def _shown_default(default: object) -> tuple[str, ...]:
    """How a default may be written in help text: 8001, 10 for 10.0, memory://."""
    if isinstance(default, float) and default.is_integer():
        return (str(default), str(int(default)))
    return (str(default),)


def test_every_option_of_every_command_has_help_that_gives_its_default() -> None:
    missing: list[str] = []
    for command, parser, action in _options():
        name = action.option_strings[0] if action.option_strings else action.dest
        formatter = parser._get_formatter()
        text = formatter._expand_help(action) if action.help else ""
        if not text.strip() or action.help is argparse.SUPPRESS:
            missing.append(f"{command} {name}: no help")
            continue
        default = action.default
        if action.required or default in (None, False, argparse.SUPPRESS) or action.nargs == 0:
            continue
        if "default" not in text or not any(d in text for d in _shown_default(default)):
            missing.append(f"{command} {name}: help does not give the default {default!r}")
    assert missing == []


# ----------------------------------------------------------------------------------- fetch


@dataclass(frozen=True)
class _Site:
    issuer_url: str
    origin_url: str


@pytest.fixture(scope="module")
def site(rsa_2048: rsa.RSAPrivateKey) -> Iterator[_Site]:
    """Our issuer and an origin trusting it, in process: ``/protected`` and ``/dir/*`` need
    a token; ``/old`` redirects to ``/protected``, ``/dir`` to ``/dir/`` (after judging:
    the middleware is outside), ``/loop`` to itself."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Route

    from pat_middleware.cli.demo import origin_settings
    from pat_middleware.cli.serve import reserve_port, serve_asgi
    from pat_middleware.integrations.asgi import PrivateTokenMiddleware
    from pat_middleware.issuer.server import create_issuer_app
    from pat_middleware.policy import Policy

    sock, port = reserve_port()
    name = f"127.0.0.1:{port}"
    issuer = Issuer(name, rsa_2048)

    async def page(request: Request) -> Response:
        return PlainTextResponse(f"page {request.url.path}")

    async def to(request: Request) -> Response:
        target = {"/old": "/protected", "/dir": "/dir/", "/loop": "/loop"}[request.url.path]
        return RedirectResponse(target, status_code=302)

    settings = origin_settings(
        name,
        issuer.preferred_key.token_key,
        base={"protect": ["/protected", "/dir*"]},
        secret="fetch-test-secret-0123456789abcdef-0123456789",
    )
    routes = [Route(p, page) for p in ("/protected", "/dir/")]
    routes += [Route(p, to) for p in ("/old", "/dir", "/loop")]
    origin = PrivateTokenMiddleware(Starlette(routes=routes), policy=Policy(settings))
    with (
        serve_asgi(create_issuer_app(issuer), sock=sock) as issuer_url,
        serve_asgi(origin) as origin_url,
    ):
        yield _Site(issuer_url, origin_url)


def test_fetch_follows_redirects_to_the_challenge_and_after_the_pass(
    site: _Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fetch", site.origin_url + "/old", "--issuer", site.issuer_url]) == 0
    out = capsys.readouterr().out
    assert f"<- 302 -> {site.origin_url}/protected" in out
    assert "token accepted" not in out and out.rstrip().endswith("page /protected")
    # The pass itself redirects: the token is not sent again (it would be a replay); the
    # verified session carries the next request.
    assert main(["fetch", site.origin_url + "/dir", "--issuer", site.issuer_url]) == 0
    out = capsys.readouterr().out
    assert f"<- 302 -> {site.origin_url}/dir/" in out and out.rstrip().endswith("page /dir/")


def test_fetch_gives_up_on_a_redirect_loop(site: _Site, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fetch", site.origin_url + "/loop", "--issuer", site.issuer_url]) == 1
    assert "too many redirects" in capsys.readouterr().err


def test_fetch_verbose_prints_the_challenge_and_token_whole(
    site: _Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fetch", site.origin_url + "/protected", "--issuer", site.issuer_url, "-v"]) == 0
    lines = capsys.readouterr().out.splitlines()
    [www] = [line.strip() for line in lines if line.strip().startswith("WWW-Authenticate: ")]
    [auth] = [line.strip() for line in lines if line.strip().startswith("Authorization: ")]
    # What it prints is whole: verify takes both lines as they are.
    from pat_middleware.cli.inspect import read_challenges, read_token

    [challenge] = read_challenges(www)
    assert read_token(auth)[34:66] == challenge.digest
    assert challenge.issuer_name == site.issuer_url.removeprefix("http://")


def test_fetch_hints_at_issuer_when_tls_fails_on_an_http_issuer(
    site: _Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --issuer the issuer is https://<issuer_name>; ours speaks plain http."""
    assert main(["fetch", site.origin_url + "/protected"]) == 1
    err = capsys.readouterr().err
    name = site.issuer_url.removeprefix("http://")
    assert f"https://{name}" in err and "TLS" in err
    assert f"--issuer http://{name}" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2


def test_origin_config_paths_are_relative_to_the_file(
    tmp_path: Path,
    key_file: tuple[Path, str],
    no_serving: list[object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As in every settings file: not to the working directory."""
    _, token_key = key_file
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "secret.txt").write_text("origin-config-secret-0123456789abcdef-0123\n")
    (conf / "401.html").write_text("<p>token please</p>")
    config = conf / "origin.toml"
    config.write_text('secret_file = "secret.txt"\nchallenge_body_file = "401.html"\n')
    monkeypatch.chdir(tmp_path)
    args = ["origin", "--issuer-name", ISSUER_NAME, "--token-key", token_key]
    assert main([*args, "--config", "conf/origin.toml"]) == 0
    [app] = no_serving
    policy = getattr(app, "policy", None)
    assert policy is not None
    assert policy.settings.secret == b"origin-config-secret-0123456789abcdef-0123"
    assert policy.settings.challenge_body == "<p>token please</p>"
