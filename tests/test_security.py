"""Security regressions: one named test per attack, each asserting the exact refusal.

Attacks go through the real :class:`Policy` (sans-IO, on a fake clock where time matters) and,
where it is cheap, through the ASGI middleware under a real uvicorn server; over HTTP the
refusal reason is read from the decision's log record (``pat_reason``).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import importlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import pytest
import redis
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from pat_middleware import b64url_encode
from pat_middleware.cli.commands import main as cli_main
from pat_middleware.core.headers import MAX_HEADER_BYTES, build_authorization
from pat_middleware.core.wire import GREASE_TOKEN_TYPES, Token, TokenChallenge
from pat_middleware.errors import ConfigurationError, Reason, TokenError
from pat_middleware.integrations.asgi import PrivateTokenMiddleware
from pat_middleware.integrations.asgi import request_info as asgi_request_info
from pat_middleware.integrations.wsgi import PrivateTokenWSGIMiddleware
from pat_middleware.integrations.wsgi import request_info as wsgi_request_info
from pat_middleware.issuer import Issuer
from pat_middleware.policy import Decision, Outcome, Policy, RequestInfo
from pat_middleware.policy.contexts import derive_key
from pat_middleware.policy.guard import PER_PROCESS_RETRY_AFTER
from pat_middleware.policy.strategies import REPLAY_TTL_SLACK
from pat_middleware.settings import Settings
from pat_middleware.stores import MemoryReplayStore
from pat_middleware.stores.redis import RedisReplayStore
from pat_middleware.tokens.blind_rsa import IssuerKey, encode_pss_spki

from ._directory_server import (
    DIRECTORY_MEDIA_TYPE,
    Switch,
    directory_server,
    document,
    trickled_body,
    trickled_headers,
)
from ._origin import (
    ISSUER,
    SECRET,
    SECURE_SESSION_COOKIE,
    SECURE_VERIFIED_COOKIE,
    T0,
    VERIFIED_COOKIE,
    Browser,
    FakeClock,
    answer,
    challenges_of,
    header,
    issuer_entry,
    make_settings,
    redemption,
    set_cookies,
)
from ._path_servers import (
    ADAPTERS,
    WSGI_ADAPTERS,
    PathServers,
    Target,
    leaks,
    path_servers,
    path_settings,
)
from ._path_servers import ISSUER_NAME as PATH_ISSUER
from ._redis import RedisServer, initialized
from ._servers import free_port, raw_request, serve_asgi
from ._workers import gunicorn, send, token_for_the_secret, write_settings
from ._wsgi_harness import Browser as HttpBrowser
from ._wsgi_harness import httpx_send, serve_wsgi
from .apps import MARK
from .conftest import sign_token

ORIGIN = "www.example.com"
DECISION_LOGGER = "pat_middleware"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def policy(issuer_key: IssuerKey, clock: FakeClock) -> Policy:
    return Policy(make_settings(issuer_key, origin_info=[ORIGIN]), clock=clock)


@pytest.fixture(scope="module")
def other_key(other_rsa_2048: rsa.RSAPrivateKey) -> IssuerKey:
    return IssuerKey.from_spki(encode_pss_spki(other_rsa_2048.public_key()))


def _refused(decision: Decision, reason: Reason) -> None:
    """A refusal for ``reason``: 401 with a fresh challenge, never the app."""
    assert (decision.outcome, decision.reason, decision.status) == (Outcome.REJECT, reason, 401)
    assert challenges_of(header(decision.headers, "WWW-Authenticate") or "")


def _challenged(decision: Decision) -> None:
    """A plain 401 challenge: no reason, as for a request without a token."""
    assert (decision.outcome, decision.reason, decision.status) == (Outcome.CHALLENGE, None, 401)
    assert challenges_of(header(decision.headers, "WWW-Authenticate") or "")


# --------------------------------------------------------------- a real ASGI origin


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _ok_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b"ok"]


@pytest.fixture(scope="module")
def served_policy(issuer_key: IssuerKey) -> Policy:
    return Policy(make_settings(issuer_key, cookie_secure=False))


@pytest.fixture(scope="module")
def base_url(served_policy: Policy) -> Iterator[str]:
    with serve_asgi(PrivateTokenMiddleware(_ok, policy=served_policy)) as url:
        yield url


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        yield client


@pytest.fixture
def decisions(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Captures this test's decision log records (from every thread, the server's included)."""
    caplog.set_level(logging.DEBUG, logger=DECISION_LOGGER)
    return caplog


def _decided(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if hasattr(r, "pat_outcome")]


def _reasons(caplog: pytest.LogCaptureFixture) -> list[str | None]:
    return [getattr(r, "pat_reason", None) for r in _decided(caplog)]


def _earn(browser: HttpBrowser, private_key: rsa.RSAPrivateKey, key: IssuerKey) -> str:
    """A 401 and then a token for it: returns the Authorization value that passed."""
    reply = browser.get("/protected")
    assert reply.status == 401
    www = reply.header("www-authenticate")
    assert www is not None
    return build_authorization(answer(www, private_key, key))


# ------------------------------------------------------------------------ replay


def test_replay_of_a_spent_token_is_refused(
    http: httpx.Client,
    rsa_2048: rsa.RSAPrivateKey,
    issuer_key: IssuerKey,
    decisions: pytest.LogCaptureFixture,
) -> None:
    browser = HttpBrowser(httpx_send(http))
    authorization = _earn(browser, rsa_2048, issuer_key)
    assert browser.get("/protected", authorization=authorization).status == 200

    replay = browser.get("/protected", authorization=authorization)
    assert replay.status == 401
    assert replay.header("www-authenticate")
    # From a client without the session the token is refused before the store is asked.
    stranger = HttpBrowser(httpx_send(http))
    assert stranger.get("/protected", authorization=authorization).status == 401
    assert _reasons(decisions)[-2:] == ["replayed", "challenge_mismatch"]


def _exactly_one_passed(results: list[Decision]) -> None:
    assert [d.outcome for d in results].count(Outcome.PASS) == 1
    assert {d.reason for d in results if d.outcome is not Outcome.PASS} == {Reason.REPLAYED}


def test_concurrent_replay_from_threads_passes_exactly_once(
    policy: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    request = redemption(policy, rsa_2048, issuer_key)
    threads = 32
    barrier = threading.Barrier(threads)
    results: list[Decision] = []
    lock = threading.Lock()

    def redeem() -> None:
        barrier.wait()
        decision = policy.evaluate(request)
        with lock:
            results.append(decision)

    pool = [threading.Thread(target=redeem) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(10)
    assert len(results) == threads
    _exactly_one_passed(results)


class _YieldingStore:
    """The memory store's async form, yielding to other tasks around every step, so tasks
    interleave wherever the policy awaits."""

    def __init__(self) -> None:
        self.inner = MemoryReplayStore()

    def spend(self, key: bytes, ttl: float) -> bool:
        return self.inner.spend(key, ttl)

    async def spend_async(self, key: bytes, ttl: float) -> bool:
        await asyncio.sleep(0)
        won = self.inner.spend(key, ttl)
        await asyncio.sleep(0)
        return won

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def test_concurrent_replay_from_asyncio_tasks_passes_exactly_once(
    issuer_key: IssuerKey, clock: FakeClock, rsa_2048: rsa.RSAPrivateKey
) -> None:
    policy = Policy(make_settings(issuer_key), replay_store=_YieldingStore(), clock=clock)
    request = redemption(policy, rsa_2048, issuer_key)

    async def race() -> list[Decision]:
        return await asyncio.gather(*(policy.evaluate_async(request) for _ in range(64)))

    _exactly_one_passed(asyncio.run(race()))


def test_concurrent_replay_over_http_passes_exactly_once(
    base_url: str, http: httpx.Client, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    browser = HttpBrowser(httpx_send(http))
    authorization = _earn(browser, rsa_2048, issuer_key)
    headers = {
        "Authorization": authorization,
        "Cookie": "; ".join(f"{k}={v}" for k, v in browser.jar.items()),
    }

    async def race() -> list[int]:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=base_url, timeout=20.0, limits=limits) as client:
            replies = await asyncio.gather(
                *(client.get("/protected", headers=headers) for _ in range(32))
            )
        return [r.status_code for r in replies]

    statuses = asyncio.run(race())
    assert sorted(statuses) == [200] + [401] * 31


# ----------------------------------------------------------- tokens for other challenges


def test_token_for_another_sessions_challenge_is_refused(
    http: httpx.Client,
    rsa_2048: rsa.RSAPrivateKey,
    issuer_key: IssuerKey,
    decisions: pytest.LogCaptureFixture,
) -> None:
    alice, mallory = HttpBrowser(httpx_send(http)), HttpBrowser(httpx_send(http))
    authorization = _earn(alice, rsa_2048, issuer_key)  # minted for alice's challenge
    mallory.get("/protected")  # mallory has a session of her own

    reply = mallory.get("/protected", authorization=authorization)
    assert reply.status == 401
    assert _reasons(decisions)[-1] == "challenge_mismatch"
    # ... and the token is not burnt: alice can still use it.
    assert alice.get("/protected", authorization=authorization).status == 200


def test_token_for_another_sessions_challenge_is_refused_by_the_policy(
    policy: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    alice, mallory = Browser(policy), Browser(policy)
    token = answer(alice.challenge(), rsa_2048, issuer_key)
    mallory.challenge()
    _refused(mallory.get(token=token), Reason.CHALLENGE_MISMATCH)


@pytest.mark.parametrize("mode", ["per-session", "per-request", "none"])
def test_token_for_another_origins_challenge_is_refused(
    issuer_key: IssuerKey, clock: FakeClock, rsa_2048: rsa.RSAPrivateKey, mode: str
) -> None:
    """The same issuer, even the same context, but a challenge naming another origin."""
    opt_in = {"allow_per_process_replay": True} if mode == "none" else {}
    policy = Policy(
        make_settings(issuer_key, origin_info=[ORIGIN], redemption_context=mode, **opt_in),
        clock=clock,
    )
    browser = Browser(policy)
    [ours] = challenges_of(browser.challenge())
    assert ours.origin_info == (ORIGIN,)
    for origin_info in [("evil.example",), (ORIGIN, "evil.example"), ()]:
        theirs = TokenChallenge(
            ours.token_type, ours.issuer_name, ours.redemption_context, origin_info
        )
        _refused(
            browser.get(token=sign_token(rsa_2048, issuer_key, theirs)), Reason.CHALLENGE_MISMATCH
        )
    # The control: our own challenge passes.
    assert browser.get(token=sign_token(rsa_2048, issuer_key, ours)).outcome is Outcome.PASS


@pytest.mark.parametrize("mode", ["per-session", "per-request"])
def test_challenge_older_than_max_age_is_refused_as_expired(
    issuer_key: IssuerKey, clock: FakeClock, rsa_2048: rsa.RSAPrivateKey, mode: str
) -> None:
    policy = Policy(make_settings(issuer_key, redemption_context=mode), clock=clock)
    browser = Browser(policy)
    www = browser.challenge()
    max_age = int(www.rsplit("max-age=", 1)[1].strip('"'))
    clock.advance(max_age + 1)
    browser.challenge()  # the session moves on; the old challenge is still recognised
    _refused(browser.get(token=answer(www, rsa_2048, issuer_key)), Reason.EXPIRED)


# ------------------------------------------------------------------------------ keys


def test_token_under_a_key_the_origin_no_longer_trusts_is_refused_as_unknown_key(
    issuer_key: IssuerKey,
    other_key: IssuerKey,
    clock: FakeClock,
    rsa_2048: rsa.RSAPrivateKey,
) -> None:
    """After rotation only the new key is configured: a token under the old one is stale."""
    policy = Policy(make_settings(other_key), clock=clock)
    browser = Browser(policy)
    [challenge] = challenges_of(browser.challenge())
    stale = sign_token(rsa_2048, issuer_key, challenge)  # the old key, for a current challenge
    _refused(browser.get(token=stale), Reason.UNKNOWN_KEY)


#: Offsets in a 2048-bit RSASSA-PSS SPKI: the AlgorithmIdentifier starts at byte 4.
_HASH_OID_LAST = 4 + 29  # last byte of the hash OID: 0x02 is SHA-384, 0x01 SHA-256
_SALT = 4 + 62  # the salt length INTEGER


def _spki_with(spki: bytes, **changes: int) -> bytes:
    raw = bytearray(spki)
    if "hash_oid_last" in changes:
        raw[_HASH_OID_LAST] = changes["hash_oid_last"]
    if "salt" in changes:
        raw[_SALT] = changes["salt"]
    return bytes(raw)


@pytest.mark.parametrize(
    ("changes", "hash_", "salt"),
    [({"hash_oid_last": 0x01}, hashes.SHA256(), 48), ({"salt": 32}, hashes.SHA384(), 32)],
    ids=["sha256", "salt-32"],
)
def test_key_with_other_pss_parameters_is_refused_and_so_are_its_tokens(
    issuer_key: IssuerKey,
    clock: FakeClock,
    rsa_2048: rsa.RSAPrivateKey,
    changes: dict[str, int],
    hash_: hashes.HashAlgorithm,
    salt: int,
) -> None:
    assert issuer_key.spki[_HASH_OID_LAST] == 0x02 and issuer_key.spki[_SALT] == 48
    wrong = _spki_with(issuer_key.spki, **changes)
    with pytest.raises(ConfigurationError) as caught:
        make_settings(issuer_key, issuers=[{"name": ISSUER, "token_key": b64url_encode(wrong)}])
    assert caught.value.setting == "issuers[0].token_key"
    assert "RSASSA-PSS" in caught.value.message

    # A token signed as that key's parameters say, under its key id or ours: never accepted.
    browser = Browser(Policy(make_settings(issuer_key), clock=clock))
    [challenge] = challenges_of(browser.challenge())
    for key_id, reason in [
        (hashlib.sha256(wrong).digest(), Reason.UNKNOWN_KEY),
        (issuer_key.token_key_id, Reason.BAD_SIGNATURE),
    ]:
        token = Token(2, secrets.token_bytes(32), challenge.digest, key_id, b"\x00")
        signature = rsa_2048.sign(
            token.authenticator_input,
            padding.PSS(mgf=padding.MGF1(hash_), salt_length=salt),
            hash_,
        )
        _refused(browser.get(token=token.authenticator_input + signature), reason)


def _write_settings(tmp_path: Path, token_key: str, **extra: str) -> Path:
    path = tmp_path / "pat.toml"
    lines = [f'secret = "{SECRET}"', 'protect = ["/protected"]', "[[issuers]]"]
    lines += [f'name = "{ISSUER}"', f'token_key = "{token_key}"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_rsa_encryption_spki_offered_as_token_key_is_refused_at_start_up(
    tmp_path: Path, rsa_2048: rsa.RSAPrivateKey
) -> None:
    plain = rsa_2048.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings_file = _write_settings(tmp_path, b64url_encode(plain))
    with pytest.raises(ConfigurationError) as caught:
        PrivateTokenMiddleware(_ok, settings_file=str(settings_file))
    assert caught.value.setting == "issuers[0].token_key"
    assert "rsaEncryption" in caught.value.message


def test_4096_bit_key_and_tokens_are_refused_unless_enabled(
    tmp_path: Path,
    rsa_4096: rsa.RSAPrivateKey,
    rsa_2048: rsa.RSAPrivateKey,
    issuer_key: IssuerKey,
    clock: FakeClock,
) -> None:
    big = IssuerKey.from_spki(encode_pss_spki(rsa_4096.public_key()), allow_4096=True)
    with pytest.raises(ConfigurationError) as caught:
        PrivateTokenMiddleware(_ok, settings_file=str(_write_settings(tmp_path, big.token_key)))
    assert caught.value.setting == "issuers[0].token_key"
    assert "4096" in caught.value.message
    enabled = _write_settings(tmp_path, big.token_key, allow_4096="true")
    assert PrivateTokenMiddleware(_ok, settings_file=str(enabled)).policy.keys.find(
        big.token_key_id
    )

    # An origin with the default (2048-bit) key: a 4096-bit token is refused either way.
    browser = Browser(Policy(make_settings(issuer_key), clock=clock))
    [challenge] = challenges_of(browser.challenge())
    under_big_key = sign_token(rsa_4096, big, challenge)
    assert len(under_big_key) == 98 + 512
    _refused(browser.get(token=under_big_key), Reason.UNKNOWN_KEY)
    # Our key id with a 512-byte authenticator: refused on length before any RSA work.
    ours = sign_token(rsa_2048, issuer_key, challenge)
    _refused(browser.get(token=ours[:98] + under_big_key[98:]), Reason.WRONG_LENGTH)


# ----------------------------------------------------------------------------- grease


@pytest.mark.parametrize("token_type", sorted(GREASE_TOKEN_TYPES)[:4])
def test_grease_token_counts_as_no_token(
    policy: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey, token_type: int
) -> None:
    browser = Browser(policy)
    grease = token_type.to_bytes(2, "big") + secrets.token_bytes(352)
    _challenged(browser.get(token=grease))
    # On a verified session, grease is still "no token": the session decides, never grease.
    assert browser.get(token=answer(browser.challenge(), rsa_2048, issuer_key)).allowed
    passed = browser.get(token=grease)
    assert passed.outcome is Outcome.SESSION and passed.token is not None
    assert passed.token.via_session


def test_grease_token_over_http_gets_a_plain_challenge(
    http: httpx.Client, decisions: pytest.LogCaptureFixture
) -> None:
    assert 0x1132 in GREASE_TOKEN_TYPES
    grease = build_authorization(b"\x11\x32" + secrets.token_bytes(352))
    reply = HttpBrowser(httpx_send(http)).get("/protected", authorization=grease)
    assert reply.status == 401 and reply.header("www-authenticate")
    [record] = _decided(decisions)
    assert (getattr(record, "pat_outcome", None), getattr(record, "pat_reason", None)) == (
        "challenge",
        None,
    )


# ------------------------------------------------------------------- oversized headers


class _Tripwire(str):
    """A header value that fails the test if the policy reads its characters."""

    def _touched(self, *args: object, **kwargs: object) -> Any:
        raise AssertionError(f"a {len(self)}-character header was parsed")

    __getitem__ = __iter__ = __contains__ = _touched
    split = partition = strip = lower = find = encode = startswith = _touched


@pytest.mark.parametrize("size", [2049, MAX_HEADER_BYTES + 1, 1 << 20])
def test_oversized_authorization_is_refused_unparsed(
    policy: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey, size: int
) -> None:
    value = "PrivateToken token=" + "A" * (size - 19)
    browser = Browser(policy)
    _refused(browser.get(authorization=_Tripwire(value)), Reason.MALFORMED)
    # A verified session does not turn an unreadable Authorization into "no token".
    assert browser.get(token=answer(browser.challenge(), rsa_2048, issuer_key)).allowed
    _refused(browser.get(authorization=_Tripwire(value)), Reason.MALFORMED)


def test_oversized_authorization_reaches_the_policy_from_both_adapters() -> None:
    """Adapters pass Authorization on whatever its size (the policy refuses it by length);
    Cookie and Host lines over the limit are dropped (read as absent)."""
    big = "PrivateToken token=" + "A" * MAX_HEADER_BYTES
    junk = "x=" + "A" * MAX_HEADER_BYTES
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/protected",
        "headers": [
            (b"authorization", big.encode()),
            (b"cookie", junk.encode()),
            (b"host", junk.encode()),
        ],
    }
    environ = {"HTTP_AUTHORIZATION": big, "HTTP_COOKIE": junk, "HTTP_HOST": junk}
    for info in (asgi_request_info(scope), wsgi_request_info(environ)):
        assert info.authorization == big
        assert info.cookie is None and info.host is None


def test_oversized_cookie_is_ignored_and_starts_a_new_session(
    policy: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    browser = Browser(policy)
    assert browser.get(token=answer(browser.challenge(), rsa_2048, issuer_key)).allowed
    ours = browser.cookie_header()
    assert ours is not None
    cookie = _Tripwire(f"{ours}; big={'A' * MAX_HEADER_BYTES}")
    decision = policy.evaluate(RequestInfo("GET", "/protected", cookie=cookie))
    _challenged(decision)
    assert (
        set_cookies(decision.header_lines())[SECURE_SESSION_COOKIE]
        != browser.cookies[SECURE_SESSION_COOKIE]
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Authorization", "PrivateToken token=" + "A" * 3000),
        ("Authorization", "PrivateToken token=" + "A" * 20000),
        ("Cookie", "a=" + "A" * 20000),
        ("Host", "h" * 20000),
    ],
    ids=["authorization-3k", "authorization-20k", "cookie-20k", "host-20k"],
)
def test_oversized_header_over_http_gets_a_clear_4xx(
    http: httpx.Client, name: str, value: str
) -> None:
    reply = http.get("/protected", headers={name: value})
    assert 400 <= reply.status_code < 500


def test_many_authorization_lines_over_http_are_refused(
    http: httpx.Client, decisions: pytest.LogCaptureFixture
) -> None:
    lines = [("Authorization", "PrivateToken token=" + "A" * 100)] * 40
    reply = http.get("/protected", headers=httpx.Headers(lines))
    assert reply.status_code == 401
    assert _reasons(decisions)[-1] == "malformed"


# --------------------------------------------------------------------------- cookies


def test_forged_session_cookie_starts_a_new_session_and_its_token_is_refused(
    issuer_key: IssuerKey, clock: FakeClock, rsa_2048: rsa.RSAPrivateKey, policy: Policy
) -> None:
    """Mallory signs her own session cookie (under another secret), gets a challenge bound to
    it there, and redeems a token for it here: the cookie's MAC fails, so the session is new
    and the token matches none of its challenges."""
    forger = Browser(Policy(make_settings(issuer_key, secret="m" * 40), clock=clock))
    token = answer(forger.challenge(), rsa_2048, issuer_key)
    forged = forger.cookies[SECURE_SESSION_COOKIE]

    decision = Browser(policy).get(token=token, cookie=f"{SECURE_SESSION_COOKIE}={forged}")
    _refused(decision, Reason.CHALLENGE_MISMATCH)
    fresh = set_cookies(decision.header_lines())[SECURE_SESSION_COOKIE]
    assert fresh != forged
    assert policy.sessions.load_session(forged) is None
    assert policy.sessions.load_session(fresh) is not None


def test_verified_cookie_copied_into_another_session_is_refused(
    http: httpx.Client, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    alice, mallory = HttpBrowser(httpx_send(http)), HttpBrowser(httpx_send(http))
    assert alice.get("/protected", authorization=_earn(alice, rsa_2048, issuer_key)).status == 200
    assert alice.get("/protected").status == 200  # alice's mark works for alice
    mallory.get("/protected")

    mallory.jar[VERIFIED_COOKIE] = alice.jar[VERIFIED_COOKIE]
    assert mallory.get("/protected").status == 401
    # Nor does the mark work alone, without any session.
    alone = f"{VERIFIED_COOKIE}={alice.jar[VERIFIED_COOKIE]}"
    assert HttpBrowser(httpx_send(http)).get("/protected", cookie=alone).status == 401


# ------------------------------------------- paths: the spelling the framework routes on
# Each test sends the exact request target over a real server (gunicorn for Flask, Django
# and the WSGI middleware; uvicorn for Starlette and FastAPI), and first shows on a control
# server without rules that the spelling does reach the protected view or file.


@pytest.fixture(scope="module")
def servers(issuer_key: IssuerKey) -> Iterator[PathServers]:
    yield from path_servers(issuer_key)


def _assert_protected(target: Target, spellings: list[str], **kwargs: Any) -> None:
    reached = [s for s in spellings if leaks(target.control(s, **kwargs))]
    assert reached == spellings, f"control: only {reached} reach the view"
    leaked = {s: target.get(s, **kwargs).status for s in spellings}
    assert not [s for s in spellings if leaks(target.get(s, **kwargs))], leaked


# Werkzeug merges leading slashes and gunicorn decodes %2f; Django's and Starlette's routers
# answer these spellings with 404 (their file handlers are covered below).
@pytest.mark.parametrize("adapter", ["flask-extension", "flask-middleware"])
def test_repeated_or_encoded_slashes_do_not_reach_a_protected_view(
    servers: PathServers, adapter: str
) -> None:
    spellings = ["//members/", "///members/", "/%2fmembers/", "http://localhost//members/"]
    _assert_protected(servers.adapter(adapter), spellings)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_non_ascii_rule_matches_the_percent_encoded_utf8_path(
    servers: PathServers, adapter: str
) -> None:
    _assert_protected(servers.adapter(adapter), ["/caf%C3%A9"])


@pytest.mark.parametrize("adapter", WSGI_ADAPTERS)
def test_client_supplied_script_name_does_not_shift_the_path(
    servers: PathServers, adapter: str
) -> None:
    # gunicorn takes a SCRIPT_NAME header from its trusted proxies (127.0.0.1 by default).
    _assert_protected(servers.adapter(adapter), ["/x/members/"], headers=(("SCRIPT_NAME", "/x"),))


def test_forwarded_prefix_does_not_shift_the_path_behind_proxyfix(servers: PathServers) -> None:
    _assert_protected(servers.proxyfix(), ["/members/"], headers=(("X-Forwarded-Prefix", "/x"),))


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_file_handlers_that_normalise_paths_do_not_serve_protected_files(
    servers: PathServers, adapter: str
) -> None:
    spellings = [
        "/files/secret.txt",
        "/files/./secret.txt",
        "/files/secret.txt/",
        "/files/%2e/secret.txt",
        "/files/x/../private/secret.txt",
    ]
    if adapter != "flask-extension" and adapter != "flask-middleware":
        spellings.append("/files//secret.txt")  # Werkzeug redirects this one
    else:  # send_from_directory behind a route of its own
        spellings += ["/dl/./secret.txt", "/dl/%2e/secret.txt", "/dl/x/../private/secret.txt"]
    _assert_protected(servers.adapter(adapter), spellings)


@pytest.mark.parametrize("adapter", ["flask-extension", "flask-middleware"])
def test_flask_strict_slashes_false_does_not_open_an_exact_rule(
    servers: PathServers, adapter: str
) -> None:
    _assert_protected(servers.adapter(adapter), ["/loose", "/loose/"])


@pytest.mark.parametrize("kind", ["fastapi-root-path", "uvicorn-root-path", "mount"])
@pytest.mark.parametrize("rule", ["short", "full"])
def test_asgi_root_path_spellings_do_not_reach_a_protected_endpoint(
    servers: PathServers, kind: str, rule: str
) -> None:
    prefix = "/sub" if kind == "mount" else "/api"
    target = servers.asgi_variant(kind, ["/x" if rule == "short" else prefix + "/x"])
    spellings = [s for s in ("/x", prefix + "/x") if leaks(target.control(s))]
    assert spellings, "the control serves the endpoint under no spelling"
    _assert_protected(target, spellings)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_path_that_does_not_decode_is_refused_not_passed(
    servers: PathServers, adapter: str
) -> None:
    response = servers.adapter(adapter).get("/members/%ff")
    assert response.status == 400
    assert MARK.encode() not in response.body


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_passed_response_is_private_and_the_challenge_is_not_cacheable(
    servers: PathServers, adapter: str, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    target = servers.adapter(adapter)
    challenge = target.get("/cached")
    assert challenge.status == 401
    assert challenge.header("Cache-Control") == "no-store"
    www = challenge.header("WWW-Authenticate")
    cookie = challenge.header("Set-Cookie")
    assert www is not None and cookie is not None
    token = answer(www, rsa_2048, issuer_key, issuer=PATH_ISSUER)
    passed = target.get(
        "/cached",
        headers=(
            ("Authorization", build_authorization(token)),
            ("Cookie", cookie.split(";", 1)[0]),
        ),
    )
    assert passed.status == 200 and MARK.encode() in passed.body
    # The view's own "public, max-age=600" loses "public"; its max-age stays.
    assert passed.header("Cache-Control") == "private, max-age=600"


_PREFLIGHT = (("Origin", "https://elsewhere.example"), ("Access-Control-Request-Method", "GET"))


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_forged_cors_preflight_reaches_no_protected_content(
    servers: PathServers, adapter: str
) -> None:
    """A preflight is not challenged (browsers cannot answer one), so anyone can send an
    OPTIONS that looks like one. A view answering OPTIONS like GET (Django's function views
    do) must still give nothing away: only the status and headers come back."""
    target = servers.adapter(adapter)
    response = target.get("/members/", method="OPTIONS", headers=_PREFLIGHT)
    assert response.status != 401
    assert MARK.encode() not in response.body
    assert response.header("Content-Length") in ("0", None)
    if adapter == "django":  # the control shows the view really answers it
        assert leaks(target.control("/members/", method="OPTIONS", headers=_PREFLIGHT))
    assert target.get("/members/", method="OPTIONS").status == 401  # no preflight: judged


def test_head_refusal_carries_no_body(servers: PathServers, issuer_key: IssuerKey) -> None:
    # wsgiref sends whatever the app returns (gunicorn, Werkzeug and uvicorn drop a HEAD body
    # themselves: checked too, as they serve the other adapters).
    app = PrivateTokenWSGIMiddleware(
        _ok_wsgi, settings=Settings.from_mapping(path_settings(issuer_key, ["/members/*"]))
    )
    with serve_wsgi(app) as url:
        address = ("127.0.0.1", int(url.rsplit(":", 1)[1]))
        head = raw_request(address, "/members/", method="HEAD")
        get = raw_request(address, "/members/")
    assert (head.status, head.body) == (401, b"")
    assert get.status == 401 and get.body
    assert head.header("Content-Length") == get.header("Content-Length")
    for adapter in ADAPTERS:
        response = servers.adapter(adapter).get("/members/", method="HEAD")
        assert (response.status, response.body) == (401, b""), adapter


def test_secure_session_cookie_takes_the_host_prefix(
    issuer_key: IssuerKey, clock: FakeClock
) -> None:
    def set_cookie_lines(**overrides: Any) -> list[str]:
        policy = Policy(make_settings(issuer_key, **overrides), clock=clock)
        decision = policy.evaluate(RequestInfo("GET", "/protected"))
        return [v for k, v in decision.header_lines() if k == "Set-Cookie"]

    [secure] = set_cookie_lines()
    assert secure.startswith("__Host-pat_session=")
    assert "; Secure" in secure and "; Path=/;" in secure and "Domain=" not in secure
    # Not Secure, or with a Domain: the prefix would make browsers drop it, so none.
    for overrides in ({"cookie_secure": False}, {"cookie_domain": "example.com"}):
        [plain] = set_cookie_lines(**overrides)
        assert plain.startswith("pat_session=")


def test_empty_origin_info_is_named_at_start_up(
    issuer_key: IssuerKey, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pat_middleware"):
        Policy(make_settings(issuer_key))
    assert any("origin_info is empty" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pat_middleware"):
        Policy(make_settings(issuer_key, origin_info=[ORIGIN]))
    assert not any("origin_info" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------- memory hygiene


def test_refused_token_leaves_no_reference_cycle(
    rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    """A refused request must be freed at once, not when the cyclic collector runs: until
    then its token, cookies and context stay in memory (and a flood of bad tokens grows it)."""
    browser = Browser(Policy(make_settings(issuer_key)))
    token = bytearray(answer(browser.challenge(), rsa_2048, issuer_key))
    token[-1] ^= 1
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # keep what the collector finds, to look at it
    try:
        decision = browser.get(token=bytes(token))
        gc.collect()
        ours = [
            o
            for o in gc.garbage
            if isinstance(o, RequestInfo | TokenError)
            or (isinstance(o, FrameType) and "pat_middleware" in o.f_code.co_filename)
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert (decision.outcome, decision.reason) == (Outcome.REJECT, Reason.BAD_SIGNATURE)
    assert ours == []


# ------------------------------------------------------- secrets in logs and reprs


class _Secrets:
    """Every secret, token, nonce, cookie and session id an attack run handles, in each
    spelling it could leak in (hex, base64url padded or not, standard base64)."""

    def __init__(self, policy: Policy) -> None:
        self.values: set[str] = {SECRET, SECRET.encode().hex()}
        self.add(derive_key(policy.settings.secret, "redemption-context"))  # context key
        self.add(policy.settings.secret)
        if isinstance(policy.store, MemoryReplayStore):
            self.add(policy.store.epoch)  # folded into the context key

    def add(self, raw: bytes) -> None:
        padded = b64url_encode(raw)
        for text in (raw.hex(), padded, padded.rstrip("="), base64.b64encode(raw).decode()):
            if len(text) >= 16:  # shorter strings could occur by chance
                self.values.add(text.rstrip("="))

    def add_token(self, token: bytes) -> bytes:
        self.add(token)
        self.add(token[2:34])  # the nonce
        self.add(token[98:])  # the authenticator
        return token

    def add_cookies(self, policy: Policy, cookies: dict[str, str]) -> None:
        for value in cookies.values():
            if len(value) >= 16:
                self.values.add(value)
        session = policy.sessions.load_session(cookies.get(SECURE_SESSION_COOKIE))
        if session is not None:
            self.add(session.session_id)

    def found_in(self, text: str) -> list[str]:
        return [value for value in self.values if value in text]


def _attack_run(
    policy: Policy, clock: FakeClock, private_key: rsa.RSAPrivateKey, key: IssuerKey
) -> _Secrets:
    """Replays, forgeries, grease, oversize, expiry, copied marks: everything logs."""
    seen = _Secrets(policy)
    alice, mallory = Browser(policy, host=ORIGIN), Browser(policy, host=ORIGIN)
    www = alice.challenge()
    token = seen.add_token(answer(www, private_key, key))
    assert alice.get(token=token).allowed
    assert alice.get().allowed  # verified session
    seen.add_cookies(policy, alice.cookies)
    _refused(alice.get(token=token), Reason.REPLAYED)
    bad = bytearray(seen.add_token(answer(www, private_key, key)))
    bad[-1] ^= 1
    _refused(alice.get(token=bytes(bad)), Reason.BAD_SIGNATURE)
    mallory.challenge()
    seen.add_cookies(policy, mallory.cookies)
    foreign = seen.add_token(answer(www, private_key, key))
    _refused(mallory.get(token=foreign), Reason.CHALLENGE_MISMATCH)
    mallory.cookies[SECURE_VERIFIED_COOKIE] = alice.cookies[SECURE_VERIFIED_COOKIE]
    _challenged(mallory.get())
    grease = seen.add_token(b"\x11\x32" + secrets.token_bytes(352))
    mallory.get(token=grease)
    garbage = seen.add_token(secrets.token_bytes(354))
    mallory.get(token=garbage)
    _refused(mallory.get(authorization="PrivateToken token=" + "QUFB" * 600), Reason.MALFORMED)
    late = seen.add_token(answer(mallory.challenge(), private_key, key))
    clock.advance(3600)
    seen.add_cookies(policy, mallory.cookies)
    mallory.get(token=late)
    return seen


def test_no_secret_token_nonce_or_cookie_reaches_the_logs(
    policy: Policy,
    clock: FakeClock,
    rsa_2048: rsa.RSAPrivateKey,
    issuer_key: IssuerKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    seen = _attack_run(policy, clock, rsa_2048, issuer_key)
    assert len(caplog.records) >= 12
    for record in caplog.records:
        text = " ".join([record.getMessage(), *(str(v) for v in vars(record).values())])
        assert seen.found_in(text) == [], record.getMessage()
    assert seen.found_in(caplog.text) == []


def test_reprs_never_show_keys_secrets_tokens_nonces_or_cookies(
    policy: Policy, clock: FakeClock, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    seen = _attack_run(policy, clock, rsa_2048, issuer_key)
    browser = Browser(policy)
    token = seen.add_token(answer(browser.challenge(), rsa_2048, issuer_key))
    seen.add_cookies(policy, browser.cookies)
    request = RequestInfo(
        "GET",
        "/protected",
        authorization=build_authorization(token),
        cookie=browser.cookie_header(),
    )
    pending = policy._judge(request, True)  # the accepted token, waiting for the store
    assert isinstance(pending, tuple)
    state, accepted = pending
    passed = policy.evaluate(request)
    assert passed.allowed
    seen.add_cookies(policy, set_cookies(passed.header_lines()))
    objects: list[object] = [
        policy,
        policy.settings,
        policy.store,
        policy.keys,
        policy.sessions,
        policy.contexts,
        issuer_key,
        request,
        state,
        accepted,
        accepted.token,
        state.keys,
        passed,
        passed.token,
        Token.from_bytes(token, issuer_key.authenticator_length),
        state.session,
        TokenError(Reason.BAD_SIGNATURE, "authenticator does not verify"),
        PrivateTokenMiddleware(_ok, policy=policy),
        PrivateTokenWSGIMiddleware(_ok_wsgi, policy=policy),
    ]
    # The store expires on the policy's clock, which the attack run moved on an hour: the
    # nonce spent since is what it holds.
    assert isinstance(policy.store, MemoryReplayStore) and len(policy.store) >= 1
    for obj in objects:
        for text in (repr(obj), str(obj)):
            assert seen.found_in(text) == [], f"{type(obj).__name__}: {text}"


# --- issue 10: discovery deadlines and URL secrets ---


def _pieces(secret: str) -> set[str]:
    """Every substring of ``secret`` of three characters or more."""
    return {secret[i:j] for i in range(len(secret)) for j in range(i + 3, len(secret) + 1)}


def _django_check_texts(pat_middleware: dict[str, Any]) -> list[str]:
    """What Django's system checks say about ``PAT_MIDDLEWARE = pat_middleware``."""
    importlib.import_module(f"{__package__}.test_django")  # configures Django, once
    from django.test import override_settings

    from pat_middleware.integrations.django.checks import check_settings

    with override_settings(PAT_MIDDLEWARE=pat_middleware):
        return [f"{m!s} {m.msg} {m.hint}" for m in check_settings()]


#: A password holding an unencoded '?', '#', '/', '@' or '[': urlsplit puts part of it in the
#: query, fragment, path, host or port, or raises quoting a piece of it.
_REDIS_PASSWORD_URLS = (
    ("redis://:pa?ss@host/0", "pa?ss"),
    ("redis://:pa?s5w0rd@host/0", "pa?s5w0rd"),  # was echoed as option 's5w0rd@host/0'
    ("redis://:p#w@host", "p#w"),
    ("redis://user:a@b@127.0.0.1:{port}/0", "a@b"),  # unambiguous: the last '@' ends it
    ("rediss://:x?prefix=y@h", "x?prefix=y"),  # was read as prefix 'y@h'
    ("redis://:secret@host:notaport", "secret"),
    ("redis://:1234#hunter2@127.0.0.1/0", "1234#hunter2"),  # was localhost:1234, in reprs
    ("redis://admin:6380/hunter2@127.0.0.1/0", "6380/hunter2"),  # was host admin:6380
    ("redis://:hun[t3r]2@127.0.0.1:{port}/0", "hun[t3r]2"),  # urlsplit raised, quoting 't3r'
    ("redis:admin:hunter2@127.0.0.1/0", "hunter2"),  # no '//': was echoed as the db path
)


def test_redis_password_with_reserved_characters_never_echoed(
    issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    """Start-up errors, Django's system checks, reprs and the store-failure log line of a
    store that parsed: none holds any three characters of the password in a row."""
    caplog.set_level(logging.DEBUG)
    port = free_port()  # nothing listens there: a store that parses fails, and is logged
    for spelling, password in _REDIS_PASSWORD_URLS:
        url = spelling.format(port=port)
        caplog.clear()
        texts: list[str] = []
        try:
            settings = make_settings(issuer_key, replay_store=url, origin_info=[ORIGIN])
        except ConfigurationError as e:
            texts += [str(e), repr(e)]
        else:
            policy = Policy(settings)
            assert isinstance(policy.store, RedisReplayStore)
            assert policy.store.options.password == password
            browser = Browser(policy, host=ORIGIN)
            decision = browser.get(token=answer(browser.challenge(), rsa_2048, issuer_key))
            assert decision.outcome is Outcome.UNAVAILABLE, decision
            policy.store.close()
            texts += [repr(policy), repr(policy.store), repr(policy.store.options), repr(decision)]
        pat = {
            "issuers": [issuer_entry(ISSUER, issuer_key)],
            "secret": SECRET,
            "replay_store": url,
        }
        texts += _django_check_texts(pat)
        texts += [f"{r.getMessage()} {vars(r)}" for r in caplog.records]
        leaks = sorted({piece for piece in _pieces(password) for text in texts if piece in text})
        assert leaks == [], (url, leaks, texts)


def _directory_policy(*issuers: tuple[str, str], **overrides: Any) -> Policy:
    """A policy whose issuers (name, directory URL) get their keys from directories only."""
    data: dict[str, Any] = {
        "issuers": [{"name": name, "directory": url} for name, url in issuers],
        "secret": SECRET,
        "protect": ["/protected"],
        "origin_info": [ORIGIN],
        "directory_require_keys": False,
        **overrides,
    }
    return Policy(Settings.from_mapping(data), refresh_in_background=False)


def _refresh_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "directory refresh" in r.getMessage()
    ]


def test_directory_with_html_content_type_is_refused(
    issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    """A document that parses as the issuer's directory but comes as text/html (an error
    page, or a page someone could upload to the issuer's host) installs no key; the
    directory media type and JSON do."""
    caplog.set_level(logging.WARNING, logger="pat_middleware")
    body = Issuer(ISSUER, rsa_2048).directory_bytes()
    answer_ = Switch(document(body, "text/html; charset=utf-8"))
    with directory_server(answer_) as server:
        policy = _directory_policy((ISSUER, server.url))
        assert list(policy.keys) == []
        assert Browser(policy, host=ORIGIN).get().outcome is Outcome.UNAVAILABLE
        [line] = _refresh_warnings(caplog)
        assert f"issuer {ISSUER}:" in line and "'text/html; charset=utf-8'" in line

        for accepted in ("application/json; charset=utf-8", DIRECTORY_MEDIA_TYPE):
            answer_.answer = document(body, accepted)
            policy = _directory_policy((ISSUER, server.url))
            browser = Browser(policy, host=ORIGIN)
            token = answer(browser.challenge(), rsa_2048, issuer_key)
            assert browser.get(token=token).outcome is Outcome.PASS, accepted

        caplog.clear()  # a refresh served as HTML later keeps the keys it had
        answer_.answer = document(body, "text/html")
        policy.refresh_keys()
        [line] = _refresh_warnings(caplog)
        assert "'text/html'" in line and "keeping 1 key(s)" in line
        browser = Browser(policy, host=ORIGIN)
        token = answer(browser.challenge(), rsa_2048, issuer_key)
        assert browser.get(token=token).outcome is Outcome.PASS


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_trickling_directory_server_cannot_hold_start_up(
    issuer_key: IssuerKey,
    rsa_2048: rsa.RSAPrivateKey,
    other_rsa_2048: rsa.RSAPrivateKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two directory servers send one header line, or one body byte, every 0.3 s: each read
    comes well within any per-read timeout, and the answers would take 6 s. With
    directory_timeout = 1, start-up ends after about one second, not one per slow issuer,
    the sockets are dropped, and a healthy issuer fetched alongside is in use."""
    caplog.set_level(logging.WARNING, logger="pat_middleware")
    slow_body = Issuer("slow.example", other_rsa_2048).directory_bytes()
    with (
        directory_server(trickled_headers(every=0.3, lines=20)) as headers_slow,
        directory_server(trickled_body(slow_body, every=0.3, count=20)) as body_slow,
        directory_server(document(Issuer(ISSUER, rsa_2048).directory_bytes())) as healthy,
    ):
        started = time.monotonic()
        policy = _directory_policy(
            ("slow-headers.example", headers_slow.url),
            ("slow-body.example", body_slow.url),
            (ISSUER, healthy.url),
            directory_timeout=1,
        )
        elapsed = time.monotonic() - started
        assert elapsed < 1.8, elapsed
        browser = Browser(policy, host=ORIGIN)
        token = answer(browser.challenge(), rsa_2048, issuer_key)
        assert browser.get(token=token).outcome is Outcome.PASS
        # The fetches were cancelled, their connections closed: not left reading.
        assert _wait_until(lambda: headers_slow.open_connections == 0, 1.5)
        assert _wait_until(lambda: body_slow.open_connections == 0, 1.5)
    warnings = _refresh_warnings(caplog)
    assert len(warnings) == 2, warnings
    names = ("slow-body.example", "slow-headers.example")
    for name, line in zip(names, sorted(warnings), strict=True):
        assert line.startswith(f"issuer {name}: ") and "directory_timeout (1 s)" in line


def test_one_slow_issuer_does_not_delay_another(
    rsa_2048: rsa.RSAPrivateKey,
    other_rsa_2048: rsa.RSAPrivateKey,
    other_key: IssuerKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Both directories say max-age=1. Once the slow one starts trickling its headers, the
    background refresher still refreshes the healthy one when due, and at once when a token
    names its new key, while the slow fetch hangs; that fetch is then cut at the deadline."""
    caplog.set_level(logging.WARNING, logger="pat_middleware")
    slow_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    slow_answer = Switch(document(Issuer("slow.example", slow_rsa).directory_bytes()))
    healthy_answer = Switch(document(Issuer(ISSUER, rsa_2048).directory_bytes()))
    with (
        directory_server(slow_answer) as slow,
        directory_server(healthy_answer) as healthy,
    ):
        data: dict[str, Any] = {
            "issuers": [
                {"name": "slow.example", "directory": slow.url},
                {"name": ISSUER, "directory": healthy.url},
            ],
            "secret": SECRET,
            "protect": ["/protected"],
            "origin_info": [ORIGIN],
            "directory_timeout": 1,
            "directory_refresh_min": 1,
            "directory_unknown_key_refresh": 1,
        }
        policy = Policy(Settings.from_mapping(data))  # the background refresher runs
        try:
            slow_answer.answer = trickled_headers(every=0.3, lines=40)
            assert _wait_until(lambda: slow.open_connections == 1, 3.0)
            [hanging] = [c for c in slow.connections if c[1] is None]
            opened = hanging[0]
            assert opened is not None
            # Due at the same moment as the slow one, the healthy directory was fetched
            # then, not after the slow fetch ended.
            assert _wait_until(lambda: any(t > opened - 0.3 for t, _ in healthy.hits), 0.5)

            # The healthy issuer rotates to a key the origin has not seen: the first token
            # under it wakes the refresher, which fetches it while the slow fetch hangs.
            rotated = Issuer(ISSUER, other_rsa_2048)
            healthy_answer.answer = document(rotated.directory_bytes())

            def new_key_token_passes() -> bool:
                browser = Browser(policy, host=ORIGIN)
                token = answer(browser.challenge(), other_rsa_2048, other_key)
                return browser.get(token=token).outcome is Outcome.PASS

            assert _wait_until(new_key_token_passes, 0.6)
            assert hanging[1] is None, "the slow fetch must still be hanging"
            # ... until its deadline: then the socket is dropped and one line logged.
            assert _wait_until(lambda: hanging[1] is not None, 2.0)
        finally:
            policy.close()
    slow_lines = [line for line in _refresh_warnings(caplog) if "slow.example" in line]
    assert slow_lines and "directory_timeout (1 s)" in slow_lines[0]
    assert not any(ISSUER in line for line in _refresh_warnings(caplog))


# --- issue 10: replay across processes, restarts and clocks ---


@pytest.fixture(scope="module")
def gunicorn_settings(issuer_key: IssuerKey, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """memory:// (the default store), per-session mode (the default)."""
    return write_settings(tmp_path_factory.mktemp("gunicorn") / "pat.toml", issuer_key)


@pytest.fixture(scope="module")
def gunicorn_four_workers(gunicorn_settings: Path) -> Iterator[str]:
    with gunicorn("wsgi", gunicorn_settings, "--workers", "4") as base:
        yield base


@pytest.fixture(scope="module")
def gunicorn_preloaded(gunicorn_settings: Path) -> Iterator[str]:
    with gunicorn("wsgi", gunicorn_settings, "--preload", "--workers", "2") as base:
        yield base


def _eight_times_refused(base: str, authorization: str, cookie: str) -> None:
    replies = [send(base, authorization, cookie) for _ in range(8)]
    assert [r.status_code for r in replies] == [503] * 8
    assert {r.headers.get("retry-after") for r in replies} == {str(PER_PROCESS_RETRY_AFTER)}
    assert send(base).status_code == 503, "no challenge for a token that could not be spent"


def test_memory_store_under_gunicorn_workers_fails_closed(
    gunicorn_four_workers: str, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    """gunicorn -w 4 with memory://: each worker kept its own spent set, so one token was
    accepted once per worker. Now the workers hear wsgi.multiprocess and refuse."""
    _eight_times_refused(gunicorn_four_workers, *token_for_the_secret(issuer_key, rsa_2048))


def test_forked_worker_with_memory_store_fails_closed(
    gunicorn_preloaded: str, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    """gunicorn --preload -w 2: the policy and its store were built in the arbiter and
    forked into each worker, each copy recording spends apart."""
    _eight_times_refused(gunicorn_preloaded, *token_for_the_secret(issuer_key, rsa_2048))


@pytest.mark.parametrize("mode", ["per-session", "per-request"])
def test_restart_does_not_reopen_spent_tokens(
    issuer_key: IssuerKey, clock: FakeClock, rsa_2048: rsa.RSAPrivateKey, mode: str
) -> None:
    """A token spent just before a restart, replayed to the restarted process (same secret,
    a new memory store) within its challenge's window: the new store has never seen it,
    but the challenge was derived under the old store's epoch."""
    settings = make_settings(issuer_key, redemption_context=mode)
    before = Browser(Policy(settings, clock=clock))
    token = answer(before.challenge(), rsa_2048, issuer_key)
    assert before.get(token=token).outcome is Outcome.PASS
    clock.advance(1)
    after = Browser(Policy(settings, clock=clock))
    after.cookies = dict(before.cookies)  # the client keeps its cookies across the restart
    _refused(after.get(token=token), Reason.CHALLENGE_MISMATCH)
    # The restarted process works: its own challenges are redeemable, once.
    after.cookies.pop(SECURE_VERIFIED_COOKIE)
    fresh = answer(after.challenge(), rsa_2048, issuer_key)
    assert after.get(token=fresh).outcome is Outcome.PASS
    _refused(after.get(token=fresh), Reason.REPLAYED)


def test_none_mode_with_a_per_process_store_is_refused_at_start_up(
    issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey
) -> None:
    """none mode binds nothing to the process: a restart with memory:// would accept every
    token spent within replay_ttl again. Refused unless the operator opts in."""
    with pytest.raises(ConfigurationError) as caught:
        make_settings(issuer_key, redemption_context="none")
    assert caught.value.setting == "replay_store"
    assert "allow_per_process_replay" in caught.value.message
    shared = make_settings(
        issuer_key, redemption_context="none", replay_store="redis://127.0.0.1:1/0"
    )
    with pytest.raises(ConfigurationError) as caught:
        Policy(shared, replay_store=MemoryReplayStore())
    assert caught.value.setting == "replay_store"
    # With the opt-in, the restart behaves as the operator accepted: one store per process.
    opted_in = make_settings(issuer_key, redemption_context="none", allow_per_process_replay=True)
    challenge = Policy(opted_in).templates[0][0].challenge(b"")
    token = sign_token(rsa_2048, issuer_key, challenge)
    for _ in range(2):  # two processes, one after the other
        assert Browser(Policy(opted_in)).get(token=token).outcome is Outcome.PASS


def test_wall_clock_step_back_does_not_reopen_spent_tokens(
    issuer_key: IssuerKey,
    clock: FakeClock,
    rsa_2048: rsa.RSAPrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Spent nonces expired on time.monotonic while windows were judged on the wall clock.
    Spend a token, let its store entry expire, step the wall clock back into the window:
    the store has forgotten the nonce and the challenge looks live again."""
    monotonic = FakeClock(5000.0)
    # What a memory store built without a clock runs on (the policy used to build it so).
    defaults = MemoryReplayStore.__init__.__kwdefaults__
    assert defaults is not None
    monkeypatch.setitem(defaults, "clock", monotonic)
    policy = Policy(make_settings(issuer_key), clock=clock)
    browser = Browser(policy)
    token = answer(browser.challenge(), rsa_2048, issuer_key)
    assert browser.get(token=token).outcome is Outcome.PASS
    stored_for = policy.windows.longest_validity + REPLAY_TTL_SLACK
    for running in (clock, monotonic):
        running.advance(stored_for + 1)  # past the spent nonce's expiry
    clock.now = T0 + 1  # stepped back: the challenge's window again
    replay = browser.get(token=token)
    assert replay.outcome is Outcome.REJECT and replay.reason in (Reason.EXPIRED, Reason.REPLAYED)


def test_empty_redis_does_not_reopen_spent_tokens(
    own_redis: RedisServer, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    """A Redis that comes back empty (FLUSHALL; a restart without persistence) has forgotten
    every spent nonce while their challenges stay valid for up to a validity period. The
    store finds its epoch marker gone and refuses spends until that period has passed."""
    url = initialized(f"{own_redis.url}?retry_after=0.2")
    policy = Policy(make_settings(issuer_key, replay_store=url))
    store = policy.store
    assert isinstance(store, RedisReplayStore)
    validity = policy.windows.longest_validity + REPLAY_TTL_SLACK
    browser = Browser(policy)
    token = answer(browser.challenge(), rsa_2048, issuer_key)
    assert browser.get(token=token).outcome is Outcome.PASS
    admin = redis.Redis(port=own_redis.port)

    def refused_while_held() -> None:
        replay = browser.get(token=token)
        assert (replay.outcome, replay.status) == (Outcome.UNAVAILABLE, 503)
        assert validity - 2 <= int(header(replay.headers, "Retry-After") or 0) <= validity

    admin.flushall()
    refused_while_held()
    own_redis.stop()
    own_redis.start()  # a real restart, without persistence
    assert browser.get(token=token).outcome is Outcome.UNAVAILABLE  # the dropped connection
    time.sleep(0.25)  # the store's back-off
    refused_while_held()

    # One validity period later (on Redis's clock: the markers stamped that long ago), tokens
    # pass again; the replayed one's challenge has expired by then.
    for key in store.epoch_keys:
        stamp = admin.get(key)
        if stamp is not None:
            admin.set(key, int(stamp) - validity * 1000 - 1)
    browser.cookies.pop(SECURE_VERIFIED_COOKIE, None)
    fresh = answer(browser.challenge(), rsa_2048, issuer_key)
    assert browser.get(token=fresh).outcome is Outcome.PASS

    # store-init skips the wait: the operator asserts that nothing was spent before.
    admin.flushall()
    browser.cookies.pop(SECURE_VERIFIED_COOKIE, None)
    newer = answer(browser.challenge(), rsa_2048, issuer_key)
    assert browser.get(token=newer).outcome is Outcome.UNAVAILABLE
    assert cli_main(["store-init", "--replay-store", url]) == 0
    assert browser.get(token=newer).outcome is Outcome.PASS
    admin.close()
    store.close()


# ------------------------------------------------ the protect memo (perf review, #memo)


def test_protect_memo_keeps_no_answer_for_an_overlong_method(issuer_key: IssuerKey) -> None:
    """The policy remembers protect answers per (method, path spellings). Paths are only
    remembered when short, and so must the method be: an HTTP/1.1 server such as h11 lets a
    method of several KiB through, and a client sending 1024 of them would otherwise pin
    1024 times that in every policy (a memory cost set by the server's request-line limit,
    not by us). Registered methods are at most 17 characters (UPDATEREDIRECTREF)."""
    policy = Policy(make_settings(issuer_key))
    memo = policy._protects
    long_method = "X" * 8000
    for i in range(50):
        assert policy.protects(f"{long_method}{i}", "/protected") is True
    held = sum(sum(len(part) for part in key) for key in memo._known)
    assert held < 50 * 1000, f"{held} characters of long methods remembered"
    # Ordinary methods are still remembered, and the answers are the settings' own.
    assert policy.protects("GET", "/protected") is True
    assert policy.protects("UPDATEREDIRECTREF", "/elsewhere") is False
    assert ("GET", "/protected") in memo._known
    assert ("UPDATEREDIRECTREF", "/elsewhere") in memo._known


# ---------------------------------------- cookie names as the browser keeps them (#prefix)


@pytest.mark.parametrize(
    "lead", ["\xa0", "\x85", "\x0b", "\x0c", "\x1c", "\x1f", "\xa0 "], ids=repr
)
def test_tossed_cookie_named_behind_non_http_white_space_is_not_a_host_cookie(
    policy: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey, lead: str
) -> None:
    """The ``__Host-`` prefix is what keeps a sibling host (``evil.example.com``) from setting
    our session and verified cookies: the browser refuses such a cookie unless the origin
    itself set it over https without a Domain. A name that merely *ends* in ``__Host-...``
    gets no such check. Mallory earns a verified session of her own, then has her sibling
    host set ``Set-Cookie: \\xa0__Host-pat_session=...; Domain=example.com`` (0xA0 and 0x85
    are no control characters, so browsers keep them; older ones keep 0x0B-0x1F too, and a
    nameless cookie ``=\\xa0__Host-...`` is sent the same way). The browser sends the name
    as it stored it; the adapters read the header as latin-1. A parser that trims Python's
    white space (``str.strip``) rather than HTTP's (space and tab, RFC 6265 §5.4) would read
    her cookies as ours and pass Alice on Mallory's session without a token."""
    mallory = Browser(policy)
    assert mallory.get(token=answer(mallory.challenge(), rsa_2048, issuer_key)).allowed
    session = mallory.cookies[SECURE_SESSION_COOKIE]
    verified = mallory.cookies[SECURE_VERIFIED_COOKIE]
    # The control: under their own names Mallory's cookies pass on her session.
    own = f"{SECURE_SESSION_COOKIE}={session}; {SECURE_VERIFIED_COOKIE}={verified}"
    assert Browser(policy).get(cookie=own).outcome is Outcome.SESSION

    tossed = f"{lead}{SECURE_SESSION_COOKIE}={session}; {lead}{SECURE_VERIFIED_COOKIE}={verified}"
    scope = {
        "type": "http",
        "path": "/protected",
        "headers": [(b"cookie", tossed.encode("latin-1"))],
    }
    assert asgi_request_info(scope).cookie == tossed  # what the policy is handed
    decision = Browser(policy).get(cookie=tossed)
    _challenged(decision)
    # Nor is the session hers: the challenge comes with a new session cookie.
    assert set_cookies(decision.header_lines())[SECURE_SESSION_COOKIE] != session


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("lead", [b"\xa0", b"\x85", b"\x0b"], ids=repr)
def test_tossed_cookie_behind_non_http_white_space_is_refused_over_real_servers(
    servers: PathServers,
    adapter: str,
    lead: bytes,
    rsa_2048: rsa.RSAPrivateKey,
    issuer_key: IssuerKey,
) -> None:
    """The same cookie tossing as above, as the servers really hand the bytes over: gunicorn
    (Flask, Django) and uvicorn (Starlette) each read the Cookie line, and the adapter must
    see ``\xa0pat_session`` as another cookie than ``pat_session``. A control with the
    cookies under their own names passes on the same server."""
    target = servers.adapter(adapter)
    challenge = target.get("/cached")
    www, first = challenge.header("WWW-Authenticate"), challenge.header("Set-Cookie")
    assert challenge.status == 401 and www is not None and first is not None
    session = first.split(";", 1)[0]
    token = answer(www, rsa_2048, issuer_key, issuer=PATH_ISSUER)
    passed = target.get(
        "/cached", headers=(("Authorization", build_authorization(token)), ("Cookie", session))
    )
    assert passed.status == 200
    verified = next(
        v.split(";", 1)[0]
        for k, v in passed.headers
        if k.lower() == "set-cookie" and not v.startswith(session.split("=", 1)[0] + "=")
    )
    own = f"{session}; {verified}".encode("latin-1")
    control = target.get("/cached", raw_headers=(("Cookie", own),))
    assert control.status == 200 and MARK.encode() in control.body
    tossed = lead + session.encode("latin-1") + b"; " + lead + verified.encode("latin-1")
    response = target.get("/cached", raw_headers=(("Cookie", tossed),))
    # A control character the server itself refuses (400); otherwise the challenge.
    assert response.status == (401 if lead in (b"\xa0", b"\x85") else 400)
    assert MARK.encode() not in response.body


# ------------------------------------- prebuilt passes and the ASGI glue (perf review)


def _asgi_call(
    app: PrivateTokenMiddleware, headers: list[tuple[bytes, bytes]]
) -> tuple[int, list[tuple[bytes, bytes]], object]:
    """One request through the middleware, in process: status, response headers, and the
    ``private_token`` the app saw."""
    seen: dict[str, object] = {}
    sent: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen["token"] = scope.get("private_token")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app.app = inner
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "https",
        "path": "/protected",
        "raw_path": b"/protected",
        "root_path": "",
        "headers": [(b"host", b"www.example.com"), *headers],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], list(sent[0]["headers"]), seen.get("token")


def _set_cookie_names(headers: list[tuple[bytes, bytes]]) -> list[str]:
    return [v.decode().split("=", 1)[0] for k, v in headers if k == b"set-cookie"]


def test_prebuilt_passes_carry_no_cookie_or_token_of_another_request(
    policy: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    """Passes that add no cookie are built once and shared by every request. Alice redeems a
    token (her pass sets her cookies), then Bob passes on his verified session and Alice on
    hers: each response carries only its own cookies (none on a session pass), is private,
    and the app sees the session's proof, never the other request's; a shared pass cannot
    be changed in place."""
    app = PrivateTokenMiddleware(_ok, policy=policy)
    browsers = {name: Browser(policy, host=ORIGIN) for name in ("alice", "bob")}
    for browser in browsers.values():
        assert browser.get(token=answer(browser.challenge(), rsa_2048, issuer_key)).allowed
    alice, bob = browsers["alice"], browsers["bob"]

    # Alice's redemption over ASGI: her cookies, and her token's proof.
    carol = Browser(policy, host=ORIGIN)
    www = carol.challenge()
    token_line = (b"authorization", build_authorization(answer(www, rsa_2048, issuer_key)).encode())
    carol_cookie = (b"cookie", (carol.cookie_header() or "").encode())
    status, headers, proof = _asgi_call(app, [token_line, carol_cookie])
    assert status == 200 and SECURE_VERIFIED_COOKIE in _set_cookie_names(headers)
    assert getattr(proof, "via_session", None) is False

    for browser in (bob, alice, bob):
        cookie = (b"cookie", (browser.cookie_header() or "").encode())
        status, headers, proof = _asgi_call(app, [cookie])
        assert status == 200
        assert _set_cookie_names(headers) == []  # nobody else's cookies, none of its own
        assert (b"cache-control", b"private") in headers
        assert getattr(proof, "via_session", None) is True

    shared = policy.evaluate(RequestInfo("GET", "/protected", cookie=bob.cookie_header()))
    assert shared is policy.evaluate(RequestInfo("GET", "/protected", cookie=alice.cookie_header()))
    with pytest.raises(AttributeError):
        shared.cookies = ()  # type: ignore[misc]


def test_verified_session_split_over_http2_cookie_lines_is_read_and_first_wins(
    policy: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    """HTTP/2 sends each cookie as its own ``cookie`` field; the adapter joins them with
    ``; `` (RFC 9113 §8.2.3) and reads the first pair of each name, as from one line. A
    later line cannot replace a cookie an earlier one carried, and a field named otherwise
    than in lower case (which ASGI servers never pass on) is not read at all."""
    app = PrivateTokenMiddleware(_ok, policy=policy)
    alice, mallory = Browser(policy, host=ORIGIN), Browser(policy, host=ORIGIN)
    for browser in (alice, mallory):
        assert browser.get(token=answer(browser.challenge(), rsa_2048, issuer_key)).allowed

    def line(browser: Browser, name: str) -> tuple[bytes, bytes]:
        return (b"cookie", f"{name}={browser.cookies[name]}".encode())

    split = [line(alice, SECURE_SESSION_COOKIE), line(alice, SECURE_VERIFIED_COOKIE)]
    assert _asgi_call(app, split)[0] == 200
    # Mallory's verified mark in a later line does not replace Alice's (first wins), and hers
    # first does not pass on Alice's session.
    assert _asgi_call(app, [*split, line(mallory, SECURE_VERIFIED_COOKIE)])[0] == 200
    swapped = [split[0], line(mallory, SECURE_VERIFIED_COOKIE), split[1]]
    assert _asgi_call(app, swapped)[0] == 401
    shouted = [(b"Cookie", value) for _, value in split]
    assert _asgi_call(app, shouted)[0] == 401
