"""The per-step table: what each step of a protected request costs, in process.

Not a ratio: microseconds of this thread's CPU per call, each step timed in a loop of its
own (min / median / max over the rounds), then the whole request in each state, through
``Policy.evaluate`` and through the ASGI middleware around ``pat-middleware origin``'s demo
app. Steps interfere inside a request (caches, branch history), so the parts add up to less
than the whole; the whole rows are the ones the HTTP figures follow.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from pat_middleware.core.headers import parse_authorization
from pat_middleware.core.verify import verify_token
from pat_middleware.policy import Outcome, Policy, RequestInfo
from pat_middleware.stores.memory import MemoryReplayStore

from .common import (
    ISSUER,
    NONE_MODE,
    PSS,
    SECRET,
    SHA384,
    Issuer,
    Options,
    Result,
    Value,
    authorizations,
    session_challenge,
)

ITEM = "S"
_US = "µs"


def _time_per_call(func: Callable[[int], object], calls: int, rounds: int) -> list[float]:
    """Microseconds per call of ``func(i)`` for i in range(calls), once per round."""
    clock = time.thread_time
    out: list[float] = []
    for _ in range(rounds):
        gc.collect()
        t0 = clock()
        for i in range(calls):
            func(i)
        out.append((clock() - t0) / calls * 1e6)
    return out


def run(issuer: Issuer, opts: Options) -> list[Result]:
    rounds = 2 if opts.quick else opts.rounds
    calls = 400 if opts.quick else 4000
    rows: list[Result] = []

    def step(name: str, func: Callable[[int], object], note: str = "", n: int = calls) -> None:
        func(0)  # warm
        rows.append(Value(ITEM, name, _time_per_call(func, n, rounds), _US, note=note))

    # ---------------------------------------------------------------- the token path
    none = Policy(issuer.settings(**NONE_MODE))
    challenge = none.templates[0][0].challenge(b"")
    fresh = (calls + 1) * rounds + 1
    tokens = issuer.mint(challenge, fresh)
    headers = authorizations(tokens)
    header = headers[0]
    raw = parse_authorization(header)[0]
    ring = none.keys
    accepted = (challenge,)
    public_key = issuer.key.public_key
    authenticator, token_input = raw[98:], raw[:98]

    step(
        "`Authorization` parse and base64 (one canonical credential)",
        lambda i: parse_authorization(header),
    )
    step(
        "RSA-PSS verify, raw `cryptography` call",
        lambda i: public_key.verify(authenticator, token_input, PSS, SHA384),
    )
    step(
        "`verify_token`: type, key by id, length, challenge digest, RSA-PSS",
        lambda i: verify_token(raw, keys=ring, challenges=accepted),
    )
    store = MemoryReplayStore()
    nonces = [b"n" + i.to_bytes(32, "big") for i in range(fresh)]
    step("replay store spend, memory", lambda i: store.spend(nonces[i], 60.0))

    # ------------------------------------------------------------ the cookie steps
    session_policy = Policy(issuer.settings())
    cookie, session_ch = session_challenge(session_policy)
    codec = session_policy.sessions
    session_value = cookie.split("=", 1)[1]
    session = codec.load_session(session_value)
    if session is None:
        raise AssertionError("the policy's own session cookie did not load")
    verified_value = codec.dump_verified(session)
    duration = session_policy.settings.verified_duration
    step("session cookie check (MAC, age, id)", lambda i: codec.load_session(session_value))
    step(
        "verified-session cookie check",
        lambda i: codec.is_verified(verified_value, session, duration),
    )
    step("verified-session cookie signed", lambda i: codec.dump_verified(session))
    names = session_policy.cookies.names_for(RequestInfo("GET", "/protected"))
    made = session_policy.cookies.make(names, names.verified, verified_value, duration)
    step("`Set-Cookie` line rendered", lambda i: made.render())

    # ------------------------------------------------------------ whole requests
    verified_cookie = f"{cookie}; {names.verified}={verified_value}"
    public = RequestInfo("GET", "/open")
    session_request = RequestInfo("GET", "/protected", cookie=verified_cookie)
    challenge_request = RequestInfo("GET", "/protected", cookie=cookie)
    for request, outcome in (
        (session_request, Outcome.SESSION),
        (challenge_request, Outcome.CHALLENGE),
    ):
        if session_policy.evaluate(request).outcome is not outcome:
            raise AssertionError(f"expected {outcome}")
    evaluate = session_policy.evaluate
    step("`Policy.evaluate`: unprotected path", lambda i: evaluate(public))
    step(
        "`Policy.evaluate`: verified session (pass, no cookie written)",
        lambda i: evaluate(session_request),
    )
    step("`Policy.evaluate`: 401 challenge, per-session", lambda i: evaluate(challenge_request))
    none_requests = [RequestInfo("GET", "/protected", authorization=h) for h in headers[1:]]
    none_eval = none.evaluate
    offset = [0]

    def none_token(i: int) -> object:
        offset[0] += 1
        return none_eval(none_requests[offset[0] - 1])

    step("`Policy.evaluate`: fresh token, `none` mode", none_token, n=calls)
    session_tokens = issuer.mint(session_ch, fresh)
    token_requests = [
        RequestInfo("GET", "/protected", authorization=a, cookie=cookie)
        for a in authorizations(session_tokens)
    ]
    used = [0]

    def session_token(i: int) -> object:
        used[0] += 1
        return evaluate(token_requests[used[0] - 1])

    step(
        "`Policy.evaluate`: fresh token, per-session (verified cookie signed)",
        session_token,
        n=calls,
    )
    rows.extend(_asgi(issuer, rounds, calls))
    return rows


def _asgi(issuer: Issuer, rounds: int, calls: int) -> list[Result]:
    """The demo origin app (``pat-middleware origin``) called in process, each state."""
    try:
        from pat_middleware.cli.demo import create_origin_app, origin_settings
    except ImportError as e:  # starlette missing
        return [Value(ITEM, f"ASGI demo origin: skipped ({e})", [], _US)]

    settings = origin_settings(ISSUER, issuer.key.token_key, secret=SECRET)
    app = create_origin_app(Policy(settings))

    def scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [*headers, (b"host", b"127.0.0.1:8000"), (b"accept", b"*/*")],
            "client": ("127.0.0.1", 5555),
            "server": ("127.0.0.1", 8000),
        }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async def call(path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, list[Any]]:
        sent.clear()
        await app(scope(path, headers), receive, send)
        return sent[0]["status"], sent[0]["headers"]

    from pat_middleware.core.headers import parse_www_authenticate
    from pat_middleware.core.wire import TokenChallenge

    async def measure() -> list[Result]:
        _, headers = await call("/protected", [])
        cookie = next(v for k, v in headers if k == b"set-cookie").split(b";")[0]
        www = next(v for k, v in headers if k == b"www-authenticate").decode()
        challenge = TokenChallenge.from_bytes(parse_www_authenticate(www)[0].challenge)
        tokens = authorizations(issuer.mint(challenge, calls * rounds + 2))
        _, headers = await call(
            "/protected", [(b"cookie", cookie), (b"authorization", tokens[0].encode())]
        )
        verified = next(v for k, v in headers if k == b"set-cookie").split(b";")[0]
        both = cookie + b"; " + verified
        per: list[float]
        variants = {
            "public route": ("/", [], 200),
            "verified session": ("/protected", [(b"cookie", both)], 200),
            "401 challenge": ("/protected", [(b"cookie", cookie)], 401),
        }
        out: list[Result] = []
        clock = time.thread_time
        # The app behind the middleware alone: its public page, and its protected endpoint
        # given the scope the middleware hands it on a verified session (the endpoint
        # renders the token information as JSON, which the public page does not).
        inner = app.app
        seen: dict[str, Any] = {}

        async def spy(scope: Any, receive: Any, send: Any) -> None:
            seen.update(scope)
            await inner(scope, receive, send)

        app.app = spy
        await call("/protected", [(b"cookie", both)])
        app.app = inner
        passed_scope = {k: v for k, v in seen.items() if k.startswith("pat_middleware")}
        for label, path, extra in (
            ("public route", "/", {}),
            ("protected endpoint, given a verified session's scope", "/protected", passed_scope),
        ):
            per = []
            for _ in range(rounds):
                gc.collect()
                t0 = clock()
                for _ in range(calls):
                    sent.clear()
                    await inner({**scope(path, []), **extra}, receive, send)
                per.append((clock() - t0) / calls * 1e6)
            out.append(Value(ITEM, f"the demo app without the middleware: {label}", per, _US))
        for label, (path, hdrs, expect) in variants.items():
            if (await call(path, hdrs))[0] != expect:
                raise AssertionError(f"{label}: expected {expect}")
            per = []
            for _ in range(rounds):
                gc.collect()
                t0 = clock()
                for _ in range(calls):
                    await call(path, hdrs)
                per.append((clock() - t0) / calls * 1e6)
            out.append(Value(ITEM, f"ASGI demo origin in process: {label}", per, _US))
        per = []
        at = 1
        for _ in range(rounds):
            gc.collect()
            t0 = clock()
            for _ in range(calls):
                await call(
                    "/protected", [(b"cookie", cookie), (b"authorization", tokens[at].encode())]
                )
                at += 1
            per.append((clock() - t0) / calls * 1e6)
        out.append(Value(ITEM, "ASGI demo origin in process: fresh token", per, _US))
        return out

    return asyncio.run(measure())
