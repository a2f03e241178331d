"""`pat-middleware origin --workers N` with a Redis store: one token, many workers, one 200.

Real processes: the CLI origin under uvicorn's multi-process supervisor, a real
redis-server or valkey-server, and many concurrent loopback connections.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import rsa

from pat_middleware import IssuerKey, build_authorization
from pat_middleware.cli.commands import main

from ._origin import answer, set_cookies
from ._redis import SERVER_KINDS, initialized, unique_prefix
from ._servers import CLI, cli_process, free_port

ISSUER = "issuer.example"
WORKERS = 3
RACERS = 48
SECRET = "multi-worker-test-secret-0123456789abcdef"


@contextmanager
def origin(key: IssuerKey, *extra: str) -> Iterator[str]:
    """Run `pat-middleware origin --workers 3 ...` without PAT_SECRET in its environment;
    yields its base URL once it answers."""
    port = free_port()
    args = ["origin", "--issuer-name", ISSUER, "--token-key", key.token_key]
    args += ["--port", str(port), "--workers", str(WORKERS), *extra]
    env = {k: v for k, v in os.environ.items() if k != "PAT_SECRET"}
    base = f"http://127.0.0.1:{port}"
    output: list[str] = []
    with cli_process(args, base + "/whoami", env=env, output=output):
        yield base
    assert "Traceback" not in output[0], output[0]
    assert SECRET not in output[0]


def pinned_clients(base: str, count: int) -> dict[int, httpx.Client]:
    """Keep-alive clients, each pinned to a different worker (by the pid /whoami reports)."""
    found: dict[int, httpx.Client] = {}
    spare: list[httpx.Client] = []
    for _ in range(60):
        client = httpx.Client(base_url=base, timeout=10)
        pid = client.get("/whoami").json()["pid"]
        if pid in found:
            spare.append(client)
        else:
            found[pid] = client
        if len(found) == count:
            break
    for client in spare:
        client.close()
    assert len(found) == count, f"only {len(found)} of {count} workers ever answered"
    return found


def whoami(client: httpx.Client) -> int:
    pid: int = client.get("/whoami").json()["pid"]
    return pid


def spread_connections(base: str, count: int) -> list[tuple[int, http.client.HTTPConnection]]:
    """``count`` open connections with their workers' pids, spread over at least two workers.

    Opened one at a time: a worker woken by several pending connections accepts them all."""
    url = urlsplit(base)
    by_pid: dict[int, list[http.client.HTTPConnection]] = {}
    for opened in range(1, 200):
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=20)
        conn.request("GET", "/whoami")
        pid = json.loads(conn.getresponse().read())["pid"]
        by_pid.setdefault(pid, []).append(conn)
        if opened >= count and len(by_pid) > 1:
            break
    assert len(by_pid) > 1, "every connection was served by one worker"
    chosen: list[tuple[int, http.client.HTTPConnection]] = []
    while len(chosen) < count:  # round-robin over the workers
        for pid, conns in by_pid.items():
            if conns and len(chosen) < count:
                chosen.append((pid, conns.pop()))
    for conns in by_pid.values():
        for conn in conns:
            conn.close()
    return chosen


def race(base: str, authorization: str, cookie: str) -> tuple[list[int], set[int]]:
    """RACERS requests at once, each on its own connection, all with one token and cookie.
    Returns their statuses and the pids of the workers that answered them."""
    connections = spread_connections(base, RACERS)
    barrier = threading.Barrier(RACERS)
    statuses: list[int] = []
    lock = threading.Lock()
    headers = {"Authorization": authorization, "Cookie": cookie}

    def one(conn: http.client.HTTPConnection) -> None:
        try:
            barrier.wait(20)
            conn.request("GET", "/protected", headers=headers)
            response = conn.getresponse()
            response.read()
        finally:
            conn.close()
        with lock:
            statuses.append(response.status)

    threads = [threading.Thread(target=one, args=(conn,)) for _, conn in connections]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(statuses) == RACERS
    return statuses, {pid for pid, _ in connections}


def challenge_and_token(
    base: str, key: IssuerKey, private_key: rsa.RSAPrivateKey
) -> tuple[str, str]:
    """(Authorization, Cookie) for one fresh valid token bound to a new session."""
    with httpx.Client(base_url=base, timeout=10) as client:
        reply = client.get("/protected")
    assert reply.status_code == 401
    cookies = set_cookies(reply.headers.multi_items())
    token = answer(reply.headers["www-authenticate"], private_key, key)
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return build_authorization(token), cookie


def assert_one_winner(
    base: str, key: IssuerKey, private_key: rsa.RSAPrivateKey, store_url: str, prefix: str
) -> None:
    authorization, cookie = challenge_and_token(base, key, private_key)
    statuses, pids = race(base, authorization, cookie)
    assert sorted(statuses) == [200] + [401] * (RACERS - 1)
    assert len(pids) > 1, "the racing connections were all served by one worker"
    # The token and cookie were good (one request passed with them): the others were refused
    # as replays, and exactly one nonce is recorded (beside the epoch markers).
    client = redis.Redis.from_url(store_url)
    assert len(list(client.scan_iter(match=prefix + "{*}:*"))) == 1
    client.close()
    with httpx.Client(base_url=base, timeout=10) as http:
        spent = http.get("/protected", headers={"Authorization": authorization, "Cookie": cookie})
        assert spent.status_code == 401


@pytest.fixture(scope="module", params=SERVER_KINDS)
def cli_origin(
    request: pytest.FixtureRequest, issuer_key: IssuerKey
) -> Iterator[tuple[str, str, str]]:
    """(base URL, key prefix, store URL) of an origin with 3 workers and no secret given:
    they share the random one the parent generated. Its store is on Redis, then on Valkey."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    prefix = unique_prefix()
    store = initialized(f"{url}?prefix={prefix}")  # pat-middleware store-init
    with origin(issuer_key, "--replay-store", store) as base:
        yield base, prefix, url


def test_one_token_is_accepted_once_across_workers(
    cli_origin: tuple[str, str, str], issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey
) -> None:
    base, prefix, url = cli_origin
    assert_one_winner(base, issuer_key, rsa_2048, url, prefix)


def test_replay_store_from_the_config_file(
    redis_url: str, issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    main(["store-init", "--replay-store", f"{redis_url}?prefix={prefix}"])
    config = tmp_path / "origin.toml"
    config.write_text(
        f'[pat_middleware]\nreplay_store = "{redis_url}?prefix={prefix}"\nsecret = "{SECRET}"\n',
        encoding="utf-8",
    )
    with origin(issuer_key, "--config", str(config)) as base:
        assert_one_winner(base, issuer_key, rsa_2048, redis_url, prefix)


def test_sessions_and_challenges_work_across_workers(
    cli_origin: tuple[str, str, str], issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey
) -> None:
    """No secret given: the workers share the one the parent generated. A challenge from
    one worker is redeemed on another, and the verified session is honoured by a third."""
    base, _, _ = cli_origin
    clients = pinned_clients(base, WORKERS)
    (pid_a, a), (pid_b, b), (pid_c, c) = clients.items()
    try:
        challenge = a.get("/protected")
        assert challenge.status_code == 401
        cookies = set_cookies(challenge.headers.multi_items())
        token = answer(challenge.headers["www-authenticate"], rsa_2048, issuer_key)
        cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        redeemed = b.get(
            "/protected",
            headers={"Authorization": build_authorization(token), "Cookie": cookie},
        )
        assert redeemed.status_code == 200, redeemed.text
        assert redeemed.json()["via_session"] is False
        cookies.update(set_cookies(redeemed.headers.multi_items()))
        assert "pat_verified" in cookies
        cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        for client in (c, a):
            again = client.get("/protected", headers={"Cookie": cookie})
            assert again.status_code == 200
            assert again.json()["via_session"] is True
        # Every request above stayed on its worker's connection.
        assert (whoami(a), whoami(b), whoami(c)) == (pid_a, pid_b, pid_c)
    finally:
        for client in clients.values():
            client.close()


def test_several_workers_refuse_a_per_process_store(
    issuer_key: IssuerKey, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAT_SECRET", "recorded so that teardown removes what main() sets")
    monkeypatch.delenv("PAT_SECRET")

    def serve(*args: object, **kwargs: object) -> None:
        raise AssertionError("refused starts must not serve")  # rather than serve forever

    monkeypatch.setattr("pat_middleware.cli.servers.uvicorn_run", serve)
    args = ["origin", "--issuer-name", ISSUER, "--token-key", issuer_key.token_key]
    assert main([*args, "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "--workers 2 needs a shared replay store" in err and "--replay-store" in err
    assert "PAT_SECRET" not in os.environ, "nothing generated for a refused start"
    assert main([*args, "--workers", "0"]) == 2
    assert main([*args, "--workers", "2", "--replay-store", "redis://h/0?nope=1"]) == 1
    assert "option 1 of the redis:// URL is unknown" in capsys.readouterr().err


def test_several_workers_without_issuer_keys_exit_1_in_one_line() -> None:
    """The parent checks start-up (directory fetch included) before starting workers: a
    worker failing at start-up would be restarted by uvicorn forever, with a traceback each
    time."""
    args = ["origin", "--issuer-name", ISSUER, "--port", str(free_port()), "--workers", "2"]
    args += ["--issuer-directory", f"http://127.0.0.1:{free_port()}"]
    args += ["--replay-store", "redis://127.0.0.1:1/0"]
    run = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=20)
    assert run.returncode == 1, run.stderr[-2000:]
    assert "issuers[0].directory: no token key could be fetched" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout
