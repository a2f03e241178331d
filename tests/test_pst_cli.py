"""`pat-middleware pst-keygen`, `pst-issuer` and `inspect` on PST values."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from pat_middleware.cli.commands import inspect_value, main
from pat_middleware.core.redemption_record import JWKS_PATH, RecordKeySet
from pat_middleware.errors import DecodeError
from pat_middleware.issuer.pst import PSTIssuer
from pat_middleware.issuer.pst_client import begin_issuance, finalize_issuance
from pat_middleware.issuer.pst_keys import PSTKeySet, new_key_set
from pat_middleware.issuer.pst_server import COMMITMENT_PATH, ISSUANCE_PATH, REDEMPTION_PATH
from pat_middleware.issuer.pst_wire import PST_HEADER, IssueResponse, KeyCommitment

from ._servers import CLI, cli_process, free_port

SITE = "https://site.example"


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pst") / "pst-keys.json"
    run = subprocess.run(
        [*CLI, "pst-keygen", "--out", str(path)], capture_output=True, text=True, check=True
    )
    assert len(run.stdout.strip().splitlines()) == 1
    assert run.stdout.startswith(f"wrote PST key set to {path} (mode 0600)")
    return path


def test_pst_keygen_writes_a_private_file_once(key_file: Path) -> None:
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    keys = PSTKeySet.load(key_file)
    assert [k.key_id for k in keys.token_keys] == [1]
    assert main(["pst-keygen", "--out", str(key_file)]) == 2  # refuses to overwrite


def test_pst_keygen_refuses_a_zero_lifetime(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["pst-keygen", "--out", str(tmp_path / "k.json"), "--lifetime", "0"])
    assert info.value.code == 2


def test_pst_issuer_bad_keys_is_one_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    bad.chmod(0o600)
    assert main(["pst-issuer", "--keys", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pat-middleware pst-issuer: pst_keys:")
    assert main(["pst-issuer", "--keys", str(bad), "--issuer-origin", "ftp://x"]) == 2


def test_pst_issuer_process_issues_and_redeems(key_file: Path) -> None:
    port = free_port()
    origin = f"http://localhost:{port}"
    base = f"http://127.0.0.1:{port}"
    output: list[str] = []
    args = ["pst-issuer", "--keys", str(key_file), "--port", str(port), "--batch-size", "2"]
    args += ["--rr-lifetime", "120"]
    with cli_process(args, base + COMMITMENT_PATH, output=output), httpx.Client() as client:
        commitment = KeyCommitment.from_bytes(client.get(base + COMMITMENT_PATH).content)
        assert commitment.batch_size == 2
        request, pending = begin_issuance(2)
        issued = client.post(base + ISSUANCE_PATH, headers={PST_HEADER: request.to_header()})
        response = IssueResponse.from_header(issued.headers[PST_HEADER])
        tokens = finalize_issuance(pending, response, commitment)
        value = tokens[0].redeem_request(SITE, int(time.time())).to_header()
        redeemed = client.post(base + REDEMPTION_PATH, headers={PST_HEADER: value})
        record = redeemed.headers[PST_HEADER]
        jwks = RecordKeySet.from_bytes(client.get(base + JWKS_PATH).content)
    assert jwks.keys[0].kid == PSTKeySet.load(key_file).record_kid
    info = inspect_value(record)
    assert (info["iss"], info["redeeming_origin"], info["key_id"]) == (origin, SITE, 1)
    assert "--additional-private-state-token-key-commitments=" in output[0]
    flag = output[0].split("commitments='", 1)[1].split("'\n", 1)[0]
    assert json.loads(flag)[origin]["PrivateStateTokenV1VOPRF"]["batchsize"] == 2


# ----------------------------------------------------------------------------- inspect


@pytest.fixture(scope="module")
def issuer() -> PSTIssuer:
    return PSTIssuer(new_key_set(), issuer_origin="http://localhost:8555", batch_size=2)


def test_inspect_commitment_and_jwks(issuer: PSTIssuer) -> None:
    info = inspect_value(issuer.commitment().to_bytes().decode())
    assert info["kind"] == "PST key commitment" and info["batchsize"] == 2
    assert info["keys"][0]["key_id"] == 1 and info["keys"][0]["expired"] is False
    jwks = inspect_value(issuer.record_key_set().to_bytes().decode())
    assert jwks["keys"][0]["kid"] == issuer.keys.record_kid


def test_inspect_every_token_header(issuer: PSTIssuer) -> None:
    request, pending = begin_issuance(2)
    info = inspect_value(f"Sec-Private-State-Token: {request.to_header()}")
    assert info == {"kind": "PST issue request", "length": 196, "count": 2}
    assert inspect_value(request.to_header())["kind"] == "PST issue request"  # bare base64
    answer = issuer.issue(request.to_header()).header
    response = inspect_value(f"Sec-Private-State-Token: {answer}")
    assert (response["kind"], response["issued"], response["key_id"]) == (
        "PST issue response",
        2,
        1,
    )
    tokens = finalize_issuance(pending, IssueResponse.from_header(answer), issuer.commitment())
    redeem = tokens[0].redeem_request(SITE, 1_700_000_000).to_header()
    redeemed = inspect_value(f"sec-private-state-token: {redeem}")
    assert redeemed["kind"] == "PST redeem request"
    assert redeemed["redeeming_origin"] == SITE and redeemed["key_id"] == 1
    assert redeemed["redemption_timestamp"].startswith("1700000000 (2023-11-14T22:13:20Z)")
    record = issuer.redeem(redeem).record
    assert inspect_value(f"Sec-Private-State-Token: {record}")["kind"].startswith(
        "PST redemption record"
    )
    header = inspect_value(
        f'Sec-Redemption-Record: "http://localhost:8555";redemption-record="{record}"'
    )
    assert header["kind"] == "Sec-Redemption-Record"
    assert header["records"][0]["record"]["redeeming_origin"] == SITE


def test_inspect_cli_prints_and_refuses(
    issuer: PSTIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", "--json", issuer.commitment().to_bytes().decode()]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "PST key commitment"
    bad = base64.b64encode(b"\x00\xa5" + b"\x00" * 10).decode()
    assert main(["inspect", f"Sec-Private-State-Token: {bad}"]) == 1
    assert capsys.readouterr().err.startswith("pat-middleware inspect: ")
    with pytest.raises(DecodeError):
        inspect_value('{"neither": 1}')


# ------------------------------------------------------------- origin --pst-issuer, pst-demo


def _record_for(base: str, redeeming_origin: str) -> str:
    """A record from the issuer at ``base``, redeemed as Chromium would from that origin."""
    with httpx.Client() as client:
        commitment = KeyCommitment.from_bytes(client.get(base + COMMITMENT_PATH).content)
        request, pending = begin_issuance(1)
        issued = client.post(base + ISSUANCE_PATH, headers={PST_HEADER: request.to_header()})
        response = IssueResponse.from_header(issued.headers[PST_HEADER])
        [token] = finalize_issuance(pending, response, commitment)
        value = token.redeem_request(redeeming_origin, int(time.time())).to_header()
        redeemed = client.post(base + REDEMPTION_PATH, headers={PST_HEADER: value})
        record: str = redeemed.headers[PST_HEADER]
    return record


def test_origin_accepts_records_from_a_pst_issuer(key_file: Path) -> None:
    issuer_port, origin_port = free_port(), free_port()
    issuer_origin = f"http://localhost:{issuer_port}"
    issuer_base = f"http://127.0.0.1:{issuer_port}"
    origin_base = f"http://127.0.0.1:{origin_port}"
    issuer_args = ["pst-issuer", "--keys", str(key_file), "--port", str(issuer_port)]
    origin_args = ["origin", "--pst-issuer", issuer_origin, "--port", str(origin_port)]
    with (
        cli_process(issuer_args, issuer_base + COMMITMENT_PATH),
        cli_process(origin_args, origin_base + "/"),
        httpx.Client(base_url=origin_base) as client,
    ):
        home = client.get("/")
        assert home.status_code == 200 and home.headers["content-type"].startswith("text/html")
        refused = client.get("/protected")
        assert refused.status_code == 401 and "www-authenticate" not in refused.headers
        record = _record_for(issuer_base, f"http://localhost:{origin_port}")
        header = f'"{issuer_origin}";redemption-record="{record}"'
        for _ in range(2):  # a bearer record passes while it lives
            passed = client.get("/protected", headers={"Sec-Redemption-Record": header})
            assert passed.status_code == 200, passed.text
            body = passed.json()
            assert (body["signal"], body["issuer"], body["label"]) == (
                "redemption-record",
                issuer_origin,
                1,
            )
        elsewhere = _record_for(issuer_base, "https://elsewhere.example")
        header = f'"{issuer_origin}";redemption-record="{elsewhere}"'
        assert (
            client.get("/protected", headers={"Sec-Redemption-Record": header}).status_code == 401
        )


def test_origin_needs_an_issuer_of_some_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["origin"]) == 2
    assert "--pst-issuer" in capsys.readouterr().err
    assert main(["origin", "--token-key", "AAAA"]) == 2
    assert "need --issuer-name" in capsys.readouterr().err


def test_pst_demo_serves_issuer_and_origin_and_prints_the_chromium_line() -> None:
    issuer_port, origin_port = free_port(), free_port()
    output: list[str] = []
    args = ["pst-demo", "--issuer-port", str(issuer_port), "--origin-port", str(origin_port)]
    origin = f"http://127.0.0.1:{origin_port}"
    with cli_process(args, origin + "/", output=output), httpx.Client(base_url=origin) as client:
        for page in ("/", "/issuer", "/redeemer"):
            response = client.get(page)
            assert response.status_code == 200 and "<title>" in response.text
        assert client.get("/protected").status_code == 401
        commitment = httpx.get(f"http://127.0.0.1:{issuer_port}{COMMITMENT_PATH}").json()
        record = _record_for(f"http://127.0.0.1:{issuer_port}", f"http://localhost:{origin_port}")
        header = f'"http://localhost:{issuer_port}";redemption-record="{record}"'
        assert (
            client.get("/protected", headers={"Sec-Redemption-Record": header}).status_code == 200
        )
    printed = "".join(output)
    assert "--additional-private-state-token-key-commitments=" in printed
    flag = printed.split("commitments=", 1)[1].split("' ", 1)[0]
    assert json.loads(flag) == {f"http://localhost:{issuer_port}": commitment}


# ------------------------------------------------------------- inspect: the remaining forms


def test_inspect_bare_forms_of_every_token_header(issuer: PSTIssuer) -> None:
    """Each Sec-Private-State-Token value without its header name, as DevTools shows it,
    and Sec-Redemption-Record as a bare structured-field list."""
    request, pending = begin_issuance(1)
    answer = issuer.issue(request.to_header()).header
    assert inspect_value(answer)["kind"] == "PST issue response"
    tokens = finalize_issuance(pending, IssueResponse.from_header(answer), issuer.commitment())
    redeem = tokens[0].redeem_request(SITE, 1_700_000_000).to_header()
    assert inspect_value(redeem)["kind"] == "PST redeem request"
    record = issuer.redeem(redeem).record
    assert inspect_value(f'"{record}"')["kind"].startswith("PST redemption record")
    header = inspect_value(f'"http://localhost:8555";redemption-record="{record}"')
    assert header["kind"] == "Sec-Redemption-Record"
    assert header["records"][0]["issuer"] == "http://localhost:8555"


def test_inspect_marks_expired_commitment_keys(issuer: PSTIssuer) -> None:
    commitment = issuer.commitment().to_json()
    [key] = commitment["PrivateStateTokenV1VOPRF"]["keys"].values()
    key["expiry"] = "1000000"  # 1970
    info = inspect_value(json.dumps(commitment))
    assert info["keys"][0]["expired"] is True
    assert info["keys"][0]["expiry"] == "1970-01-01T00:00:01Z"


def test_inspect_the_chromium_flag_value(issuer: PSTIssuer) -> None:
    """What pst-issuer prints for --additional-private-state-token-key-commitments: one
    commitment per issuer origin."""
    flag = {"http://localhost:8555": issuer.commitment().to_json()}
    info = inspect_value(json.dumps(flag))
    assert info["kind"] == "PST key commitments by issuer"
    [(origin, commitment)] = info["issuers"].items()
    assert origin == "http://localhost:8555"
    assert commitment["kind"] == "PST key commitment" and commitment["keys"][0]["key_id"] == 1


def test_inspect_names_what_is_wrong_inside_a_value(issuer: PSTIssuer) -> None:
    """A redeem request whose client data is not CBOR still decodes, with the error in
    place; so does a redemption-record header whose record is not a JWS."""
    request, pending = begin_issuance(1)
    answer = issuer.issue(request.to_header()).header
    [token] = finalize_issuance(pending, IssueResponse.from_header(answer), issuer.commitment())
    good = token.redeem_request(SITE, 1_700_000_000)
    from dataclasses import replace

    bad = replace(good, client_data=b"\xff\xff")
    info = inspect_value(f"Sec-Private-State-Token: {bad.to_header()}")
    assert info["kind"] == "PST redeem request" and info["client_data"]["hex"] == "ffff"
    header = inspect_value('Sec-Redemption-Record: "https://i.example";redemption-record="x.y.z"')
    assert "error" in header["records"][0]["record"]
    with pytest.raises(DecodeError, match="neither a PST key commitment"):
        inspect_value('{"http://localhost:8555": {"not": "a commitment"}}')


# ------------------------------------------------------------------------------ pst-rotate

DAY = 86_400


def _key_set(path: Path, *, age_days: float, lifetime_days: float = 180) -> PSTKeySet:
    """A key set whose one token key was made ``age_days`` ago, saved (0600) to ``path``."""
    keys = new_key_set(now=time.time() - age_days * DAY, lifetime=int(lifetime_days * DAY))
    keys.save(path)
    return keys


def test_pst_rotate_adds_a_key_after_60_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.json"
    before = _key_set(path, age_days=61)
    assert main(["pst-rotate", str(path)]) == 0
    out = capsys.readouterr().out
    after = PSTKeySet.load(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [k.key_id for k in after.token_keys] == [1, 2]
    assert after.commitment_id == before.commitment_id + 1
    assert after.record_kid == before.record_kid  # the record key stays
    new = after.token_keys[1]
    now = time.time()
    # Signing from 7 days on (browsers hold the commitment first), living 180 days.
    assert abs(new.not_before_us / 1e6 - (now + 7 * DAY)) < 60
    assert new.expiry_us - new.not_before_us == 180 * DAY * 1_000_000
    assert "token key 2 added" in out and "restart pst-issuer" in out


def test_pst_rotate_refuses_sooner_than_60_days_and_leaves_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.json"
    _key_set(path, age_days=30)
    before = path.read_bytes()
    assert main(["pst-rotate", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pat-middleware pst-rotate: pst_keys: ")
    assert "60 days" in err and "allowed from" in err
    assert path.read_bytes() == before


def test_pst_rotate_drops_expired_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pat_middleware.issuer.pst_keys import rotate_token_key

    path = tmp_path / "keys.json"
    now = time.time()
    keys = new_key_set(now=now - 200 * DAY, lifetime=100 * DAY)  # expired 100 days ago
    keys = rotate_token_key(keys, now=now - 130 * DAY, lifetime=365 * DAY)
    keys.save(path)
    assert main(["pst-rotate", str(path)]) == 0
    assert [k.key_id for k in PSTKeySet.load(path).token_keys] == [2, 3]
    out = capsys.readouterr().out
    assert "dropped expired token key(s) 1" in out


def test_pst_rotate_stops_at_six_live_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Chrome takes at most six keys: with six live, a seventh is refused, however old the
    newest one is."""
    from pat_middleware.issuer.pst_keys import rotate_token_key

    path = tmp_path / "keys.json"
    start = time.time() - (5 * 61 + 62) * DAY
    keys = new_key_set(now=start, lifetime=400 * DAY)
    for step in range(1, 6):
        keys = rotate_token_key(keys, now=start + step * 61 * DAY, lifetime=400 * DAY)
    keys.save(path)
    assert len(keys.unexpired(int(time.time() * 1_000_000))) == 6
    before = path.read_bytes()
    assert main(["pst-rotate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "6 live keys" in err and path.read_bytes() == before


def test_pst_rotate_record_key_keeps_the_old_one_published(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.json"
    before = _key_set(path, age_days=1)
    args = ["pst-rotate", str(path), "--record-key", "--keep-record-key", "7200"]
    assert main(args) == 0
    after = PSTKeySet.load(path)
    assert after.record_kid != before.record_kid
    assert [k.key_id for k in after.token_keys] == [1]  # token keys untouched
    kids = {key.kid for key in after.record_key_set(int(time.time() * 1e6)).keys}
    assert kids == {before.record_kid, after.record_kid}
    later = {key.kid for key in after.record_key_set(int((time.time() + 7300) * 1e6)).keys}
    assert later == {after.record_kid}
    assert "record signing key replaced" in capsys.readouterr().out


def test_pst_rotate_dry_run_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.json"
    _key_set(path, age_days=90)
    before = path.read_bytes()
    assert main(["pst-rotate", str(path), "--dry-run"]) == 0
    assert path.read_bytes() == before
    assert "token key 2 added" in capsys.readouterr().out


def test_pst_rotate_refuses_a_file_others_may_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.json"
    _key_set(path, age_days=90)
    path.chmod(0o644)
    assert main(["pst-rotate", str(path)]) == 1
    assert "chmod 600" in capsys.readouterr().err
