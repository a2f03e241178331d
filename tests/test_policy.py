"""The sans-IO policy: what each request gets, driven with RequestInfo and a fake clock."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pat_middleware.core.headers import build_authorization, parse_www_authenticate
from pat_middleware.core.paths import path_forms
from pat_middleware.errors import ConfigurationError, Reason
from pat_middleware.policy import Decision, Outcome, Policy, RequestInfo, SetCookie, TokenInfo
from pat_middleware.policy.contexts import ContextMode
from pat_middleware.settings import PathRule, Settings
from pat_middleware.stores import StoreUnavailable
from pat_middleware.tokens.blind_rsa import IssuerKey, encode_pss_spki

from ._origin import (
    ISSUER,
    OTHER_ISSUER,
    SECRET,
    T0,
    Browser,
    FakeClock,
    answer,
    challenges_of,
    cookie_string,
    header,
    issuer_entry,
    make_settings,
    set_cookies,
)
from ._origin import SECURE_SESSION_COOKIE as SESSION_COOKIE
from ._origin import SECURE_VERIFIED_COOKIE as VERIFIED_COOKIE
from .conftest import sign_token

# ------------------------------------------------------------------------------ fixtures


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def other_key(other_rsa_2048: rsa.RSAPrivateKey) -> IssuerKey:
    return IssuerKey.from_spki(encode_pss_spki(other_rsa_2048.public_key()))


@pytest.fixture
def policy(issuer_key: IssuerKey, clock: FakeClock) -> Policy:
    return Policy(make_settings(issuer_key), clock=clock)


@pytest.fixture
def browser(policy: Policy) -> Browser:
    return Browser(policy)


def _policy(key: IssuerKey, clock: FakeClock, **overrides: Any) -> Policy:
    return Policy(make_settings(key, **overrides), clock=clock)


def _www(decision: Decision) -> str:
    value = header(decision.headers, "WWW-Authenticate")
    assert value is not None, decision
    return value


def _redeem(browser: Browser, private_key: rsa.RSAPrivateKey, key: IssuerKey) -> Decision:
    """A full round: 401, then the token for its challenge."""
    token = answer(browser.challenge(), private_key, key)
    return browser.get(token=token)


def _corrupt(token: bytes) -> bytes:
    """The same token (same nonce) with its last authenticator byte flipped."""
    return token[:-1] + bytes([token[-1] ^ 0x01])


# ----------------------------------------------------------------------------- challenge


def test_challenge_on_protected_path(policy: Policy, issuer_key: IssuerKey) -> None:
    decision = policy.evaluate(RequestInfo("GET", "/protected"))

    assert (decision.outcome, decision.status, decision.reason) == (Outcome.CHALLENGE, 401, None)
    assert not decision.allowed
    www = _www(decision)
    assert re.fullmatch(
        r'PrivateToken challenge="[A-Za-z0-9_=-]+", token-key="[A-Za-z0-9_=-]+", max-age="75"',
        www,
    ), www
    [params] = parse_www_authenticate(www)
    assert params.token_key == issuer_key.spki
    challenge = challenges_of(www)[0]
    assert (challenge.token_type, challenge.issuer_name) == (2, ISSUER)
    assert len(challenge.redemption_context) == 32
    assert SESSION_COOKIE in set_cookies(decision.header_lines())
    assert header(decision.headers, "Cache-Control") == "no-store"
    assert decision.body == policy.settings.challenge_body.encode()


def test_bare_values_when_quoted_values_is_false(issuer_key: IssuerKey, clock: FakeClock) -> None:
    policy = _policy(issuer_key, clock, quoted_values=False)
    www = _www(policy.evaluate(RequestInfo("GET", "/protected")))

    assert '"' not in www
    assert re.fullmatch(r"PrivateToken challenge=\S+, token-key=\S+, max-age=75", www), www
    [params] = parse_www_authenticate(www)
    assert params.token_key == issuer_key.spki


def test_one_challenge_per_issuer_each_verifying_separately(
    rsa_2048: rsa.RSAPrivateKey,
    other_rsa_2048: rsa.RSAPrivateKey,
    issuer_key: IssuerKey,
    other_key: IssuerKey,
    clock: FakeClock,
) -> None:
    policy = _policy(
        issuer_key,
        clock,
        issuers=[issuer_entry(ISSUER, issuer_key), issuer_entry(OTHER_ISSUER, other_key)],
    )
    browser = Browser(policy)
    www = browser.challenge()

    params = parse_www_authenticate(www)
    assert [p.token_key for p in params] == [issuer_key.spki, other_key.spki]
    assert [c.issuer_name for c in challenges_of(www)] == [ISSUER, OTHER_ISSUER]

    first = browser.get(token=answer(www, rsa_2048, issuer_key, issuer=ISSUER))
    second = browser.get(token=answer(www, other_rsa_2048, other_key, issuer=OTHER_ISSUER))
    assert first.token is not None and first.token.issuer == ISSUER
    assert second.token is not None and second.token.issuer == OTHER_ISSUER
    assert second.token.token_key_id == other_key.token_key_id.hex()

    # A key of one issuer does not vouch for the other issuer's challenge.
    fresh = Browser(policy)
    [_, other_challenge] = challenges_of(fresh.challenge())
    crossed = fresh.get(token=sign_token(rsa_2048, issuer_key, other_challenge))
    assert (crossed.outcome, crossed.reason) == (Outcome.REJECT, Reason.CHALLENGE_MISMATCH)


# ---------------------------------------------------------------------------- protection


@pytest.mark.parametrize("path", ["/", "/public", "/protectedx", "/ap", "/apix"])
def test_unprotected_paths_skip(policy: Policy, path: str) -> None:
    decision = policy.evaluate(RequestInfo("GET", path, authorization="PrivateToken token=!!"))
    assert decision.outcome is Outcome.SKIP
    assert decision.allowed and decision.headers == () and decision.token is None


# Trailing slashes are optional (Flask's strict_slashes=False, file handlers), and repeated
# slashes, dot segments and percent-encoding are read as the frameworks read them.
@pytest.mark.parametrize(
    "path",
    [
        "/protected",
        "/protected/",
        "/api",
        "/api/",
        "/api/items",
        "/api/a/b/c",
        "//protected",
        "/x/../protected",
        "/%70rotected",
        "/api//items",
    ],
)
def test_protected_paths_challenge(policy: Policy, path: str) -> None:
    assert policy.evaluate(RequestInfo("GET", path)).outcome is Outcome.CHALLENGE


@pytest.mark.parametrize(
    ("pattern", "kind", "path", "protected"),
    [
        ("/a", "exact", "/a", True),
        ("/a", "exact", "/a/b", False),
        ("/a", "exact", "/ab", False),
        ("/a/*", "prefix", "/a/b/c", True),
        ("/a/*", "prefix", "/a/", True),
        ("/a/*", "prefix", "/a", True),
        ("/a/*.json", "glob", "/a/x.json", True),
        ("/a/*.json", "glob", "/a/x.html", False),
        ("/a/[bc]", "glob", "/a/c", True),
        ("/a/?", "glob", "/a/bc", False),
        ("exact:/a*", "exact", "/a*", True),
        ("exact:/a*", "exact", "/ab", False),
        ("prefix:/a", "prefix", "/abc", True),
        ("prefix:/a", "prefix", "/b/a", False),
        ("glob:/a/?", "glob", "/a/b", True),
        ("glob:/a/?", "glob", "/a/bc", False),
    ],
)
def test_path_patterns(
    issuer_key: IssuerKey, clock: FakeClock, pattern: str, kind: str, path: str, protected: bool
) -> None:
    rule = PathRule.parse(pattern, "protect")
    assert rule.kind == kind
    assert any(rule.matches(form) for form in path_forms([path])) is protected
    policy = _policy(issuer_key, clock, protect=[pattern])
    expected = Outcome.CHALLENGE if protected else Outcome.SKIP
    assert policy.evaluate(RequestInfo("GET", path)).outcome is expected


def test_protect_methods_limits_protection(issuer_key: IssuerKey, clock: FakeClock) -> None:
    policy = _policy(issuer_key, clock, protect_methods=["post"])
    assert policy.evaluate(RequestInfo("GET", "/protected")).outcome is Outcome.SKIP
    assert policy.evaluate(RequestInfo("HEAD", "/protected")).outcome is Outcome.SKIP
    assert policy.evaluate(RequestInfo("POST", "/protected")).outcome is Outcome.CHALLENGE
    assert policy.evaluate(RequestInfo("post", "/protected")).outcome is Outcome.CHALLENGE


def test_force_protects_any_path(policy: Policy) -> None:
    assert policy.evaluate(RequestInfo("GET", "/public")).outcome is Outcome.SKIP
    assert policy.evaluate(RequestInfo("GET", "/public"), force=True).outcome is Outcome.CHALLENGE


# ------------------------------------------------------------------------------- tokens


def test_valid_token_passes_with_token_info_and_verified_cookie(
    browser: Browser, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    decision = _redeem(browser, rsa_2048, issuer_key)

    assert (decision.outcome, decision.status, decision.reason) == (Outcome.PASS, 200, None)
    assert decision.allowed
    assert decision.token == TokenInfo(
        issuer=ISSUER, token_type=2, token_key_id=issuer_key.token_key_id.hex(), via_session=False
    )
    [cookie] = [v for k, v in decision.header_lines() if k == "Set-Cookie"]
    assert cookie.startswith(VERIFIED_COOKIE + "=")
    assert {"HttpOnly", "Secure", "SameSite=Lax", "Max-Age=300", "Path=/"} <= set(
        cookie.split("; ")
    )


def test_async_evaluation_passes_then_refuses_replay(
    browser: Browser, policy: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    token = answer(browser.challenge(), rsa_2048, issuer_key)
    request = RequestInfo(
        "GET",
        "/protected",
        authorization=build_authorization(token),
        cookie=browser.cookie_header(),
    )

    async def twice() -> tuple[Decision, Decision]:
        return await policy.evaluate_async(request), await policy.evaluate_async(request)

    first, second = asyncio.run(twice())
    assert first.outcome is Outcome.PASS
    assert (second.outcome, second.reason) == (Outcome.REJECT, Reason.REPLAYED)


def test_replayed_token_is_rejected(
    browser: Browser, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    token = answer(browser.challenge(), rsa_2048, issuer_key)

    assert browser.get(token=token).outcome is Outcome.PASS
    again = browser.get(token=token)
    assert (again.outcome, again.status, again.reason) == (Outcome.REJECT, 401, Reason.REPLAYED)
    assert challenges_of(_www(again)), "a refusal carries a fresh challenge"


def test_token_for_another_sessions_challenge_is_refused(
    policy: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    alice, mallory = Browser(policy), Browser(policy)
    token = answer(alice.challenge(), rsa_2048, issuer_key)
    mallory.challenge()  # mallory has a session of her own

    stolen = mallory.get(token=token)
    assert (stolen.outcome, stolen.reason) == (Outcome.REJECT, Reason.CHALLENGE_MISMATCH)
    no_session = Browser(policy).get(token=token)
    assert (no_session.outcome, no_session.reason) == (Outcome.REJECT, Reason.CHALLENGE_MISMATCH)
    assert alice.get(token=token).outcome is Outcome.PASS  # still unspent for its owner


def test_token_of_unknown_issuer_key_is_refused(
    browser: Browser, other_rsa_2048: rsa.RSAPrivateKey, other_key: IssuerKey
) -> None:
    [challenge] = challenges_of(browser.challenge())
    decision = browser.get(token=sign_token(other_rsa_2048, other_key, challenge))
    assert (decision.outcome, decision.reason) == (Outcome.REJECT, Reason.UNKNOWN_KEY)


@pytest.mark.parametrize(
    "authorization",
    [
        'PrivateToken token="!!!"',
        "PrivateToken",
        "PrivateToken token=",
        'PrivateToken token="AAAA',
        "PrivateToken token=" + "A" * 3000,
        "privatetoken token=A",
    ],
)
def test_malformed_authorization_is_refused(browser: Browser, authorization: str) -> None:
    decision = browser.get(authorization=authorization)
    assert (decision.outcome, decision.status, decision.reason) == (
        Outcome.REJECT,
        401,
        Reason.MALFORMED,
    )
    assert challenges_of(_www(decision))


def test_other_auth_schemes_get_a_plain_challenge(browser: Browser) -> None:
    decision = browser.get(authorization="Bearer abc.def")
    assert (decision.outcome, decision.reason) == (Outcome.CHALLENGE, None)


def test_grease_token_gets_a_plain_challenge(browser: Browser) -> None:
    grease = (0x02AA).to_bytes(2, "big") + secrets.token_bytes(98 + 256)
    decision = browser.get(token=grease)
    assert (decision.outcome, decision.status, decision.reason) == (Outcome.CHALLENGE, 401, None)


def test_failed_verification_does_not_burn_the_nonce(
    browser: Browser, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    token = answer(browser.challenge(), rsa_2048, issuer_key)

    bad = browser.get(token=_corrupt(token))
    assert (bad.outcome, bad.reason) == (Outcome.REJECT, Reason.BAD_SIGNATURE)
    assert browser.get(token=token).outcome is Outcome.PASS


# ------------------------------------------------------------------------------ expiry


def _max_age(www: str) -> int:
    [params] = parse_www_authenticate(www)
    assert params.max_age is not None
    return params.max_age


@pytest.mark.parametrize("start", [0.0, 7.3, 14.99])
def test_token_just_before_advertised_max_age_passes(
    browser: Browser,
    clock: FakeClock,
    rsa_2048: rsa.RSAPrivateKey,
    issuer_key: IssuerKey,
    start: float,
) -> None:
    clock.advance(start)
    www = browser.challenge()
    clock.advance(_max_age(www))
    assert browser.get(token=answer(www, rsa_2048, issuer_key)).outcome is Outcome.PASS


@pytest.mark.parametrize("start", [0.0, 7.3, 14.99])
def test_challenge_older_than_advertised_max_age_is_expired(
    browser: Browser,
    clock: FakeClock,
    rsa_2048: rsa.RSAPrivateKey,
    issuer_key: IssuerKey,
    start: float,
) -> None:
    clock.advance(start)
    www = browser.challenge()
    clock.advance(_max_age(www) + 1)
    decision = browser.get(token=answer(www, rsa_2048, issuer_key))
    assert (decision.outcome, decision.reason) == (Outcome.REJECT, Reason.EXPIRED)


# ---------------------------------------------------------------------------- sessions


def _bad_session_cookie(kind: str, policy: Policy, issuer_key: IssuerKey, clock: FakeClock) -> str:
    good = set_cookies(Browser(policy).get().header_lines())[SESSION_COOKIE]
    if kind == "tampered":
        return ("B" if good[0] != "B" else "C") + good[1:]
    if kind == "forged":
        forger = Policy(make_settings(issuer_key, secret="another-secret-" + "x" * 32), clock=clock)
        return set_cookies(Browser(forger).get().header_lines())[SESSION_COOKIE]
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "huge":
        return good + "A" * 5000
    return {"empty": "", "garbage": "!!!.@@@.###", "unicode": "sé\u2603ssion", "nul": "\x00"}[kind]


@pytest.mark.parametrize(
    "kind", ["tampered", "forged", "truncated", "huge", "empty", "garbage", "unicode", "nul"]
)
def test_bad_session_cookie_gets_a_fresh_session(
    policy: Policy, issuer_key: IssuerKey, clock: FakeClock, kind: str
) -> None:
    bad = _bad_session_cookie(kind, policy, issuer_key, clock)
    decision = policy.evaluate(RequestInfo("GET", "/protected", cookie=f"{SESSION_COOKIE}={bad}"))
    assert (decision.outcome, decision.status) == (Outcome.CHALLENGE, 401)
    fresh = set_cookies(decision.header_lines()).get(SESSION_COOKIE)
    assert fresh and fresh != bad


def test_tampered_session_is_not_accepted_with_its_verified_mark(
    browser: Browser, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey, policy: Policy
) -> None:
    assert _redeem(browser, rsa_2048, issuer_key).outcome is Outcome.PASS
    cookies = dict(browser.cookies)
    sid = cookies[SESSION_COOKIE]
    cookies[SESSION_COOKIE] = ("B" if sid[0] != "B" else "C") + sid[1:]
    decision = policy.evaluate(RequestInfo("GET", "/protected", cookie=cookie_string(cookies)))
    assert decision.outcome is Outcome.CHALLENGE


def test_expired_session_cookie_gets_a_fresh_session(
    issuer_key: IssuerKey, clock: FakeClock, rsa_2048: rsa.RSAPrivateKey
) -> None:
    # A verified mark that outlives the session: only the session's own expiry refuses it.
    policy = _policy(issuer_key, clock, verified_duration=30 * 86400)
    browser = Browser(policy)
    assert _redeem(browser, rsa_2048, issuer_key).outcome is Outcome.PASS
    old = browser.cookies[SESSION_COOKIE]
    assert browser.get().outcome is Outcome.SESSION

    clock.advance(policy.settings.session_lifetime + 1)
    decision = browser.get()
    assert (decision.outcome, decision.status) == (Outcome.CHALLENGE, 401)
    assert browser.cookies[SESSION_COOKIE] != old


def test_verified_session_passes_without_a_token(
    browser: Browser, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    assert _redeem(browser, rsa_2048, issuer_key).outcome is Outcome.PASS
    decision = browser.get()
    assert decision.outcome is Outcome.SESSION
    assert decision.token == TokenInfo(None, None, None, via_session=True, signal="session")
    assert browser.get("/api/other").outcome is Outcome.SESSION


def test_verified_mark_expires_after_verified_duration(
    browser: Browser, clock: FakeClock, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    assert _redeem(browser, rsa_2048, issuer_key).outcome is Outcome.PASS
    clock.advance(300)
    assert browser.get().outcome is Outcome.SESSION
    clock.advance(1.5)
    assert browser.get().outcome is Outcome.CHALLENGE


def test_verified_cookie_copied_into_another_session_is_useless(
    policy: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    alice, mallory = Browser(policy), Browser(policy)
    assert _redeem(alice, rsa_2048, issuer_key).outcome is Outcome.PASS
    mallory.challenge()

    mallory.cookies[VERIFIED_COOKIE] = alice.cookies[VERIFIED_COOKIE]
    assert mallory.get().outcome is Outcome.CHALLENGE
    # Without any session, the mark alone is not enough either.
    alone = f"{VERIFIED_COOKIE}={alice.cookies[VERIFIED_COOKIE]}"
    assert policy.evaluate(RequestInfo("GET", "/protected", cookie=alone)).outcome is (
        Outcome.CHALLENGE
    )


def test_session_cookie_is_not_a_verified_mark(browser: Browser) -> None:
    """The two cookies are signed with different salts: one cannot stand in for the other."""
    browser.challenge()
    browser.cookies[VERIFIED_COOKIE] = browser.cookies[SESSION_COOKIE]
    assert browser.get().outcome is Outcome.CHALLENGE


def test_bad_token_on_verified_session_is_refused(
    browser: Browser, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    token = answer(browser.challenge(), rsa_2048, issuer_key)
    assert browser.get(token=token).outcome is Outcome.PASS
    assert browser.get().outcome is Outcome.SESSION

    replayed = browser.get(token=token)
    assert (replayed.outcome, replayed.reason) == (Outcome.REJECT, Reason.REPLAYED)
    forged = browser.get(token=_corrupt(token))
    assert (forged.outcome, forged.reason) == (Outcome.REJECT, Reason.BAD_SIGNATURE)
    malformed = browser.get(authorization='PrivateToken token="!!"')
    assert (malformed.outcome, malformed.reason) == (Outcome.REJECT, Reason.MALFORMED)


def test_verified_duration_zero_disables_the_mark(
    issuer_key: IssuerKey, clock: FakeClock, rsa_2048: rsa.RSAPrivateKey
) -> None:
    browser = Browser(_policy(issuer_key, clock, verified_duration=0))
    decision = _redeem(browser, rsa_2048, issuer_key)
    assert decision.outcome is Outcome.PASS
    assert VERIFIED_COOKIE not in set_cookies(decision.header_lines())
    assert browser.get().outcome is Outcome.CHALLENGE


# ------------------------------------------------------------------------ failure status


def test_failure_status_403_has_no_challenge(
    issuer_key: IssuerKey, clock: FakeClock, rsa_2048: rsa.RSAPrivateKey
) -> None:
    browser = Browser(_policy(issuer_key, clock, failure_status=403))
    www = browser.challenge()  # no token at all is still a 401 challenge
    token = answer(www, rsa_2048, issuer_key)
    assert browser.get(token=token).outcome is Outcome.PASS

    refused = browser.get(token=token)
    assert (refused.outcome, refused.status, refused.reason) == (
        Outcome.REJECT,
        403,
        Reason.REPLAYED,
    )
    assert header(refused.headers, "WWW-Authenticate") is None
    malformed = browser.get(authorization="PrivateToken token=!")
    assert (malformed.status, header(malformed.headers, "WWW-Authenticate")) == (403, None)


# -------------------------------------------------------------------- per-request mode


@pytest.fixture
def per_request(issuer_key: IssuerKey, clock: FakeClock) -> Policy:
    return _policy(issuer_key, clock, redemption_context="per-request", verified_duration=0)


def test_per_request_two_outstanding_challenges_each_redeemable_once(
    per_request: Policy, clock: FakeClock, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    assert per_request.mode is ContextMode.PER_REQUEST
    browser = Browser(per_request)
    first = browser.challenge()
    clock.advance(0.25)
    second = browser.challenge()
    assert challenges_of(first) != challenges_of(second)
    assert _max_age(first) == _max_age(second) == 60

    assert browser.get(token=answer(second, rsa_2048, issuer_key)).outcome is Outcome.PASS
    assert browser.get(token=answer(first, rsa_2048, issuer_key)).outcome is Outcome.PASS
    # Each challenge is spent once, whatever the nonce of the next token for it.
    again = browser.get(token=answer(first, rsa_2048, issuer_key))
    assert (again.outcome, again.reason) == (Outcome.REJECT, Reason.REPLAYED)


def test_per_request_challenges_issued_in_the_same_millisecond_differ(
    per_request: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    """Two 401s a client gets in quick succession are two challenges, both redeemable.

    The fake clock stands still: on a real clock, two requests of one session landing in
    the same millisecond are common (a page loading several protected resources).
    """
    browser = Browser(per_request)
    first = browser.challenge()
    second = browser.challenge()
    assert parse_www_authenticate(first)[0].challenge != parse_www_authenticate(second)[0].challenge
    assert browser.get(token=answer(first, rsa_2048, issuer_key)).outcome is Outcome.PASS
    assert browser.get(token=answer(second, rsa_2048, issuer_key)).outcome is Outcome.PASS


def test_per_request_successive_401s_are_each_redeemable(
    per_request: Policy, clock: FakeClock, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    """Successive 401s of one session add to the signed list of outstanding challenges.

    (Requests sent in parallel with the same cookies overwrite each other's list: only the
    challenges in the cookie that lands last stay redeemable. The docs say so.)
    """
    browser = Browser(per_request)
    first = browser.challenge()
    clock.advance(0.25)
    second = browser.challenge()
    assert browser.get(token=answer(second, rsa_2048, issuer_key)).outcome is Outcome.PASS
    assert browser.get(token=answer(first, rsa_2048, issuer_key)).outcome is Outcome.PASS


def test_per_request_challenge_expires_after_max_age(
    per_request: Policy, clock: FakeClock, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    browser = Browser(per_request)
    www = browser.challenge()
    clock.advance(_max_age(www) + 1)
    decision = browser.get(token=answer(www, rsa_2048, issuer_key))
    assert (decision.outcome, decision.reason) == (Outcome.REJECT, Reason.EXPIRED)


def test_per_request_token_bound_to_its_session(
    per_request: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    alice, mallory = Browser(per_request), Browser(per_request)
    token = answer(alice.challenge(), rsa_2048, issuer_key)
    mallory.challenge()
    decision = mallory.get(token=token)
    assert (decision.outcome, decision.reason) == (Outcome.REJECT, Reason.CHALLENGE_MISMATCH)


# --------------------------------------------------------------------------- none mode


def test_none_mode_static_challenge_and_replay_refused(
    issuer_key: IssuerKey, clock: FakeClock, rsa_2048: rsa.RSAPrivateKey
) -> None:
    # One process, and the test says so: none mode with memory:// needs the opt-in.
    policy = _policy(issuer_key, clock, redemption_context="none", allow_per_process_replay=True)
    first, second = Browser(policy), Browser(policy)
    www = first.challenge()
    clock.advance(3600)
    assert second.challenge() == www
    [challenge] = challenges_of(www)
    assert challenge.redemption_context == b""
    assert _max_age(www) == 60

    token = answer(www, rsa_2048, issuer_key)
    assert Browser(policy).get(token=token).outcome is Outcome.PASS  # no session needed
    replay = Browser(policy).get(token=token)
    assert (replay.outcome, replay.reason) == (Outcome.REJECT, Reason.REPLAYED)


# ------------------------------------------------------------------------- check_host


@pytest.fixture
def host_policy(issuer_key: IssuerKey, clock: FakeClock) -> Policy:
    return _policy(issuer_key, clock, origin_info=["origin.example"], check_host=True)


@pytest.mark.parametrize("host", ["origin.example", "ORIGIN.example", "origin.example:443"])
def test_check_host_accepts_listed_host(
    host_policy: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey, host: str
) -> None:
    browser = Browser(host_policy, host=host)
    www = browser.challenge()
    assert challenges_of(www)[0].origin_info == ("origin.example",)
    assert browser.get(token=answer(www, rsa_2048, issuer_key)).outcome is Outcome.PASS


@pytest.mark.parametrize(
    "host", [None, "", "evil.example", "origin.example.evil", "origin.example:8443"]
)
def test_check_host_refuses_other_hosts(
    host_policy: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey, host: str | None
) -> None:
    good = Browser(host_policy, host="origin.example")
    token = answer(good.challenge(), rsa_2048, issuer_key)
    good.host = host
    decision = good.get(token=token)
    assert (decision.outcome, decision.reason) == (Outcome.REJECT, Reason.CHALLENGE_MISMATCH)
    bare = Browser(host_policy, host=host).get()
    assert (bare.outcome, bare.reason) == (Outcome.REJECT, Reason.CHALLENGE_MISMATCH)


# ---------------------------------------------------------------------- store failure


class _DownStore:
    def __init__(self) -> None:
        self.calls = 0

    def spend(self, key: bytes, ttl: float) -> bool:
        self.calls += 1
        raise StoreUnavailable("store is down", retry_after=7)

    async def spend_async(self, key: bytes, ttl: float) -> bool:
        self.calls += 1
        raise StoreUnavailable("store is down", retry_after=7)

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _assert_unavailable(decision: Decision) -> None:
    assert (decision.outcome, decision.status) == (Outcome.UNAVAILABLE, 503)
    assert not decision.allowed
    assert header(decision.headers, "Retry-After") == "7"
    assert header(decision.headers, "WWW-Authenticate") is None


def test_store_unavailable_gives_503_with_retry_after(
    issuer_key: IssuerKey, clock: FakeClock, rsa_2048: rsa.RSAPrivateKey
) -> None:
    store = _DownStore()
    browser = Browser(Policy(make_settings(issuer_key), replay_store=store, clock=clock))
    www = browser.challenge()  # challenging needs no store
    assert store.calls == 0
    _assert_unavailable(browser.get(token=answer(www, rsa_2048, issuer_key)))
    assert store.calls == 1


def test_store_unavailable_async_gives_503(
    issuer_key: IssuerKey, clock: FakeClock, rsa_2048: rsa.RSAPrivateKey
) -> None:
    store = _DownStore()
    policy = Policy(make_settings(issuer_key), replay_store=store, clock=clock)
    browser = Browser(policy)
    token = answer(browser.challenge(), rsa_2048, issuer_key)
    request = RequestInfo(
        "GET",
        "/protected",
        authorization=build_authorization(token),
        cookie=browser.cookie_header(),
    )
    _assert_unavailable(asyncio.run(policy.evaluate_async(request)))
    assert store.calls == 1


# ----------------------------------------------------------------- logging and secrets


def test_reject_is_logged_with_its_reason(
    browser: Browser,
    rsa_2048: rsa.RSAPrivateKey,
    issuer_key: IssuerKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = answer(browser.challenge(), rsa_2048, issuer_key)
    browser.get(token=token)
    caplog.set_level(logging.INFO, logger="pat_middleware")
    browser.get(token=token)

    [record] = [r for r in caplog.records if getattr(r, "pat_outcome", None) == "reject"]
    assert record.name == "pat_middleware.decision"
    assert record.levelno == logging.INFO
    assert "reason=replayed" in record.getMessage()
    assert getattr(record, "pat_reason", None) == "replayed"
    assert token.hex() not in record.getMessage()


def test_repr_never_shows_the_secret(policy: Policy) -> None:
    settings: Settings = policy.settings
    assert settings.secret == SECRET.encode()
    for text in (repr(policy), repr(settings), str(settings), repr(policy.sessions),
                 repr(policy.contexts)):  # fmt: skip
        assert SECRET not in text
        assert repr(SECRET.encode()) not in text
    assert "secret=<hidden>" in repr(settings)


def test_shortest_accepted_session_lifetime_keeps_the_session_across_challenges(
    issuer_key: IssuerKey, clock: FakeClock, rsa_2048: rsa.RSAPrivateKey
) -> None:
    """Either settings refuse the lifetime, or two 401s in a row share one session."""
    try:
        policy = _policy(issuer_key, clock, max_age=60, session_lifetime=120)
    except ConfigurationError as e:
        assert e.setting == "session_lifetime"
        return
    browser = Browser(policy)
    first = browser.challenge()
    session = browser.cookies[SESSION_COOKIE]
    clock.advance(1)
    browser.challenge()
    assert browser.cookies[SESSION_COOKIE] == session
    assert browser.get(token=answer(first, rsa_2048, issuer_key)).outcome is Outcome.PASS


# ------------------------------------------------------------------ review regressions


def test_an_empty_shared_store_is_used_not_replaced(issuer_key: IssuerKey) -> None:
    """An empty store is falsy (it has __len__); two policies must still share it."""
    from pat_middleware.stores import MemoryReplayStore

    shared = MemoryReplayStore(max_entries=10)
    settings = Settings.from_mapping(
        {
            "issuers": [{"name": "issuer.example", "token_key": issuer_key.token_key}],
            "secret": "r" * 40,
            "protect": ["/p"],
        }
    )
    first, second = Policy(settings, replay_store=shared), Policy(settings, replay_store=shared)
    assert first.store is shared and second.store is shared


def test_request_and_decision_reprs_hide_tokens_and_cookies() -> None:
    request = RequestInfo(
        "GET",
        "/p",
        authorization="PrivateToken token=SECRETTOKEN",
        cookie="pat_verified=SIGNEDMARK",
    )
    assert "SECRETTOKEN" not in repr(request) and "SIGNEDMARK" not in repr(request)
    decision = Decision(Outcome.PASS, cookies=(SetCookie("pat_verified", "SIGNEDMARK", 300),))
    assert "SIGNEDMARK" not in repr(decision)


def test_large_cookie_header_keeps_the_session(
    policy: Policy, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    """Big analytics cookies beside ours must not make the session disappear."""
    first = policy.evaluate(RequestInfo("GET", "/protected"))
    ours = "; ".join(v.split(";")[0] for n, v in first.header_lines() if n == "Set-Cookie")
    cookie = "; ".join([f"_ga{i}={'x' * 2500}" for i in range(4)] + [ours])
    assert 8192 < len(cookie) < 16384
    token = answer(dict(first.headers)["WWW-Authenticate"], rsa_2048, issuer_key)
    decision = policy.evaluate(
        RequestInfo("GET", "/protected", authorization=build_authorization(token), cookie=cookie)
    )
    assert decision.outcome is Outcome.PASS


# ------------------------------------------------------------------------------ the clock


def test_the_clock_never_goes_back_and_catches_up_again() -> None:
    from pat_middleware.core.clock import high_water

    wall = FakeClock(1000.0)
    now = high_water(wall)
    assert now() == 1000.0
    wall.advance(5)
    assert now() == 1005.0
    wall.now = 900.0  # stepped back
    assert now() == 1005.0
    wall.now = 1004.0
    assert now() == 1005.0
    wall.now = 1006.5  # wall time has passed the mark: it is read again
    assert now() == 1006.5


def test_the_policy_reads_one_clock_and_its_memory_store_expires_on_it(
    issuer_key: IssuerKey, clock: FakeClock, rsa_2048: rsa.RSAPrivateKey
) -> None:
    from pat_middleware.stores import MemoryReplayStore

    policy = _policy(issuer_key, clock)
    store = policy.store
    assert isinstance(store, MemoryReplayStore)
    browser = Browser(policy)
    token = answer(browser.challenge(), rsa_2048, issuer_key)
    assert browser.get(token=token).outcome is Outcome.PASS
    assert len(store) == 1
    clock.now -= 3600  # stepped back an hour: nothing moves back
    assert policy.clock() == T0
    replay = browser.get(token=token)
    assert replay.reason is Reason.REPLAYED
    clock.now = T0 + policy.windows.longest_validity + 10  # past the nonce's expiry
    assert store.spend(b"another", 1.0)
    assert len(store) == 1, "the spent nonce expired on the policy's clock"
    assert browser.get(token=token).reason is Reason.EXPIRED
