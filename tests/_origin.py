"""Helpers for origin-side tests: settings, a fake clock, a cookie jar, answering a 401."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import rsa

from pat_middleware.core.headers import build_authorization, parse_www_authenticate
from pat_middleware.core.wire import TokenChallenge
from pat_middleware.policy import Decision, Outcome, Policy, RequestInfo
from pat_middleware.settings import Settings
from pat_middleware.tokens.blind_rsa import IssuerKey

from .conftest import sign_token

if TYPE_CHECKING:
    import httpx

ISSUER = "issuer.example"
OTHER_ISSUER = "other-issuer.example"
SECRET = "test-secret-0123456789-abcdefghijklmnop"
#: A fake clock's start: a multiple of 15 and 60, so challenge windows start on it.
T0 = 1_700_000_100.0
SESSION_COOKIE = "pat_session"
VERIFIED_COOKIE = "pat_verified"
#: The names as they travel when the cookies are Secure, host-only and at / (the default).
SECURE_SESSION_COOKIE = "__Host-" + SESSION_COOKIE
SECURE_VERIFIED_COOKIE = "__Host-" + VERIFIED_COOKIE


class FakeClock:
    """A mutable clock for ``Policy(clock=...)`` and ``MemoryReplayStore(clock=...)``."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def issuer_entry(name: str, key: IssuerKey) -> dict[str, str]:
    return {"name": name, "token_key": key.token_key}


def make_settings(key: IssuerKey, **overrides: Any) -> Settings:
    """Settings trusting ``key`` as ``ISSUER``, protecting ``/protected`` and ``/api/*``."""
    data: dict[str, Any] = {
        "issuers": [issuer_entry(ISSUER, key)],
        "secret": SECRET,
        "protect": ["/protected", "/api/*"],
    }
    data.update(overrides)
    return Settings.from_mapping(data)


def set_cookies(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Name -> value of every Set-Cookie in ``headers``."""
    out: dict[str, str] = {}
    for name, value in headers:
        if name.lower() == "set-cookie":
            pair = value.split(";", 1)[0]
            cookie_name, _, cookie_value = pair.partition("=")
            out[cookie_name.strip()] = cookie_value.strip()
    return out


def header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name.lower():
            return value
    return None


def challenges_of(www_authenticate: str) -> list[TokenChallenge]:
    return [
        TokenChallenge.from_bytes(p.challenge) for p in parse_www_authenticate(www_authenticate)
    ]


def answer(
    www_authenticate: str,
    private_key: rsa.RSAPrivateKey,
    key: IssuerKey,
    *,
    issuer: str = ISSUER,
    nonce: bytes | None = None,
) -> bytes:
    """A valid token for the challenge of ``issuer`` in a WWW-Authenticate value."""
    for challenge in challenges_of(www_authenticate):
        if challenge.issuer_name == issuer:
            return sign_token(private_key, key, challenge, nonce=nonce)
    raise AssertionError(f"no challenge for {issuer} in {www_authenticate!r}")


class Browser:
    """A sans-IO client: keeps the cookies a policy sets, like a browser would."""

    def __init__(self, policy: Policy, *, host: str | None = None) -> None:
        self.policy = policy
        self.host = host
        self.cookies: dict[str, str] = {}

    def cookie_header(self) -> str | None:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items()) or None

    def get(
        self,
        path: str = "/protected",
        *,
        token: bytes | None = None,
        authorization: str | None = None,
        method: str = "GET",
        cookie: str | None = None,
    ) -> Decision:
        if token is not None:
            authorization = build_authorization(token)
        request = RequestInfo(
            method=method,
            path=path,
            host=self.host,
            authorization=authorization,
            cookie=cookie if cookie is not None else self.cookie_header(),
        )
        decision = self.policy.evaluate(request)
        self.cookies.update(set_cookies(decision.header_lines()))
        return decision

    def challenge(self, path: str = "/protected") -> str:
        """Request ``path`` without a token; return the 401's WWW-Authenticate value."""
        decision = self.get(path)
        assert decision.status == 401, decision
        value = header(decision.headers, "WWW-Authenticate")
        assert value is not None
        return value


def redemption(policy: Policy, private_key: rsa.RSAPrivateKey, key: IssuerKey) -> RequestInfo:
    """A request redeeming a valid token for a fresh 401 of ``policy`` (not yet sent)."""
    browser = Browser(policy)
    token = answer(browser.challenge(), private_key, key)
    return RequestInfo(
        "GET",
        "/protected",
        authorization=build_authorization(token),
        cookie=browser.cookie_header(),
    )


def spent_once_by_two(url: str, private_key: rsa.RSAPrivateKey, key: IssuerKey) -> list[Policy]:
    """Two processes' worth of policies on the replay store ``url`` (same secret, same
    store): a token the first accepts, the second refuses as replayed. Returns the two, for
    the caller to close their stores."""
    first, second = (Policy(make_settings(key, replay_store=url)) for _ in range(2))
    browser = Browser(first)
    token = answer(browser.challenge(), private_key, key)
    assert browser.get(token=token).outcome is Outcome.PASS
    browser.policy = second
    replay = browser.get(
        token=token, cookie=f"__Host-pat_session={browser.cookies['__Host-pat_session']}"
    )
    assert replay.reason is not None and replay.reason.value == "replayed"
    return [first, second]


def redeem(
    client: httpx.Client, path: str, private_key: rsa.RSAPrivateKey, key: IssuerKey
) -> httpx.Response:
    """GET ``path`` over HTTP, which must answer 401, then again with a token answering its
    challenge: the second response."""
    first = client.get(path)
    assert first.status_code == 401, first.text
    token = answer(first.headers["WWW-Authenticate"], private_key, key)
    return client.get(path, headers={"Authorization": build_authorization(token)})


def cookie_string(cookies: Mapping[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())
