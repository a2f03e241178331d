"""The command line with token type 1: keygen, a mixed issuer, a joint origin, verify and
inspect, against real processes on loopback."""

from __future__ import annotations

import json
import secrets
import stat
import subprocess
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pat_middleware.cli.commands import inspect_value, main
from pat_middleware.cli.demo import follow
from pat_middleware.core.codec import b64_decode, b64url_encode
from pat_middleware.core.headers import parse_www_authenticate
from pat_middleware.core.wire import TokenChallenge
from pat_middleware.errors import DecodeError
from pat_middleware.issuer import TOKEN_REQUEST_MEDIA_TYPE, parse_directory
from pat_middleware.issuer.client import fetch_token
from pat_middleware.issuer.voprf import begin_voprf_issuance
from pat_middleware.tokens.voprf import VOPRFPublicKey, VOPRFTokenKey
from tests.vectors import h, load

from ._servers import CLI, free_port
from ._servers import cli_process as _process

NAME = "127.0.0.1"
TYPE1 = load("rfc9578-type1-voprf-issuance.json")


def _keygen(path: Path, *extra: str) -> str:
    run = subprocess.run(
        [*CLI, "keygen", "--out", str(path), *extra], capture_output=True, text=True, check=True
    )
    return run.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    where = tmp_path_factory.mktemp("type1-keys")
    out = {"t1": where / "t1.pem", "t2": where / "t2.pem"}
    _keygen(out["t1"], "--token-type", "1")
    _keygen(out["t2"])
    return out


def test_keygen_type1_writes_0600_and_prints_the_49_byte_token_key(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    token_key = _keygen(path, "--token-type", "1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    public = VOPRFPublicKey.from_bytes(b64_decode(token_key))
    assert VOPRFTokenKey.from_pem(path.read_bytes()).public == public
    assert len(b64_decode(token_key)) == 49 and token_key.endswith("=")


def test_keygen_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["keygen", "--out", str(tmp_path / "a.pem"), "--token-type", "1", "--bits", "2048"])
        == 2
    )
    assert "--bits applies to type-2 keys only" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["keygen", "--out", str(tmp_path / "b.pem"), "--token-type", "3"])
    assert info.value.code == 2


def test_mixed_issuer_process_serves_both_types(keys: dict[str, Path]) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["issuer", "--key", str(keys["t1"]), "--key", str(keys["t2"]), "--name", NAME]
    output: list[str] = []
    with _process(
        [*args, "--port", str(port)],
        base + "/.well-known/private-token-issuer-directory",
        output=output,
    ):
        directory = parse_directory(
            httpx.get(base + "/.well-known/private-token-issuer-directory").content
        )
        assert [k.token_type for k in directory.token_keys] == [1, 2]
        t1 = VOPRFTokenKey.from_pem(keys["t1"].read_bytes())
        assert directory.token_keys[0].token_key == t1.published
        with httpx.Client(timeout=10) as client:
            challenge = TokenChallenge(1, NAME, secrets.token_bytes(32), ("origin.example",))
            token = fetch_token(challenge, t1.public, base, client)
            assert t1.verify(token.authenticator_input, token.authenticator)
            request, _ = begin_voprf_issuance(challenge, t1.public)
            good = request.to_bytes()
            for body in (
                good[:-1],
                good[:3] + b"\x04" + good[4:],
                good[:2],
                b"\x00\x01\xff" + good[3:],
            ):
                answer = client.post(
                    base + "/token-request",
                    content=body,
                    headers={"Content-Type": TOKEN_REQUEST_MEDIA_TYPE},
                )
                assert 400 <= answer.status_code < 500, answer.status_code
    printed = "".join(output)
    assert f"token-key: {t1.token_key}" in printed and "token type 1" in printed


def test_joint_origin_challenges_and_verifies_type1(keys: dict[str, Path]) -> None:
    issuer_port, origin_port = free_port(), free_port()
    issuer_url = f"http://127.0.0.1:{issuer_port}"
    origin_url = f"http://127.0.0.1:{origin_port}"
    t1 = VOPRFTokenKey.from_pem(keys["t1"].read_bytes())
    issuer_args = ["issuer", "--key", str(keys["t1"]), "--name", NAME, "--port", str(issuer_port)]
    origin_args = [
        "origin", "--issuer-name", NAME, "--issuer-private-key", str(keys["t1"]),
        "--port", str(origin_port),
    ]  # fmt: skip
    with (
        _process(issuer_args, issuer_url + "/.well-known/private-token-issuer-directory"),
        _process(origin_args, origin_url + "/"),
    ):
        first = httpx.get(origin_url + "/protected")
        assert first.status_code == 401
        (params,) = parse_www_authenticate(first.headers["www-authenticate"])
        assert TokenChallenge.from_bytes(params.challenge).token_type == 1
        assert params.token_key == t1.published
        run = subprocess.run(
            [*CLI, "fetch", origin_url + "/protected", "--issuer", issuer_url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "type=1" in run.stdout and "token accepted" in run.stdout
        assert '"token_type":1' in run.stdout
        with httpx.Client(timeout=10) as client:
            result = follow(
                client, origin_url + "/protected", issuer_url=issuer_url, say=lambda _: None
            )
        assert result.status == 200 and result.token is not None and len(result.token) == 146
        with httpx.Client(timeout=10) as other:
            replay = follow(
                other, origin_url + "/protected", token=result.token, say=lambda _: None
            )
        assert replay.status == 401  # replayed: refused, with a fresh challenge


def test_origin_usage_errors(keys: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["origin", "--issuer-name", NAME]) == 2
    assert "--issuer-private-key" in capsys.readouterr().err
    assert main(["origin", "--issuer-name", NAME, "--issuer-private-key", str(keys["t2"])]) == 2
    assert "pass --token-key" in capsys.readouterr().err
    assert main(["origin", "--issuer-name", NAME, "--issuer-private-key", "/no/such.pem"]) == 2


# ---------------------------------------------------------------------------- verify


@pytest.fixture(scope="module")
def vector_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vector-key") / "skS.pem"
    path.write_bytes(VOPRFTokenKey.from_scalar(h(TYPE1[0]["skS"])).private_pem())
    return path


def _verify(key_file: Path, token: bytes, vector: int = 0) -> list[str]:
    return [
        "verify",
        "--issuer-private-key", str(key_file),
        "--challenge", b64url_encode(h(TYPE1[vector]["token_challenge"])),
        "--token", b64url_encode(token),
    ]  # fmt: skip


def test_verify_type1_vector(vector_key_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_verify(vector_key_file, h(TYPE1[0]["token"]))) == 0
    out = capsys.readouterr().out
    assert out.startswith("valid") and "VOPRF (P-384, SHA-384)" in out and "Nk=48" in out


@pytest.mark.parametrize(
    ("index", "reason"),
    [
        (0, "unsupported_type"),
        (1, "unsupported_type"),
        (2, "bad_signature"),
        (34, "challenge_mismatch"),
        (66, "unknown_key"),
        (98, "bad_signature"),
        (145, "bad_signature"),
    ],
)
def test_verify_type1_flipped_byte_exits_1_with_reason(
    vector_key_file: Path, index: int, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    token = bytearray(h(TYPE1[0]["token"]))
    token[index] ^= 0x40
    assert main(_verify(vector_key_file, bytes(token))) == 1
    assert capsys.readouterr().out.startswith(f"invalid: {reason}")


def test_verify_type1_usage_errors(
    vector_key_file: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    token = h(TYPE1[0]["token"])
    args = _verify(vector_key_file, token)
    assert main([*args[:2], "/no/such.pem", *args[3:]]) == 2
    assert main([*args[:2], str(keys["t2"]), *args[3:]]) == 2  # an RSA key
    assert "pass --token-key" in capsys.readouterr().err
    public = b64url_encode(h(TYPE1[0]["pkS"]))
    assert main(["verify", "--token-key", public, *args[3:]]) == 2
    assert "pass --issuer-private-key" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # both key sources
        main(["verify", "--token-key", public, *args[1:]])
    assert info.value.code == 2
    pem = vector_key_file.read_text()
    assert pem.splitlines()[1] not in capsys.readouterr().err


# --------------------------------------------------------------------------- inspect


def _inspect(value: str) -> dict[str, object]:
    run = subprocess.run([*CLI, "inspect", "--json", value], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    data: dict[str, object] = json.loads(run.stdout)
    return data


def test_inspect_type1_values(vector_key_file: Path) -> None:
    v = TYPE1[0]
    token = _inspect(b64url_encode(h(v["token"])))
    assert (token["kind"], token["token_type"], token["nk"]) == ("Token", 1, 48)
    assert token["token_type_name"] == "VOPRF (P-384, SHA-384)"
    request = _inspect(b64url_encode(h(v["token_request"])))
    assert (request["kind"], request["token_type"]) == ("TokenRequest", 1)
    assert request["truncated_token_key_id"] == f"0x{h(v['token_request'])[2]:02x}"
    response = _inspect(b64url_encode(h(v["token_response"])))
    assert (response["kind"], response["token_type"]) == ("TokenResponse", 1)
    assert response["evaluate_msg"] == v["token_response"][:98]
    key = _inspect(b64url_encode(h(v["pkS"])))
    assert (key["kind"], key["token_type"], key["nk"]) == ("token-key", 1, 48)
    assert key["publicly_verifiable"] is False
    private = _inspect(vector_key_file.read_text())
    assert private["kind"] == "issuer private key" and private["token_type"] == 1
    assert private["token_key"] == b64url_encode(h(v["pkS"]))
    assert v["skS"] not in json.dumps(private)


def test_inspect_type2_request_and_key_pem(keys: dict[str, Path]) -> None:
    vector = load("rfc9578-type2-blind-rsa-issuance.json")[0]
    request = _inspect(b64url_encode(h(vector["token_request"])))
    assert (request["kind"], request["token_type"]) == ("TokenRequest", 2)
    private = _inspect(keys["t2"].read_text())
    assert private["token_type"] == 2 and "token_key" in private


_SIZES = st.sampled_from([2, 49, 52, 98, 145, 146, 256, 259, 354])


@given(
    st.one_of(
        st.binary(max_size=400),
        _SIZES.flatmap(lambda n: st.binary(min_size=n, max_size=n)),
        _SIZES.flatmap(lambda n: st.binary(min_size=n - 2, max_size=n - 2)).map(
            lambda body: b"\x00\x01" + body
        ),
    )
)
def test_inspect_raises_only_decode_errors(data: bytes) -> None:
    """Any decoded value: described, or refused with the library's DecodeError."""
    try:
        info = inspect_value(b64url_encode(data) if data else "A")
    except DecodeError:
        return
    assert isinstance(info, dict) and "kind" in info
