"""A per-process replay store (memory://) where several processes may serve: the signs the
policy reads (a fork, multiprocessing, gunicorn's configuration, ``wsgi.multiprocess``), the
refusal (``store_unavailable_status`` with Retry-After, or a failed ASGI start-up), and the
``allow_per_process_replay`` opt-in. Real gunicorn and uvicorn servers where it matters;
the named attacks are in test_security.py."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pat_middleware import IssuerKey
from pat_middleware.integrations.asgi import PrivateTokenMiddleware
from pat_middleware.integrations.wsgi import several_processes
from pat_middleware.policy import Outcome, Policy, RequestInfo
from pat_middleware.settings import Settings
from pat_middleware.stores import process as _process

from ._origin import Browser, answer, header, make_settings
from ._servers import free_port
from ._workers import (
    gunicorn,
    run_to_exit,
    send,
    settings_mapping,
    token_for_the_secret,
    workers_answering,
    write_settings,
)

STOP_TIMEOUT = 30


@pytest.fixture(scope="module")
def settings_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("worker-processes")


# ------------------------------------------------------------------ real servers


@pytest.fixture(scope="module")
def flask_four_workers(settings_dir: Path, issuer_key: IssuerKey) -> Iterator[str]:
    settings = write_settings(settings_dir / "flask.toml", issuer_key)
    with gunicorn("flask", settings, "--workers", "4") as base:
        yield base


@pytest.fixture(scope="module")
def opted_in_four_workers(settings_dir: Path, issuer_key: IssuerKey) -> Iterator[str]:
    settings = write_settings(
        settings_dir / "opt-in.toml", issuer_key, allow_per_process_replay=True
    )
    with gunicorn("wsgi", settings, "--workers", "4") as base:
        workers_answering(base, 4)
        yield base


def test_flask_under_gunicorn_workers_fails_closed(
    flask_four_workers: str, issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey
) -> None:
    authorization, cookie = token_for_the_secret(issuer_key, rsa_2048)
    replies = [send(flask_four_workers, authorization, cookie) for _ in range(8)]
    assert [r.status_code for r in replies] == [503] * 8
    assert {r.headers.get("retry-after") for r in replies} == {"60"}
    assert send(flask_four_workers).status_code == 503


def test_the_opt_in_lets_each_worker_serve_on_its_own(
    opted_in_four_workers: str, issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey
) -> None:
    """allow_per_process_replay = true: no refusal for the topology; each worker answers
    tokens as a single process would, and a challenge is redeemable only on the worker that
    sent it (its store's epoch is in the context): one 200 at most, wherever the 8 land."""
    challenged = send(opted_in_four_workers)
    assert challenged.status_code == 401
    cookie = "; ".join(f"{k}={v}" for k, v in challenged.cookies.items())
    from pat_middleware import build_authorization

    authorization = build_authorization(
        answer(challenged.headers["www-authenticate"], rsa_2048, issuer_key)
    )
    statuses = [send(opted_in_four_workers, authorization, cookie).status_code for _ in range(8)]
    assert set(statuses) <= {200, 401}, statuses
    assert statuses.count(200) <= 1, statuses


def test_uvicorn_workers_with_a_memory_store_stop_at_start_up(
    settings_dir: Path, issuer_key: IssuerKey
) -> None:
    """uvicorn --workers 2 spawns its workers with multiprocessing: the middleware fails
    the lifespan start-up, and uvicorn stops every worker and itself (it exits 0 all the
    same: a multi-worker uvicorn 0.55 reports a child's start-up failure only in its log)."""
    settings = write_settings(settings_dir / "uvicorn.toml", issuer_key)
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "tests._served_apps:asgi", "--factory"]
    argv += ["--workers", "2", "--port", str(port), "--log-level", "warning"]
    _, output = run_to_exit(argv, settings, STOP_TIMEOUT)
    lines = [line for line in output.splitlines() if "replay_store:" in line]
    assert lines, output
    assert all("started by multiprocessing" in line for line in lines), output
    assert "Traceback" not in output


def test_gunicorn_uvicorn_workers_fail_to_boot(settings_dir: Path, issuer_key: IssuerKey) -> None:
    """gunicorn -k UvicornWorker -w 2: no wsgi.multiprocess in ASGI, but the worker's own
    configuration is on the stack; the start-up fails and gunicorn halts with an error."""
    settings = write_settings(settings_dir / "uvicorn-worker.toml", issuer_key)
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{free_port()}"]
    argv += ["--workers", "2", "--worker-class", "uvicorn.workers.UvicornWorker"]
    argv += ["--log-level", "warning", "tests._served_apps:asgi()"]
    returncode, output = run_to_exit(argv, settings, STOP_TIMEOUT)
    assert returncode != 0, output
    assert "replay_store: memory:// keeps spent tokens in this process only" in output
    assert "gunicorn runs 2 workers" in output


# ----------------------------------------------------------------- in this process


def _request(token: bytes | None = None) -> RequestInfo:
    from pat_middleware import build_authorization

    authorization = build_authorization(token) if token is not None else None
    return RequestInfo("GET", "/protected", authorization=authorization)


def test_a_forked_child_fails_closed_and_its_parent_does_not(issuer_key: IssuerKey) -> None:
    policy = Policy(make_settings(issuer_key))
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads about
        pid = os.fork()
    if pid == 0:  # the child: report and leave at once
        try:
            decision = policy.evaluate(_request())
            os.write(
                write_end, f"{decision.status} {header(decision.headers, 'Retry-After')}".encode()
            )
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as reader:
        assert reader.read() == "503 60"
    assert policy.evaluate(_request()).status == 401
    assert policy.check_process() is None


def test_a_fork_that_skipped_the_hooks_is_caught_when_a_token_comes(
    issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A C extension forking without PyOS_AfterFork_Child leaves the mark as it was: the
    pid is compared before any token is spent."""
    policy = Policy(make_settings(issuer_key))
    browser = Browser(policy)
    token = answer(browser.challenge(), rsa_2048, issuer_key)
    mark = _process.current()
    monkeypatch.setattr(_process, "_current", mark)  # restored afterwards
    monkeypatch.setattr(mark, "pid", mark.pid + 1_000_000)  # "another process"
    assert browser.get().status == 401  # no token: the hooks' mark still says "here"
    refused = browser.get(token=token)
    assert (refused.outcome, refused.status) == (Outcome.UNAVAILABLE, 503)
    assert "forked" in (policy.check_process() or "")


def test_a_process_started_by_multiprocessing_is_refused(issuer_key: IssuerKey) -> None:
    from ._workers import check_in_a_spawned_process

    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        refused = pool.apply(check_in_a_spawned_process, (settings_mapping(issuer_key),))
        allowed = pool.apply(
            check_in_a_spawned_process,
            (settings_mapping(issuer_key, allow_per_process_replay=True),),
        )
        shared = pool.apply(
            check_in_a_spawned_process,
            (settings_mapping(issuer_key, replay_store="redis://127.0.0.1:1/0"),),
        )
    assert refused is not None and refused.startswith("replay_store: memory:// ")
    assert "started by multiprocessing" in refused
    assert "allow_per_process_replay = true" in refused
    assert allowed is None and shared is None


def test_wsgi_multiprocess_is_heard_except_from_wsgiref() -> None:
    assert several_processes({"wsgi.multiprocess": True, "SERVER_SOFTWARE": "gunicorn/23"})
    assert several_processes({"wsgi.multiprocess": True})
    assert not several_processes({"wsgi.multiprocess": False, "SERVER_SOFTWARE": "gunicorn/23"})
    assert not several_processes({})
    # wsgiref (and Django's runserver, built on it) say True from one process.
    assert not several_processes(
        {"wsgi.multiprocess": True, "SERVER_SOFTWARE": "WSGIServer/0.2 CPython/3.11.7"}
    )


def test_each_refused_request_logs_one_line_naming_replay_store(
    issuer_key: IssuerKey, caplog: pytest.LogCaptureFixture
) -> None:
    policy = Policy(make_settings(issuer_key))
    assert not policy.server_noted
    policy.note_server(multiprocess=True)
    assert policy.server_noted
    caplog.set_level(logging.WARNING, logger="pat_middleware")
    for _ in range(3):
        decision = policy.evaluate(_request())
        assert (decision.outcome, decision.status) == (Outcome.UNAVAILABLE, 503)
        assert header(decision.headers, "Retry-After") == "60"
        assert header(decision.headers, "WWW-Authenticate") is None
    lines = [r.getMessage() for r in caplog.records if r.name == "pat_middleware.decision"]
    assert len(lines) == 3
    assert all("replay_store: memory:// keeps spent tokens" in line for line in lines)
    assert all("\n" not in line and "wsgi.multiprocess" in line for line in lines)


@pytest.mark.parametrize("status", [503, 429])
def test_the_refusal_uses_store_unavailable_status(issuer_key: IssuerKey, status: int) -> None:
    policy = Policy(make_settings(issuer_key, store_unavailable_status=status))
    policy.note_server(multiprocess=True)
    assert policy.evaluate(_request()).status == status


def test_the_opt_in_and_shared_stores_hear_nothing(issuer_key: IssuerKey) -> None:
    for settings in (
        make_settings(issuer_key, allow_per_process_replay=True),
        make_settings(issuer_key, replay_store="redis://127.0.0.1:1/0"),
    ):
        policy = Policy(settings)
        assert policy.server_noted, "adapters need not tell it anything"
        policy.note_server(multiprocess=True)
        assert policy.check_process() is None
        assert policy.evaluate(_request()).status == 401


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_allow_per_process_replay_is_validated(issuer_key: IssuerKey, value: object) -> None:
    from pat_middleware.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as info:
        make_settings(issuer_key, allow_per_process_replay=value)
    assert info.value.setting == "allow_per_process_replay"
    assert make_settings(issuer_key).allow_per_process_replay is False


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})


def _lifespan(middleware: PrivateTokenMiddleware) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(middleware({"type": "lifespan"}, receive, send))
    return sent


def test_the_asgi_start_up_fails_where_requests_would(issuer_key: IssuerKey) -> None:
    policy = Policy(make_settings(issuer_key))
    assert _lifespan(PrivateTokenMiddleware(_ok, policy=policy)) == [
        {"type": "lifespan.startup.complete"}
    ]
    policy.note_server(multiprocess=True)
    [failed] = _lifespan(PrivateTokenMiddleware(_ok, policy=policy))
    assert failed["type"] == "lifespan.startup.failed"
    assert failed["message"].startswith("replay_store: memory:// keeps spent tokens")


def test_the_check_runs_once_per_process(
    issuer_key: IssuerKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []

    def counting() -> int | None:
        calls.append(time.monotonic())
        return None

    monkeypatch.setattr(_process, "gunicorn_workers", counting)
    policy = Policy(make_settings(issuer_key))
    for _ in range(5):
        policy.evaluate(_request())
    assert policy.check_process() is None
    assert len(calls) == 1


def test_settings_name_the_opt_in(issuer_key: IssuerKey) -> None:
    settings = Settings.from_mapping(settings_mapping(issuer_key, allow_per_process_replay=True))
    assert settings.allow_per_process_replay is True


def test_with_the_opt_in_a_forked_child_refuses_the_parents_challenges(
    issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey
) -> None:
    """Parent and child each keep a copy of the store from the fork on: a challenge the
    parent sent is redeemable in the parent only, so it is never spent in both."""
    policy = Policy(make_settings(issuer_key, allow_per_process_replay=True))
    browser = Browser(policy)
    token = answer(browser.challenge(), rsa_2048, issuer_key)
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads about
        pid = os.fork()
    if pid == 0:
        try:
            decision = browser.get(token=token)
            os.write(write_end, f"{decision.status} {decision.reason}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as reader:
        assert reader.read() == "401 challenge_mismatch"
    assert browser.get(token=token).outcome is Outcome.PASS


def test_policies_sharing_one_store_share_its_epoch(
    issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey
) -> None:
    """The epoch belongs to the store: two policies recording in one store redeem each
    other's challenges, once."""
    from pat_middleware.stores import MemoryReplayStore

    store = MemoryReplayStore()
    settings = make_settings(issuer_key)
    first, second = Policy(settings, replay_store=store), Policy(settings, replay_store=store)
    browser = Browser(first)
    token = answer(browser.challenge(), rsa_2048, issuer_key)
    browser.policy = second
    assert browser.get(token=token).outcome is Outcome.PASS
    browser.policy = first
    replay = browser.get(token=token)
    assert replay.reason is not None and replay.reason.value == "replayed"
