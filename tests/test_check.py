"""`pat-middleware check`: a settings file validated for a CI pipeline, and with `--connect`
its replay store, issuer directories and PST record-key sets reached, against real servers:
our issuer as a process, a PST issuer under uvicorn, a real redis-server, and dead ports."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pat_middleware.cli.commands import main
from pat_middleware.core.jwks import JWKS_PATH
from pat_middleware.settings import SETTINGS_ENV
from pat_middleware.tokens.blind_rsa import IssuerKey

from ._redis import unique_prefix
from ._servers import CLI, cli_process, free_port

SECRET = "check-test-secret-0123456789abcdef-0123456789"


@dataclass(frozen=True)
class Issuers:
    """A type-2 issuer (`pat-middleware issuer`, a process) and a PST issuer (its app under
    uvicorn in this process), both on loopback."""

    name: str
    url: str
    token_key: str
    pst_origin: str


@pytest.fixture(scope="module")
def issuers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issuers]:
    from pat_middleware.cli.serve import reserve_port, serve_asgi
    from pat_middleware.issuer.pst import PSTIssuer
    from pat_middleware.issuer.pst_keys import new_key_set
    from pat_middleware.issuer.pst_server import create_pst_issuer_app

    key = tmp_path_factory.mktemp("check") / "issuer.pem"
    made = subprocess.run(
        [*CLI, "keygen", "--out", str(key)], capture_output=True, text=True, check=True
    )
    port = free_port()
    name = f"127.0.0.1:{port}"
    url = f"http://{name}"
    args = ["issuer", "--key", str(key), "--name", name, "--port", str(port)]
    sock, pst_port = reserve_port()
    pst_origin = f"http://127.0.0.1:{pst_port}"
    pst = PSTIssuer(new_key_set(), issuer_origin=pst_origin)
    with (
        cli_process(args, url + "/.well-known/private-token-issuer-directory"),
        serve_asgi(create_pst_issuer_app(pst), sock=sock),
    ):
        yield Issuers(name, url, made.stdout.strip().splitlines()[-1], pst_origin)


def write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def connected_settings(
    path: Path, *, store: str, directory: str, name: str, jwks: str, pst_origin: str
) -> Path:
    return write(
        path,
        "[pat_middleware]",
        f'secret = "{SECRET}"',
        'protect = ["/login", "/api/*", "glob:/files/*/raw"]',
        'protect_methods = ["POST"]',
        'origin_info = ["www.example.com"]',
        f'replay_store = "{store}"',
        "directory_timeout = 3",
        "",
        "[[pat_middleware.issuers]]",
        f'name = "{name}"',
        f'directory = "{directory}"',
        "",
        "[[pat_middleware.pst_issuers]]",
        f'origin = "{pst_origin}"',
        f'jwks = "{jwks}"',
    )


# ------------------------------------------------------------------------ without --connect


def test_valid_settings_print_a_summary_and_exit_0(
    tmp_path: Path, issuer_key: IssuerKey, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(
        tmp_path / "pat.toml",
        f'secret = "{SECRET}"',
        'protect = ["/login", "/api/*"]',
        'origin_info = ["www.example.com"]',
        'redemption_context = "per-request"',
        "[[issuers]]",
        'name = "issuer.example"',
        f'token_key = "{issuer_key.token_key}"',
    )
    assert main(["check", str(file)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines()[0] == f"{file}: valid"
    assert "issuer.example: 1 static key (type 2)" in out
    assert "token types: 2 (Blind RSA" in out
    assert "protect: /login (exact), /api/ (prefix); every method" in out
    assert "replay store: memory://" in out
    assert "mode: per-request; challenges honoured 60 s" in out


def test_check_reads_pat_settings_by_default(
    tmp_path: Path,
    issuer_key: IssuerKey,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    file = write(
        tmp_path / "env.toml",
        f'secret = "{SECRET}"',
        f'[[issuers]]\nname = "issuer.example"\ntoken_key = "{issuer_key.token_key}"',
    )
    monkeypatch.setenv(SETTINGS_ENV, str(file))
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{file}: valid")
    assert "protect: nothing (decorators only)" in out
    assert "origin_info is empty" in out  # a note, not a problem


@pytest.mark.parametrize(
    ("lines", "setting"),
    [
        (['cookie_samesite = "sometimes"'], "cookie_samesite"),
        (['protect = ["/a/[bc"]'], "protect"),
        (['protect = ["/x"]', "[pat_middleware]", "max_age = 30"], "protect"),
        (["max_agee = 30"], "max_agee"),
    ],
)
def test_a_problem_is_one_line_naming_the_setting_and_exits_1(
    tmp_path: Path, issuer_key: IssuerKey, lines: list[str], setting: str
) -> None:
    issuer = f'name = "issuer.example"\ntoken_key = "{issuer_key.token_key}"'
    table = "pat_middleware." if "[pat_middleware]" in lines else ""
    secret = f'secret = "{SECRET}"'
    body = [*lines, secret] if table else [secret, *lines]  # the secret in its right place
    file = write(tmp_path / "pat.toml", *body, f"[[{table}issuers]]", issuer)
    run = subprocess.run([*CLI, "check", str(file)], capture_output=True, text=True)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout == ""
    [line] = run.stderr.splitlines()
    assert line.startswith(f"pat-middleware check: {setting}: ")
    assert str(file) in line


def test_an_unreadable_file_is_a_problem_with_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["check", "missing.toml"]) == 1
    assert f"cannot read {tmp_path / 'missing.toml'}" in capsys.readouterr().err


def test_no_settings_file_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(SETTINGS_ENV, raising=False)
    assert main(["check"]) == 2
    assert "PAT_SETTINGS" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["check", "a.toml", "b.toml"])
    assert info.value.code == 2


def test_without_connect_nothing_is_reached(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    file = connected_settings(
        tmp_path / "pat.toml",
        store=f"redis://{dead}/0",
        directory=f"http://{dead}",
        name=dead,
        jwks=f"http://{dead}",
        pst_origin=f"http://{dead}",
    )
    assert main(["check", str(file)]) == 0
    out = capsys.readouterr().out
    assert "replay store: redis://" in out
    assert f"{dead}: directory http://{dead}/.well-known/private-token-issuer-directory" in out
    assert "--connect" in out  # says what was not reached


# ---------------------------------------------------------------------------- with --connect


def test_connect_reaches_redis_every_directory_and_jwk_set(
    tmp_path: Path, issuers: Issuers, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    file = connected_settings(
        tmp_path / "pat.toml",
        store=f"{redis_url}?prefix={unique_prefix()}",
        directory=issuers.url,
        name=issuers.name,
        jwks=issuers.pst_origin,
        pst_origin=issuers.pst_origin,
    )
    assert main(["check", "--connect", str(file)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    key_id = IssuerKey.from_base64(issuers.token_key).token_key_id.hex()[:16]
    assert "ok: replay_store: RedisReplayStore(redis://" in out and "answered PING" in out
    assert f"ok: issuers[0].directory: {issuers.name}: directory lists 1 key(s)" in out
    assert f"preferred key id {key_id}" in out
    assert f"ok: pst_issuers[0].jwks: {issuers.pst_origin}: JWK Set lists 1 record key(s)" in out


def test_connect_reports_each_unreachable_thing_and_exits_1(tmp_path: Path) -> None:
    store, directory, jwks = (f"127.0.0.1:{free_port()}" for _ in range(3))
    file = connected_settings(
        tmp_path / "pat.toml",
        store=f"redis://{store}/0?connect_timeout=2",
        directory=f"http://{directory}",
        name=directory,
        jwks=f"http://{jwks}",
        pst_origin=f"http://{jwks}",
    )
    # A process: what start-up would log (refresh warnings) must not add lines here.
    run = subprocess.run([*CLI, "check", "--connect", str(file)], capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stdout.startswith(f"{file}: valid")  # the settings are; what they name is not
    problems = run.stderr.splitlines()
    assert [line.split(": ", 2)[1] for line in problems] == [
        "replay_store",
        "issuers[0].directory",
        "pst_issuers[0].jwks",
    ]
    assert all(line.startswith("pat-middleware check: ") for line in problems)
    assert store in problems[0]
    assert f"http://{directory}/.well-known/private-token-issuer-directory" in problems[1]
    assert f"http://{jwks}{JWKS_PATH}" in problems[2]


def test_connect_a_memory_store_is_opened_and_closed(
    tmp_path: Path, issuer_key: IssuerKey, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(
        tmp_path / "pat.toml",
        f'secret = "{SECRET}"',
        f'[[issuers]]\nname = "issuer.example"\ntoken_key = "{issuer_key.token_key}"',
    )
    run = subprocess.run([*CLI, "check", "--connect", str(file)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "ok: replay_store: MemoryReplayStore" in run.stdout
    assert "opened and closed" in run.stdout
    # A static key: nothing to fetch, so nothing more is reached.
    assert "issuers[0]" not in run.stdout.split("ok: replay_store", 1)[1]


@pytest.mark.parametrize("topology", ["redis_cluster", "redis_sentinel"])
def test_connect_pings_a_redis_cluster_and_a_sentinel_master(
    tmp_path: Path,
    issuer_key: IssuerKey,
    topology: str,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    servers = request.getfixturevalue(topology)
    file = write(
        tmp_path / "pat.toml",
        f'secret = "{SECRET}"',
        f'replay_store = "{servers.url}"',
        f'[[issuers]]\nname = "issuer.example"\ntoken_key = "{issuer_key.token_key}"',
    )
    assert main(["check", "--connect", str(file)]) == 0, capsys.readouterr().err
    assert "answered PING" in capsys.readouterr().out
