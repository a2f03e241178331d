"""Issuer keys from a directory, against our rotating issuer under a real uvicorn server.

Most tests share one fake clock between the issuer and the origin's policy and refresh by
hand, so rotations happen exactly when a test says. The last one runs on the real clock
with the background refresher, the way a deployment does.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from pat_middleware.cli.demo import create_origin_app, pick_challenge
from pat_middleware.core.headers import build_authorization
from pat_middleware.discovery import DirectoryFetchError, DirectoryRequest, DirectoryResponse
from pat_middleware.discovery.refresher import USER_AGENT, HttpFetcher
from pat_middleware.errors import ConfigurationError, Reason
from pat_middleware.issuer import DIRECTORY_PATH, LEGACY_DIRECTORY_PATH, Issuer
from pat_middleware.issuer.client import fetch_token
from pat_middleware.issuer.rotation import RotatingIssuer, new_rsa_key
from pat_middleware.issuer.server import create_issuer_app
from pat_middleware.policy import Outcome, Policy
from pat_middleware.settings import Settings
from pat_middleware.tokens.blind_rsa import IssuerKey, encode_pss_spki
from tests._servers import serve_asgi

from ._origin import SECRET, Browser, FakeClock, answer, header
from .conftest import sign_token

ISSUER_NAME = "issuer.example"
PERIOD = 10
T0 = 1_700_000_000


class Recorder:
    """Counts the origin's directory requests and answers them with 503 while ``down``
    (clients, which cache the directory, still get theirs)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.directory_hits = 0
        self.down = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] in (DIRECTORY_PATH, LEGACY_DIRECTORY_PATH)
            and (b"user-agent", USER_AGENT.encode()) in scope["headers"]
        ):
            self.directory_hits += 1
            if self.down:
                await PlainTextResponse("maintenance", status_code=503)(scope, receive, send)
                return
        await self.app(scope, receive, send)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture(scope="module")
def key_pool() -> list[rsa.RSAPrivateKey]:
    """Keys made once for the whole module: generating them is most of a rotation's cost."""
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(8)]


def pool_factory(pool: list[rsa.RSAPrivateKey]) -> Callable[[], rsa.RSAPrivateKey]:
    """Hands out the pool's keys in order (each once per issuer), then fresh ones."""
    keys = iter(pool)
    return lambda: next(keys, None) or new_rsa_key()


@pytest.fixture
def rotating(clock: FakeClock, key_pool: list[rsa.RSAPrivateKey]) -> RotatingIssuer:
    return RotatingIssuer(
        ISSUER_NAME, period=PERIOD, start=T0, clock=clock, key_factory=pool_factory(key_pool)
    )


@pytest.fixture
def recorder(rotating: RotatingIssuer) -> Recorder:
    return Recorder(create_issuer_app(rotating))


@pytest.fixture
def issuer_url(recorder: Recorder) -> Iterator[str]:
    with serve_asgi(recorder) as url:
        yield url


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as c:
        yield c


def settings(issuer: dict[str, Any], **overrides: Any) -> Settings:
    data: dict[str, Any] = {
        "issuers": [{"name": ISSUER_NAME, **issuer}],
        "secret": SECRET,
        "protect": ["/protected"],
        "directory_refresh_min": 1,
        "verified_duration": 0,  # every request shows a token: no verified sessions
        **overrides,
    }
    return Settings.from_mapping(data)


@pytest.fixture
def make_policy(clock: FakeClock) -> Iterator[Callable[..., Policy]]:
    made: list[Policy] = []

    def make(issuer: dict[str, Any], *, background: bool = False, **overrides: Any) -> Policy:
        policy = Policy(
            settings(issuer, **overrides), clock=clock, refresh_in_background=background
        )
        made.append(policy)
        return policy

    yield make
    for policy in made:
        policy.close()


@dataclass
class World:
    """The rotating issuer under uvicorn, the clock it shares with the origins, and a client."""

    rotating: RotatingIssuer
    recorder: Recorder
    issuer_url: str
    clock: FakeClock
    client: httpx.Client
    make_policy: Callable[..., Policy]

    def origin(self, *, background: bool = False, **overrides: Any) -> tuple[Policy, Browser]:
        """A policy fetching this issuer's directory, and a browser for it."""
        policy = self.make_policy(
            {"directory": self.issuer_url}, background=background, **overrides
        )
        return policy, Browser(policy)

    def preferred(self) -> IssuerKey:
        """The key the issuer's clients use now."""
        return self.rotating.preferred_key(self.clock.now)

    def mint(self, www_authenticate: str, key: IssuerKey | None = None) -> tuple[bytes, IssuerKey]:
        """Run issuance over HTTP for the origin's challenge, under the token-key it sent
        (or ``key``)."""
        challenge, advertised_key = pick_challenge(www_authenticate)
        key = key or advertised_key
        return fetch_token(challenge, key, self.issuer_url, self.client).to_bytes(), key


@pytest.fixture
def world(
    rotating: RotatingIssuer,
    recorder: Recorder,
    issuer_url: str,
    clock: FakeClock,
    client: httpx.Client,
    make_policy: Callable[..., Policy],
) -> World:
    return World(rotating, recorder, issuer_url, clock, client, make_policy)


def advertised(browser: Browser) -> IssuerKey:
    return pick_challenge(browser.challenge())[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def _key_ids(policy: Policy) -> set[bytes]:
    return {trusted.key.token_key_id for trusted in policy.keys}


# ------------------------------------------------------------------------- start-up


def test_start_up_fetches_the_directory_and_advertises_the_preferred_key(world: World) -> None:
    policy, browser = world.origin()
    assert world.recorder.directory_hits == 1
    assert advertised(browser) == world.preferred()
    # The next key is already trusted; the one after it is not published yet.
    published = world.rotating.issuer_at(world.clock.now).public_keys
    assert _key_ids(policy) == {k.token_key_id for k in published}
    assert len(published) == 2


def test_start_up_without_a_reachable_directory_names_the_setting(world: World) -> None:
    world.recorder.down = True
    with pytest.raises(ConfigurationError) as info:
        world.origin()
    assert info.value.setting == "issuers[0].directory"
    assert "HTTP 503" in info.value.message
    assert "directory_require_keys" in info.value.message


def test_start_up_without_keys_when_allowed_refuses_with_503_until_keys_arrive(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    port = _free_port()
    with caplog.at_level(logging.WARNING, logger="pat_middleware"):
        policy = world.make_policy(
            {"directory": f"http://127.0.0.1:{port}"}, directory_require_keys=False
        )
    assert all(r.exc_info is None for r in caplog.records)
    assert any("starting without its keys" in r.getMessage() for r in caplog.records)
    browser = Browser(policy)
    decision = browser.get()
    assert (decision.outcome, decision.status) == (Outcome.UNAVAILABLE, 503)
    assert header(decision.headers, "Retry-After") == "30"
    assert header(decision.headers, "WWW-Authenticate") is None

    with serve_asgi(create_issuer_app(world.rotating), port=port):
        world.clock.advance(1)  # the failed fetch backs off for directory_refresh_min
        policy.refresh_keys(force=False)
    assert advertised(browser) == world.preferred()


def test_static_keys_keep_working_alongside_the_directory(
    world: World, issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey
) -> None:
    policy = world.make_policy({"directory": world.issuer_url, "token_key": issuer_key.token_key})
    browser = Browser(policy)
    challenge, key = pick_challenge(browser.challenge())
    assert key == world.preferred()  # challenges advertise the directory's key ...
    decision = browser.get(token=sign_token(rsa_2048, issuer_key, challenge))
    assert decision.outcome is Outcome.PASS, decision  # ... and the static key still verifies


def test_legacy_directory_path_after_a_404(
    make_policy: Callable[..., Policy], rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    app = create_issuer_app(Issuer(ISSUER_NAME, rsa_2048))

    async def legacy_only(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == DIRECTORY_PATH:
            await PlainTextResponse("not here", status_code=404)(scope, receive, send)
            return
        await app(scope, receive, send)

    with serve_asgi(legacy_only) as url:
        policy = make_policy({"directory": url})
    assert advertised(Browser(policy)) == issuer_key


def test_another_issuers_directory_listing_our_key_does_not_capture_our_tokens(
    make_policy: Callable[..., Policy], rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    """A directory (hostile or mistaken) that lists another trusted issuer's key, in an
    issuer configured before it: that issuer's tokens still pass, under its own name."""
    other = "copycat.example"
    with serve_asgi(create_issuer_app(Issuer(other, rsa_2048))) as url:
        policy = make_policy(
            {"token_key": issuer_key.token_key},
            issuers=[
                {"name": other, "directory": url},
                {"name": ISSUER_NAME, "token_key": issuer_key.token_key},
            ],
        )
    browser = Browser(policy)
    www_authenticate = browser.challenge()
    for name in (ISSUER_NAME, other):
        decision = browser.get(token=answer(www_authenticate, rsa_2048, issuer_key, issuer=name))
        assert decision.outcome is Outcome.PASS, (name, decision)
        assert decision.token is not None and decision.token.issuer == name


# ------------------------------------------------------------------------ rotation


def test_rotation_end_to_end_no_valid_token_is_refused(world: World) -> None:
    policy, browser = world.origin()
    used: set[bytes] = set()
    step = PERIOD / 2  # mid-period and right at each not-before
    for _ in range(int(4 * PERIOD / step)):  # four rotations
        world.clock.advance(step)
        policy.refresh_keys(force=False)  # what the background thread does when due
        www_authenticate = browser.challenge()
        token, key = world.mint(www_authenticate)
        assert key == world.preferred()
        decision = browser.get(token=token)
        assert decision.outcome is Outcome.PASS, (world.clock.now - T0, decision)
        used.add(key.token_key_id)
    assert len(used) == 5  # key 0, then one per rotation
    # The directory's max-age runs to its next change: one fetch per change, not per step.
    assert world.recorder.directory_hits == 1 + 4


def test_token_minted_under_the_previous_key_verifies_after_the_switch(world: World) -> None:
    _, browser = world.origin()
    world.clock.advance(PERIOD - 1)  # one second before key 1 takes over
    old_token, old_key = world.mint(browser.challenge())
    assert old_key == world.rotating.preferred_key(T0)
    hits = world.recorder.directory_hits

    world.clock.advance(2)
    new_key = advertised(browser)
    # The switch happened at key 1's not-before, from what the last fetch said: no fetch.
    assert new_key == world.preferred() != old_key
    assert world.recorder.directory_hits == hits

    decision = browser.get(token=old_token)
    assert decision.outcome is Outcome.PASS, decision
    assert decision.token is not None and decision.token.token_key_id == old_key.token_key_id.hex()
    new_token, key = world.mint(browser.challenge())
    assert key == new_key
    assert browser.get(token=new_token).outcome is Outcome.PASS


def test_empty_context_challenge_follows_the_rotation(world: World) -> None:
    """none mode: the one static challenge header is rebuilt with the new token-key."""
    _, browser = world.origin(redemption_context="none", allow_per_process_replay=True)
    world.clock.advance(PERIOD - 1)
    before = browser.challenge()
    token, old_key = world.mint(before)
    world.clock.advance(2)
    after = browser.challenge()
    assert pick_challenge(after)[1] == world.preferred() != old_key
    assert pick_challenge(after)[0] == pick_challenge(before)[0]  # same challenge bytes
    assert browser.get(token=token).outcome is Outcome.PASS
    assert browser.get(token=token).reason is Reason.REPLAYED


def test_removed_key_is_kept_for_the_grace_period(world: World) -> None:
    policy, browser = world.origin(directory_key_grace=100, max_age=300)
    token, key0 = world.mint(browser.challenge())
    world.clock.advance(2 * PERIOD)  # key 0 leaves the directory now
    policy.refresh_keys()
    published = world.rotating.issuer_at(world.clock.now).public_keys
    assert key0.token_key_id not in {k.token_key_id for k in published}
    assert key0.token_key_id in _key_ids(policy)
    world.clock.advance(99)
    assert browser.get(token=token).outcome is Outcome.PASS
    world.clock.advance(1)
    assert key0.token_key_id not in _key_ids(policy)


# -------------------------------------------------------------- unknown key refresh


def test_unknown_key_triggers_one_rate_limited_refresh_and_a_later_token_passes(
    world: World, other_rsa_2048: rsa.RSAPrivateKey
) -> None:
    # The schedule alone would not refresh for an hour: only unknown keys do.
    policy, browser = world.origin(
        background=True, directory_refresh_min=3600, directory_unknown_key_refresh=30
    )
    assert world.recorder.directory_hits == 1
    world.clock.advance(2 * PERIOD)  # the issuer moved on to key 2, which the origin never saw
    www_authenticate = browser.challenge()
    current = world.preferred()
    assert current.token_key_id not in _key_ids(policy)

    refused = browser.get(token=world.mint(www_authenticate, current)[0])
    assert (refused.outcome, refused.reason) == (Outcome.REJECT, Reason.UNKNOWN_KEY)
    _wait_for(lambda: world.recorder.directory_hits == 2)
    _wait_for(lambda: browser.get(token=world.mint(www_authenticate, current)[0]).allowed)

    # A key no directory lists: refused each time, refreshing at most once per 30 s.
    challenge, _ = pick_challenge(www_authenticate)
    stranger = IssuerKey.from_spki(encode_pss_spki(other_rsa_2048.public_key()))
    for _ in range(5):
        forged = sign_token(other_rsa_2048, stranger, challenge)
        assert browser.get(token=forged).reason is Reason.UNKNOWN_KEY
    time.sleep(0.2)  # room for a (wrong) refresh to show up
    assert world.recorder.directory_hits == 2
    world.clock.advance(30)
    forged = sign_token(other_rsa_2048, stranger, challenge)
    assert browser.get(token=forged).reason is Reason.UNKNOWN_KEY
    _wait_for(lambda: world.recorder.directory_hits == 3)


# -------------------------------------------------------------------- directory down


def test_directory_down_keeps_the_last_good_keys_and_recovers(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    policy, browser = world.origin()
    world.recorder.down = True
    world.clock.advance(PERIOD / 2)
    with caplog.at_level(logging.INFO, logger="pat_middleware"):
        policy.refresh_keys()
    [line] = [r for r in caplog.records if "directory refresh" in r.getMessage()]
    assert line.levelno == logging.WARNING and line.exc_info is None
    assert "HTTP 503" in line.getMessage() and "keeping 2 key(s)" in line.getMessage()

    # Tokens keep working through the outage, and across the switch to key 1 that the last
    # good directory announced.
    for _ in range(2):
        token, _ = world.mint(browser.challenge())
        assert browser.get(token=token).outcome is Outcome.PASS
        world.clock.advance(PERIOD / 2)
        policy.refresh_keys(force=False)
    assert world.clock.now == T0 + 1.5 * PERIOD
    assert advertised(browser) == world.preferred()

    world.recorder.down = False
    world.clock.advance(PERIOD)  # key 2 is preferred now; only a fetch can tell
    policy.refresh_keys(force=False)
    assert advertised(browser) == world.preferred()
    token, _ = world.mint(browser.challenge())
    assert browser.get(token=token).outcome is Outcome.PASS


# ------------------------------------------------------------------ hostile directory


#: Writes a raw HTTP answer to a connection, given the request head and a stop event.
Answer = Callable[[socket.socket, bytes, threading.Event], None]


@contextmanager
def raw_http_server(answer: Answer) -> Iterator[tuple[str, list[bytes]]]:
    """A loopback server answering each connection with ``answer``; yields its base URL and
    the request heads it received."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    heads: list[bytes] = []

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                try:
                    head = conn.recv(4096)
                    heads.append(head)
                    answer(conn, head, stop)
                except OSError:
                    pass  # the client gave up

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", heads
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def trickle(byte_every: float, count: int) -> Answer:
    """A 200 head at once, then one body byte every ``byte_every`` seconds."""

    def answer(conn: socket.socket, head: bytes, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (count + 1))
        for _ in range(count):
            if stop.wait(byte_every):
                break
            conn.sendall(b" ")

    return answer


def fixed(head: bytes, body: bytes) -> Answer:
    def answer(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        conn.sendall(head + b"\r\n\r\n" + body)

    return answer


def fetch_once(url: str, timeout: int = 5) -> DirectoryResponse:
    return asyncio.run(HttpFetcher(timeout)(DirectoryRequest(url + DIRECTORY_PATH, ())))


def test_a_directory_trickling_its_body_is_abandoned_after_the_timeout(
    make_policy: Callable[..., Policy], caplog: pytest.LogCaptureFixture
) -> None:
    """Each read arrives within the timeout, but the whole body would take 8 s: the fetch
    is cancelled at directory_timeout (1 s), instead of blocking the start-up for as long
    as the server likes."""
    with raw_http_server(trickle(byte_every=0.4, count=20)) as (url, _):
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="pat_middleware"):
            make_policy({"directory": url}, directory_timeout=1, directory_require_keys=False)
        elapsed = time.monotonic() - started
    assert elapsed < 2.0, elapsed
    assert any("directory_timeout (1 s)" in r.getMessage() for r in caplog.records)


def test_requests_never_wait_for_a_slow_refresh(
    make_policy: Callable[..., Policy],
    rsa_2048: rsa.RSAPrivateKey,
    other_rsa_2048: rsa.RSAPrivateKey,
) -> None:
    """While a refresh is stuck in a slow directory, challenges, tokens and the unknown-key
    path (which touches the key source) answer at once: no lock is held across I/O."""
    document = Issuer(ISSUER_NAME, rsa_2048).directory_bytes()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d"
    served = fixed(head % len(document), document)
    slow = trickle(byte_every=0.3, count=10)
    calls: list[int] = []

    def answer(conn: socket.socket, head: bytes, stop: threading.Event) -> None:
        calls.append(1)
        (served if len(calls) == 1 else slow)(conn, head, stop)

    with raw_http_server(answer) as (url, _):
        policy = make_policy({"directory": url}, directory_timeout=1)
        browser = Browser(policy)
        challenge, key = pick_challenge(browser.challenge())
        stranger = IssuerKey.from_spki(encode_pss_spki(other_rsa_2048.public_key()))
        refresh = threading.Thread(target=policy.refresh_keys)
        refresh.start()
        _wait_for(lambda: len(calls) == 2)
        started = time.monotonic()
        forged = browser.get(token=sign_token(other_rsa_2048, stranger, challenge))
        good = browser.get(token=sign_token(rsa_2048, key, challenge))
        browser.challenge()
        elapsed = time.monotonic() - started
        still_reading = refresh.is_alive()
        refresh.join(10)
    assert elapsed < 0.5, elapsed
    assert still_reading, "the test must run while the refresh reads the slow directory"
    assert forged.reason is Reason.UNKNOWN_KEY and good.outcome is Outcome.PASS


def test_a_compressed_directory_is_refused_before_it_is_inflated() -> None:
    """60 KiB of gzip is 60 MiB of body (brotli, when installed, far more): the fetch asks
    for identity and refuses any other content-coding instead of inflating it first. (A
    1 MiB body keeps the test fast; it is over the 64 KiB bound all the same.)"""
    bomb = gzip.compress(b" " * (1 << 20))
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d" % len(bomb)
    with (
        raw_http_server(fixed(head, bomb)) as (url, heads),
        pytest.raises(DirectoryFetchError, match="Content-Encoding 'gzip'"),
    ):
        fetch_once(url)
    assert b"\r\naccept-encoding: identity\r\n" in heads[0].lower()


def test_an_endless_directory_is_cut_at_64_kib() -> None:
    chunk = b"%x\r\n%s\r\n" % (8192, b" " * 8192)
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
    with (
        raw_http_server(fixed(head, chunk * 64)) as (url, _),
        pytest.raises(DirectoryFetchError, match="longer than 65536 bytes"),
    ):
        fetch_once(url)


def test_a_redirect_is_not_followed(
    make_policy: Callable[..., Policy], rsa_2048: rsa.RSAPrivateKey
) -> None:
    with serve_asgi(create_issuer_app(Issuer(ISSUER_NAME, rsa_2048))) as real:
        head = b"HTTP/1.1 302 Found\r\nLocation: " + real.encode() + DIRECTORY_PATH.encode()
        with raw_http_server(fixed(head + b"\r\nContent-Length: 0", b"")) as (url, _):
            assert fetch_once(url).status == 302
            with pytest.raises(ConfigurationError, match="HTTP 302"):
                make_policy({"directory": url})


# -------------------------------------------------------------- real time, real thread


def test_background_refresh_follows_a_rotating_issuer_in_real_time(
    client: httpx.Client, key_pool: list[rsa.RSAPrivateKey]
) -> None:
    # A generous overlap: a loaded CI machine may delay a refresh by a period.
    rotating = RotatingIssuer(ISSUER_NAME, period=1, overlap=2, key_factory=pool_factory(key_pool))
    recorder = Recorder(create_issuer_app(rotating))
    with serve_asgi(recorder) as issuer_url:
        policy = Policy(settings({"directory": issuer_url}, cookie_secure=False))
        try:
            with serve_asgi(create_origin_app(policy)) as origin_url:
                used: set[bytes] = set()
                deadline = time.monotonic() + 2.5  # two rotations at least
                while time.monotonic() < deadline:
                    first = client.get(origin_url + "/protected")
                    assert first.status_code == 401
                    challenge, key = pick_challenge(first.headers["www-authenticate"])
                    token = fetch_token(challenge, key, issuer_url, client)
                    second = client.get(
                        origin_url + "/protected",
                        headers={"Authorization": build_authorization(token.to_bytes())},
                    )  # the client's cookie jar carries the session from the 401
                    assert second.status_code == 200, second.text
                    used.add(key.token_key_id)
                    time.sleep(0.05)
        finally:
            policy.close()
    assert len(used) >= 3
    assert recorder.directory_hits >= 3


# --------------------------------------------------------------------------- fork


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_worker_gets_its_own_refresher(
    world: World, other_rsa_2048: rsa.RSAPrivateKey
) -> None:
    """Like a pre-forking server: the policy is built before the fork; the child's first
    request starts the child's own thread, which refreshes on its own connections. The fork
    happens while the parent's refresher is in the middle of a refresh (its directory
    marked as being fetched, the key source's lock held): the child must inherit neither,
    or its refresher would hang or never fetch that directory."""
    # One worker forked from the parent: memory:// with the opt-in, or the fork alone
    # fails its requests closed (see test_worker_processes.py).
    policy, browser = world.origin(
        background=True, directory_refresh_min=3600, allow_per_process_replay=True
    )
    source = policy._key_source
    assert isinstance(source.fetcher, HttpFetcher)
    assert world.recorder.directory_hits == 1
    challenge, _ = pick_challenge(browser.challenge())
    stranger = IssuerKey.from_spki(encode_pss_spki(other_rsa_2048.public_key()))
    forged = sign_token(other_rsa_2048, stranger, challenge)
    read_end, write_end = os.pipe()
    source._fetching.add(ISSUER_NAME)  # as while the parent's refresher fetches it
    lock = source._lock
    lock.acquire()  # released by the parent only
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # forking with threads running
        pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        status = 1
        try:
            os.close(read_end)
            before = {t.name for t in threading.enumerate()}
            refused = browser.get(token=forged)  # starts the child's refresher
            after = {t.name for t in threading.enumerate()}
            report = f"{'pat-middleware-key-refresh' in before} {refused.reason} " + str(
                "pat-middleware-key-refresh" in after
            )
            deadline = time.monotonic() + 5
            while policy._key_source.states[0].next_refresh <= world.clock.now:  # not fetched
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            os.write(write_end, report.encode())
            status = 0
        finally:
            os._exit(status)
    lock.release()
    source._fetching.discard(ISSUER_NAME)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    report = os.read(read_end, 200).decode()
    os.close(read_end)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == "False unknown_key True"
    assert world.recorder.directory_hits == 2  # fetched by the child's thread
