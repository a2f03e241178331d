"""Whole requests, random and near-valid, through the policy and both adapters.

Properties, for every input: no exception escapes; no 5xx but the replay store's 503 (with
``Retry-After``) when it is full; every response header is sendable; a request reaches the app
on a token only if it carries a really signed token for a challenge this session may hold,
and on a session only with a really earned verified mark; a well-formed valid redemption
passes; the replay store never outgrows its bound, and memory retained by the library stays
flat however many requests go through.

Near-valid inputs are built per example against the live policy: real session cookies (then
tampered), real challenges, tokens signed with the issuer key (then patched, truncated or
re-encoded), duplicated header lines, latin-1 bytes and values around every size limit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import tracemalloc
from collections.abc import MutableMapping
from typing import Any, Literal

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pat_middleware import IssuerKey, b64url_encode
from pat_middleware.core.headers import MAX_HEADER_BYTES
from pat_middleware.core.wire import GREASE_TOKEN_TYPES, TokenChallenge
from pat_middleware.integrations.asgi import PrivateTokenMiddleware, request_info
from pat_middleware.integrations.wsgi import PrivateTokenWSGIMiddleware
from pat_middleware.policy import SCOPE_KEY, Outcome, Policy, RequestInfo, TokenInfo
from pat_middleware.policy.contexts import ContextMode
from pat_middleware.settings import Settings
from pat_middleware.stores import MemoryReplayStore

from ._origin import FakeClock, challenges_of, header, set_cookies
from .conftest import sign_token
from .vectors import TYPE2_ISSUANCE, h

RFC_KEY = IssuerKey.from_spki(h(TYPE2_ISSUANCE[0]["pkS"]))
_loaded = serialization.load_pem_private_key(h(TYPE2_ISSUANCE[0]["skS"]), password=None)
assert isinstance(_loaded, rsa.RSAPrivateKey)
RFC_PRIVATE_KEY: rsa.RSAPrivateKey = _loaded
ISSUER = "issuer.example"
ORIGIN = "origin.example"
SESSION = "pat_session"
MODES = ("per-session", "per-request", "none")
#: Small on purpose: valid tokens fill it, so the store-full 503 path is fuzzed too.
STORE_CAP = 16
#: One clock for every policy and store; each example moves it on a second, so entries
#: expire and the store both fills and drains during a run.
CLOCK = FakeClock()


def _policy(mode: str) -> Policy:
    settings = Settings.from_mapping(
        {
            "issuers": [{"name": ISSUER, "token_key": RFC_KEY.token_key}],
            "secret": "f" * 40,
            "protect": ["/p*", "glob:/g/*/x"],
            "redemption_context": mode,
            "origin_info": [ORIGIN],
            "replay_ttl": 60,
            "allow_per_process_replay": mode == "none",  # none mode needs it with memory://
        }
    )
    store = MemoryReplayStore(max_entries=STORE_CAP, clock=CLOCK)
    return Policy(settings, replay_store=store, clock=CLOCK)


POLICIES = {mode: _policy(mode) for mode in MODES}


def _store_size(policy: Policy) -> int:
    store = policy.store
    assert isinstance(store, MemoryReplayStore)
    return len(store)


# ------------------------------------------------------------ the simple random requests

header_chars = st.characters(min_codepoint=0x20, max_codepoint=0xFF)
token_like = st.one_of(
    st.binary(max_size=400).map(lambda b: b64url_encode(b)),
    st.just(b64url_encode(h(TYPE2_ISSUANCE[0]["token"]))),
    st.text(header_chars, max_size=60),
)
authorization = st.one_of(
    st.none(),
    st.text(header_chars, max_size=300),
    token_like.map(lambda t: f"PrivateToken token={t}"),
    token_like.map(lambda t: f'PrivateToken token="{t}", PrivateToken token={t}'),
)
cookie = st.one_of(
    st.none(),
    st.text(header_chars, max_size=300),
    st.text(header_chars, max_size=200).map(lambda v: f"pat_session={v}; pat_verified={v}"),
    st.text(header_chars, max_size=200).map(lambda v: f"pat_session_c={v}"),
)
requests = st.builds(
    RequestInfo,
    method=st.sampled_from(["GET", "POST", "HEAD", "PUT", "weird", ""]),
    path=st.text(header_chars, max_size=60).map(lambda p: "/" + p),
    host=st.one_of(st.none(), st.text(header_chars, max_size=40)),
    authorization=authorization,
    cookie=cookie,
)


@pytest.mark.parametrize("mode", MODES)
@given(request=requests)
def test_policy_never_raises(mode: str, request: RequestInfo) -> None:
    policy = POLICIES[mode]
    decision = policy.evaluate(request)
    assert decision.status < 500 or decision.outcome is Outcome.UNAVAILABLE
    assert decision.outcome is not Outcome.PASS  # nothing random is a signed token
    for _name, value in decision.headers:
        value.encode("latin-1")  # every header value is sendable
        assert "\r" not in value and "\n" not in value
    assert _store_size(policy) <= STORE_CAP


# --------------------------------------------------------- near-valid requests (recipes)

SessionKind = Literal["none", "fresh", "tampered", "verified", "random"]
TokenKind = Literal["none", "valid", "other_session", "patched", "truncated", "grease", "random"]
PROTECTED_PATHS = ("/p", "/p/deep", "/protected", "/g/a/x")


@dataclasses.dataclass(frozen=True)
class Encoding:
    """How the token travels in Authorization."""

    scheme: str
    quoted: bool
    padded: bool
    standard_alphabet: bool  # '+' and '/' instead of '-' and '_'
    extra_param: str | None  # an unknown parameter before the token
    prefix: str | None  # another credential in front, e.g. "Basic abc"
    duplicate: bool  # the same credential twice in one value
    split_lines: bool  # a second Authorization header line holding the credential again


#: A header value: bytes, or an int n standing for n bytes of "A".
Value = bytes | int


def _value(value: Value) -> bytes:
    return b"A" * value if isinstance(value, int) else value


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One request, to be built against the live policy."""

    method: str
    path: str
    session: SessionKind
    tamper_at: int
    tamper_char: str
    token: TokenKind
    patch_at: int
    patch: bytes
    truncate_to: int
    random_token: bytes
    grease_type: int
    encoding: Encoding
    random_cookie: Value
    cookie_junk: Value | None  # another cookie header line
    host: Value | None
    extra_headers: tuple[tuple[bytes, Value], ...]


sizes = st.sampled_from(
    [2047, 2048, 2049, MAX_HEADER_BYTES - 1, MAX_HEADER_BYTES, MAX_HEADER_BYTES + 1, 65536]
)
latin1 = st.binary(max_size=200)
huge = sizes  # an int n stands for n bytes of "A" (short reprs in failure reports)
header_names = st.sampled_from(
    [b"authorization", b"cookie", b"host", b"x-forwarded-for", b"accept", b"content-length"]
) | st.binary(min_size=1, max_size=16).map(bytes.lower)
encodings = st.builds(
    Encoding,
    scheme=st.sampled_from(["PrivateToken", "privatetoken", "PRIVATETOKEN", "Bearer"]),
    quoted=st.booleans(),
    padded=st.booleans(),
    standard_alphabet=st.booleans(),
    extra_param=st.none() | st.sampled_from(['x="1"', "y=2", 'token-key="AAAA"']),
    prefix=st.none() | st.sampled_from(["Basic abc", "PrivateToken token=AAAA", 'X y="z"']),
    duplicate=st.booleans(),
    split_lines=st.booleans(),
)
recipes = st.builds(
    Recipe,
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "get", "", "M\xe9"]),
    path=st.sampled_from(PROTECTED_PATHS)
    | st.sampled_from(["/", "/open", "/g/a/y"])
    | st.text(max_size=40).map(lambda p: "/" + p),
    session=st.sampled_from(["none", "fresh", "tampered", "verified", "random"]),
    tamper_at=st.integers(0, 200),
    tamper_char=st.sampled_from(list('A_-.=;"\\ xé')),
    token=st.sampled_from(
        ["none", "valid", "valid", "other_session", "patched", "truncated", "grease", "random"]
    ),
    patch_at=st.integers(0, 353),
    patch=st.binary(min_size=1, max_size=8),
    truncate_to=st.integers(0, 400),
    random_token=st.binary(max_size=400),
    grease_type=st.sampled_from(sorted(GREASE_TOKEN_TYPES)),
    encoding=encodings,
    random_cookie=latin1 | huge,
    cookie_junk=st.none() | latin1 | huge,
    host=st.none() | st.just(ORIGIN.encode()) | latin1 | huge,
    extra_headers=st.lists(st.tuples(header_names, latin1 | huge), max_size=4).map(tuple),
)


@dataclasses.dataclass
class Built:
    """A recipe made concrete: raw headers plus what the oracle needs to know."""

    method: str
    path: str
    headers: list[tuple[bytes, bytes]]
    signed: set[bytes]  # every really signed token the request carries
    own_signed: set[bytes]  # ...of which those for this session's own challenge
    verified: bool  # carries a verified mark earned by a real redemption
    well_formed: bool  # a valid redemption with nothing in the way: must pass


def _challenge(policy: Policy) -> tuple[dict[str, str], TokenChallenge]:
    """A fresh 401: the cookies it sets and its challenge."""
    decision = policy.evaluate(RequestInfo("GET", "/p", host=ORIGIN))
    www = header(decision.headers, "WWW-Authenticate")
    assert decision.status == 401 and www is not None
    return set_cookies(decision.header_lines()), challenges_of(www)[0]


_PLAIN = Encoding("PrivateToken", True, True, False, None, None, False, False)
#: The latest tokens this module signed: what counts as "really signed" for the oracle (a
#: recipe checks the token it has just made, so a few suffice).
_SIGNED: list[bytes] = []
_SIGNED_MAX = 8


def _sign(challenge: TokenChallenge) -> bytes:
    token = sign_token(RFC_PRIVATE_KEY, RFC_KEY, challenge)
    _SIGNED.append(token)
    del _SIGNED[:-_SIGNED_MAX]
    return token


def _cookie_header(cookies: dict[str, str]) -> bytes:
    return "; ".join(f"{k}={v}" for k, v in cookies.items()).encode("latin-1")


def _encode(token: bytes, enc: Encoding) -> list[bytes]:
    """The Authorization header line(s) carrying ``token``."""
    text = b64url_encode(token, padded=enc.padded)
    if enc.standard_alphabet:
        text = text.replace("-", "+").replace("_", "/")
    value = f'"{text}"' if enc.quoted else text
    params = [enc.extra_param] if enc.extra_param else []
    credential = f"{enc.scheme} " + ", ".join([*params, f"token={value}"])
    items = [enc.prefix] if enc.prefix else []
    items.append(credential)
    if enc.duplicate:
        items.append(credential)
    line = ", ".join(items).encode("latin-1")
    return [line, credential.encode("latin-1")] if enc.split_lines else [line]


def _session_id(policy: Policy, cookies: dict[str, str]) -> bytes | None:
    session = policy.sessions.load_session(cookies.get(SESSION))
    return session.session_id if session else None


def build(recipe: Recipe, policy: Policy) -> Built:
    """Make ``recipe`` concrete against ``policy`` (may spend a store entry for "verified")."""
    cookies: dict[str, str] = {}
    own: TokenChallenge | None = None
    verified = False
    original_session: bytes | None = None
    if recipe.session in ("fresh", "tampered", "verified"):
        cookies, own = _challenge(policy)
        original_session = _session_id(policy, cookies)
        if recipe.session == "verified":
            earned = policy.evaluate(
                RequestInfo(
                    "GET",
                    "/p",
                    host=ORIGIN,
                    authorization=_encode(_sign(own), _PLAIN)[0].decode(),
                    cookie=_cookie_header(cookies).decode("latin-1"),
                )
            )
            verified = earned.outcome is Outcome.PASS
            cookies.update(set_cookies(earned.header_lines()))
        if recipe.session == "tampered" and SESSION in cookies:
            value = cookies[SESSION]
            at = recipe.tamper_at % len(value)
            cookies[SESSION] = value[:at] + recipe.tamper_char + value[at + 1 :]

    signed: set[bytes] = set()
    own_signed: set[bytes] = set()
    token: bytes | None = None
    if recipe.token in ("valid", "patched", "truncated"):
        challenge = own if own is not None else _challenge(policy)[1]
        token = _sign(challenge)
        if recipe.token == "patched":
            patched = bytearray(token)
            patched[recipe.patch_at : recipe.patch_at + len(recipe.patch)] = recipe.patch
            token = bytes(patched)
        elif recipe.token == "truncated":
            token = token[: recipe.truncate_to]
    elif recipe.token == "other_session":
        token = _sign(_challenge(policy)[1])
    elif recipe.token == "grease":
        token = recipe.grease_type.to_bytes(2, "big") + recipe.random_token
    elif recipe.token == "random":
        token = recipe.random_token

    # Only what is still byte for byte a token we signed counts as signed.
    if token is not None and token in _SIGNED:
        signed.add(token)
        same_session = _session_id(policy, cookies) == original_session
        if recipe.token != "other_session" and own is not None and same_session:
            own_signed.add(token)

    headers: list[tuple[bytes, bytes]] = []
    if recipe.host is not None:
        headers.append((b"host", _value(recipe.host)))
    if token is not None:
        headers.extend((b"authorization", line) for line in _encode(token, recipe.encoding))
    if recipe.session == "random":
        headers.append((b"cookie", _value(recipe.random_cookie)))
    elif cookies:
        headers.append((b"cookie", _cookie_header(cookies)))
    if recipe.cookie_junk is not None:
        headers.append((b"cookie", _value(recipe.cookie_junk)))
    headers.extend((name, _value(value)) for name, value in recipe.extra_headers)

    enc = recipe.encoding
    well_formed = (
        recipe.token == "valid"
        and recipe.session in ("fresh", "verified")
        # per-request mode spends the challenge: the mark's own redemption used it up
        and not (recipe.session == "verified" and policy.mode is ContextMode.PER_REQUEST)
        and enc.scheme.lower() == "privatetoken"
        and enc.prefix != "PrivateToken token=AAAA"  # a bad first credential is allowed,
        and recipe.cookie_junk is None  # but keep the oracle simple: nothing in the way
        and not any(name in (b"authorization", b"cookie") for name, _ in recipe.extra_headers)
        and recipe.method.upper() in ("GET", "HEAD", "POST", "PUT")
        and recipe.path in PROTECTED_PATHS
    )
    return Built(
        method=recipe.method,
        path=recipe.path,
        headers=headers,
        signed=signed,
        own_signed=own_signed,
        verified=verified,
        well_formed=well_formed,
    )


def check_outcome(
    built: Built, mode: str, status: int, headers: list[tuple[str, str]], passed: object
) -> None:
    """The oracle shared by both adapters."""
    assert status < 500 or status == 503, status
    if status == 503:
        assert any(k.lower() == "retry-after" for k, _ in headers)
    for _name, value in headers:
        value.encode("latin-1")
        assert "\r" not in value and "\n" not in value
    if isinstance(passed, TokenInfo):
        if passed.via_session:
            assert built.verified, "passed on a session mark nobody earned"
        elif mode == "none":
            assert built.signed, "passed without a signed token"
        else:
            assert built.own_signed, "passed without a signed token for this session"
    if built.well_formed:
        assert status in (200, 503), status


# ---------------------------------------------------------------------------- ASGI


async def _asgi_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


ASGI_APPS = {mode: PrivateTokenMiddleware(_asgi_app, policy=POLICIES[mode]) for mode in MODES}


def run_asgi(mode: str, built: Built) -> tuple[int, list[tuple[str, str]], object]:
    scope: dict[str, Any] = {
        "type": "http",
        "scheme": "https",
        "method": built.method,
        "path": built.path,
        "query_string": b"",
        "headers": built.headers,
    }
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(ASGI_APPS[mode](scope, receive, send))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in sent[0]["headers"]]
    return sent[0]["status"], headers, scope.get(SCOPE_KEY)


# ---------------------------------------------------------------------------- WSGI


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


WSGI_APPS = {mode: PrivateTokenWSGIMiddleware(_wsgi_app, policy=POLICIES[mode]) for mode in MODES}


def wsgi_environ(built: Built) -> dict[str, Any]:
    """The environ a WSGI server builds: repeated headers joined with commas, latin-1 text."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": built.method,
        "PATH_INFO": built.path.encode("utf-8", "surrogatepass").decode("latin-1"),
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "wsgi.url_scheme": "https",
    }
    for name, value in built.headers:
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        text = value.decode("latin-1")
        environ[key] = f"{environ[key]},{text}" if key in environ else text
    return environ


def run_wsgi(mode: str, built: Built) -> tuple[int, list[tuple[str, str]], object]:
    environ = wsgi_environ(built)
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
        started.append((status, headers))
        return lambda data: None

    body = b"".join(WSGI_APPS[mode](environ, start_response))
    assert len(started) == 1 and (body or built.method == "HEAD")
    status, headers = started[0]
    return int(status[:3]), headers, environ.get(SCOPE_KEY)


RUNNERS = {"asgi": run_asgi, "wsgi": run_wsgi}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("adapter", RUNNERS)
@given(recipe=recipes)
def test_whole_requests_through_the_adapter(adapter: str, mode: str, recipe: Recipe) -> None:
    CLOCK.advance(1)
    policy = POLICIES[mode]
    built = build(recipe, policy)
    status, headers, passed = RUNNERS[adapter](mode, built)
    check_outcome(built, mode, status, headers, passed)
    assert _store_size(policy) <= STORE_CAP


def test_adapters_read_requests_the_same_way() -> None:
    """The WSGI environ built here reads back as the ASGI scope does (same oracle input)."""
    built = Built(
        "POST",
        "/p",
        [(b"host", ORIGIN.encode()), (b"cookie", b"a=1"), (b"authorization", b"X y")],
        set(),
        set(),
        False,
        False,
    )
    scope = {
        "type": "http",
        "scheme": "https",
        "method": "POST",
        "path": "/p",
        "headers": built.headers,
    }
    from pat_middleware.integrations.wsgi import request_info as wsgi_request_info

    assert wsgi_request_info(wsgi_environ(built)) == request_info(scope)


# -------------------------------------------------------------------------- memory

#: Retained by library code after a batch: the bounded store and nothing per request.
RETAINED_LIMIT = 12 * 1024
#: Peak while handling a batch, huge headers included.
PEAK_LIMIT = 4 * 1024 * 1024
#: Recipes per example, each replayed ROUNDS times (every replay builds fresh sessions and
#: tokens, so no two requests are the same).
BATCH = 10
ROUNDS = 15


class _FormatAndDrop(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)


_FORMAT_AND_DROP = _FormatAndDrop()


def _batches() -> int:
    """A few batches in CI; many more under the long "fuzz" profile."""
    return 3 if hypothesis_settings().max_examples <= 1000 else 40


@hypothesis_settings(
    max_examples=_batches(),
    suppress_health_check=[HealthCheck.large_base_example, HealthCheck.data_too_large],
)
@given(batch=st.lists(recipes, min_size=BATCH, max_size=BATCH))
def test_memory_stays_bounded(batch: list[Recipe]) -> None:
    """Many requests retain no memory in the library beyond the bounded replay store."""
    mode = "per-session"
    policy = POLICIES[mode]
    run_asgi(mode, build(batch[0], policy))  # warm every lazy path first
    run_wsgi(mode, build(batch[0], policy))
    # Log every decision, formatted and then dropped, as a production handler would (pytest's
    # capture keeps every record, which is the harness's memory, not the library's).
    library_logger = logging.getLogger("pat_middleware")
    saved = library_logger.level, library_logger.propagate
    library_logger.setLevel(logging.DEBUG)
    library_logger.propagate = False
    library_logger.addHandler(_FORMAT_AND_DROP)
    tracemalloc.start()
    try:
        for i in range(BATCH * ROUNDS):
            CLOCK.advance(1)
            run = run_asgi if i % 2 else run_wsgi
            run(mode, build(batch[i % BATCH], policy))
            assert _store_size(policy) <= STORE_CAP
        gc.collect()  # cycles in third-party code (itsdangerous) wait for the collector
        snapshot = tracemalloc.take_snapshot()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        library_logger.removeHandler(_FORMAT_AND_DROP)
        library_logger.setLevel(saved[0])
        library_logger.propagate = saved[1]
    library = snapshot.filter_traces([tracemalloc.Filter(True, "*/pat_middleware/*")])
    retained = sum(stat.size for stat in library.statistics("filename"))
    assert retained < RETAINED_LIMIT, library.statistics("lineno")[:5]
    assert peak < PEAK_LIMIT
