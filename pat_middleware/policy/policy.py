"""The policy: one object holding settings, keys and stores that answers "what does this
request get?" Every adapter (ASGI, WSGI, Flask, Django) calls it and does nothing else.

The answer is a :class:`Decision`: pass (with cookies to add to the app's response), a 401
challenge, a refusal with a :class:`Reason`, or "unavailable" (the replay store could not
answer: ``store_unavailable_status``, 503 by default; or no issuer key yet: 503). Client
input never raises out of :meth:`Policy.evaluate`.
"""

from __future__ import annotations

import enum
import functools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..core.clock import high_water
from ..core.codec import b64url_encode
from ..core.headers import WWW_AUTHENTICATE, challenge_pieces, parse_authorization
from ..core.verify import (
    KeyRing,
    TrustedKey,
    VerifiedToken,
    match_challenge,
    verify_token,
)
from ..core.wire import (
    AUTHENTICATOR_INPUT_LENGTH,
    GREASE_TOKEN_TYPES,
    TOKEN_KEY_ID_OFFSET,
    TokenChallenge,
)
from ..discovery import KeySource
from ..errors import ConfigurationError, DecodeError, Reason, TokenError
from ..settings.loader import load_settings
from ..settings.model import Settings
from ..stores import AsyncReplayStore, ReplayStore, StoreUnavailable, open_replay_store
from ..stores import process as _process
from .contexts import (
    ChallengeTemplate,
    ContextDeriver,
    ContextMode,
    Windows,
    derive_key,
)
from .observe import (
    CHALLENGE,
    PASS,
    REJECT,
    SESSION,
    UNAVAILABLE,
    DecisionEvent,
    MetricsHook,
)
from .sessions import (
    MAX_PENDING_CHALLENGES,
    Session,
    SessionCodec,
    parse_cookie_header,
)

logger = logging.getLogger("pat_middleware")
#: One record per decision (see README "Logging and metrics"); a child of "pat_middleware".
decision_logger = logging.getLogger("pat_middleware.decision")
_LEVELS = {
    CHALLENGE: logging.DEBUG,
    PASS: logging.DEBUG,
    SESSION: logging.DEBUG,
    REJECT: logging.INFO,
    UNAVAILABLE: logging.WARNING,
}
#: Refusals that come after the token's key was found among the trusted ones.
_KEY_KNOWN = frozenset(
    {Reason.WRONG_LENGTH, Reason.CHALLENGE_MISMATCH, Reason.EXPIRED, Reason.BAD_SIGNATURE}
)

#: Scope / environ key where adapters put the :class:`TokenInfo` of a passed request.
SCOPE_KEY = "private_token"
#: Per-request mode: random low bits of a challenge's time slot.
_SLOT_RANDOM_BITS = 16
#: Extra seconds the replay store keeps a nonce past the last moment it could verify.
REPLAY_TTL_SLACK = 5
#: Retry-After of the 503 sent while no issuer has a key to challenge with.
NO_KEYS_RETRY_AFTER = 30
#: Retry-After of the answer while a per-process store serves beside other processes.
PER_PROCESS_RETRY_AFTER = 60
#: Why a process may be one of several accepting the same tokens (see Policy.check_process).
_SPAWNED = (
    "this process was started by multiprocessing, as uvicorn and hypercorn start "
    "--workers N (and uvicorn its --reload child)"
)
_FORKED = "this process was forked from the one that built it (gunicorn --preload, prefork)"
_GUNICORN = "gunicorn runs {} workers"
_WSGI_MULTIPROCESS = "the WSGI server says several processes serve it (wsgi.multiprocess)"
_NONE_MODE_PER_PROCESS = (
    'a per-process store (memory://) with redemption_context = "none": nothing binds a '
    "challenge to this process, so after a restart (or in another worker) every token "
    "spent within replay_ttl is accepted again; use a shared store (redis://...) or set "
    "allow_per_process_replay = true"
)


class Outcome(enum.StrEnum):
    SKIP = "skip"  # not protected
    PASS = "pass"  # noqa: S105 - valid token or verified session, not a password
    CHALLENGE = "challenge"  # no token: 401 with challenges
    REJECT = "reject"  # a token was refused
    UNAVAILABLE = "unavailable"  # the replay store could not answer: fail closed


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the policy needs from an HTTP request; adapters fill it in."""

    method: str
    path: str
    host: str | None = None
    #: Other spellings of the path the server or framework may act on (raw target, routed
    #: path, with or without the mount prefix); see :mod:`pat_middleware.core.paths`.
    paths: tuple[str, ...] = ()
    authorization: str | None = field(default=None, repr=False)  # carries a token
    cookie: str | None = field(default=None, repr=False)  # carries signed session marks


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What a passed request proved, for the app to read (scope/environ ``private_token``)."""

    issuer: str | None  # None when the request passed on a verified session
    token_type: int | None
    token_key_id: str | None  # hex
    via_session: bool = False  # passed on a verified session rather than a fresh token


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's answer. On pass, ``headers`` are to be added to the app's response."""

    outcome: Outcome
    status: int = 200
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # signed cookies
    body: bytes = field(default=b"", repr=False)
    reason: Reason | None = None
    token: TokenInfo | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome in (Outcome.SKIP, Outcome.PASS)

    @property
    def private(self) -> bool:
        """The app's response must carry ``Cache-Control: private`` (it passed on a token or
        a verified session: a shared cache must not hand it to anyone else)."""
        return self.outcome is Outcome.PASS


_SKIP = Decision(Outcome.SKIP)
#: A path that does not decode, when path rules are set: refused, not guessed at.
_BAD_PATH = Decision(
    Outcome.REJECT,
    status=400,
    headers=(("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")),
    body=b"Bad request path.\n",
    reason=Reason.MALFORMED,
)
_NO_COOKIES: Mapping[str, str] = MappingProxyType({})


def _render(
    pieces: tuple[tuple[ChallengeTemplate, str, str, str], ...], context: bytes, max_age: int
) -> str:
    """One PrivateToken challenge per issuer, all with ``context``: what
    :func:`~pat_middleware.core.headers.format_challenge` writes, from its pieces."""
    age = str(max_age)
    if len(pieces) == 1:
        template, head, middle, tail = pieces[0]
        return head + b64url_encode(template.encode(context)) + middle + age + tail
    return ", ".join(
        head + b64url_encode(template.encode(context)) + middle + age + tail
        for template, head, middle, tail in pieces
    )


def _pass(trusted: TrustedKey) -> Decision:
    """The pass, without cookies, for a token under this issuer and key."""
    key = trusted.key
    return Decision(
        Outcome.PASS,
        token=TokenInfo(
            issuer=trusted.issuer_name,
            token_type=key.token_type,
            token_key_id=key.token_key_id.hex(),
        ),
    )


def _is_grease_or_empty(token: bytes) -> bool:
    """Empty, or of a grease type: read as "no token" (RFC 9577 §2.2)."""
    if len(token) < 2:
        return not token
    return ((token[0] << 8) | token[1]) in GREASE_TOKEN_TYPES


_VIA_SESSION = TokenInfo(issuer=None, token_type=None, token_key_id=None, via_session=True)
_NO_KEYS = Decision(
    Outcome.UNAVAILABLE,
    status=503,
    headers=(
        ("Retry-After", str(NO_KEYS_RETRY_AFTER)),
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Cache-Control", "no-store"),
    ),
    body=b"No issuer key is available yet; please retry.\n",
)


@dataclass(frozen=True, slots=True)
class _KeySnapshot:
    """The keys in force: built when they change, never per request, swapped whole."""

    keys: KeyRing
    #: (challenge template, token-key to advertise) per issuer that has a current key.
    templates: tuple[tuple[ChallengeTemplate, str], ...]
    static: tuple[TokenChallenge, ...]  # none mode: the empty-context challenges
    static_header: str
    version: int  # the key source's version it was built from
    valid_until: float  # a not-before or the end of a removed key's grace
    #: Per challenged issuer: (template, the header text before the base64 challenge, the
    #: text between it and the max-age value, the text after that). Rendered once.
    pieces: tuple[tuple[ChallengeTemplate, str, str, str], ...] = field(repr=False)
    #: none mode: the matcher over ``static``, built once rather than per request.
    static_match: Callable[[bytes], TokenChallenge | None] = field(repr=False)
    #: The pass (without cookies) per (issuer name, token_key_id): built once per key.
    passes: Mapping[tuple[str, bytes], Decision] = field(repr=False)


class _Context:
    """Per-request working state."""

    __slots__ = ("cookies", "keys", "now", "request", "session", "set_cookies", "started")

    def __init__(
        self,
        request: RequestInfo,
        now: float,
        session: Session | None,
        keys: _KeySnapshot,
        cookies: Mapping[str, str],
        started: float,
    ) -> None:
        self.request = request
        self.now = now
        self.session = session
        self.keys = keys
        self.cookies = cookies
        self.set_cookies: list[str] = []
        self.started = started  # time.perf_counter() at the start, when a metrics hook is set


class _Pending:
    """A verified token waiting for the replay store's verdict."""

    __slots__ = ("ctx", "replay_key", "result", "ttl")

    def __init__(self, ctx: _Context, result: VerifiedToken, replay_key: bytes, ttl: float):
        self.ctx = ctx
        self.result = result
        self.replay_key = replay_key
        self.ttl = ttl


class Policy:
    """Settings + keys + stores. Thread- and task-safe; build one per app at start-up.

    Issuers configured with a directory are fetched here, once, before this returns; then a
    daemon thread keeps them fresh (``refresh_in_background=False``: call
    :meth:`refresh_keys` yourself). :meth:`close` stops it.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        replay_store: ReplayStore | None = None,
        clock: Callable[[], float] = time.time,
        refresh_in_background: bool = True,
        metrics: MetricsHook | None = None,
    ) -> None:
        self.settings = settings
        # One clock for windows, cookies, keys and the memory store: never backwards.
        self.clock = clock = high_water(clock)
        self.metrics = metrics
        self._metrics_failed = False
        self.mode = settings.redemption_context
        if (
            self.mode is ContextMode.NONE
            and getattr(replay_store, "per_process", False)
            and not settings.allow_per_process_replay
        ):
            # Before any thread starts. (Settings refuse memory:// URLs in none mode.)
            raise ConfigurationError("replay_store", _NONE_MODE_PER_PROCESS)
        # Per issuer and accepted token type, built once: keys decide which ones appear.
        self._templates = {
            (issuer.name, t): ChallengeTemplate(t, issuer.name, settings.origin_info)
            for issuer in settings.issuers
            for t in sorted(settings.token_types)
        }
        self._empty_challenges = {
            named: template.challenge(b"") for named, template in self._templates.items()
        }
        self._key_source = KeySource(settings.issuers, settings.discovery, clock=clock)
        if self._key_source.discovers:
            try:
                from ..discovery.refresher import attach  # imports httpx
            except ImportError as e:
                raise ConfigurationError(
                    self._key_source.states[0].setting,
                    "fetching issuer directories needs httpx: "
                    "pip install 'pat-middleware[discovery]'",
                ) from e
            attach(self._key_source, background=refresh_in_background)
        if not settings.origin_info:
            logger.warning(
                "origin_info is empty: challenges name no origin, so a token minted for this "
                "site's challenge can be redeemed at any origin that trusts the same issuer%s; "
                "set origin_info to this site's host names",
                " (and, in none mode, tokens minted for other sites are accepted here)"
                if settings.redemption_context is ContextMode.NONE
                else "",
            )
        self._snapshot_lock = threading.Lock()
        self.windows = Windows.for_max_age(settings.max_age)
        self._context_key = derive_key(settings.secret, "redemption-context")
        self.sessions = SessionCodec(
            derive_key(settings.secret, "cookies"),
            lifetime=settings.session_lifetime,
            clock=clock,
        )
        # "is not None": an empty store may be falsy (it has __len__) and must still be used.
        self.store: ReplayStore = (
            replay_store
            if replay_store is not None
            else open_replay_store(settings.replay_store, clock=clock)
        )
        # A store only this process sees (memory://) is sound only while this process is the
        # only one accepting the tokens: without the opt-in, every protected request fails
        # closed where several processes are seen to serve (see check_process).
        self._per_process = bool(getattr(self.store, "per_process", False))
        self._guard = self._per_process and not settings.allow_per_process_replay
        self._store_name = (
            settings.replay_store.split("?", 1)[0]
            if replay_store is None
            else type(replay_store).__name__
        )
        # With a per-process store, contexts are derived with its epoch (new per store and
        # per process): a challenge is redeemable only where its spend is recorded.
        self._epoch: bytes = getattr(self.store, "epoch", b"") if self._per_process else b""
        self.contexts = ContextDeriver(self._context_key, self._epoch)
        self._born = _process.current()
        self._adopted: _process.Mark | None = None  # the process check_process last looked at
        self._several: str | None = None  # why this process may be one of several
        #: False while the adapters should tell note_server what the server says.
        self.server_noted = not self._guard
        if self._guard:
            if getattr(self.store, "forked", False):
                self._several = _FORKED
            elif _process.started_by_multiprocessing():
                self._several = _SPAWNED
        # A store that never blocks (the memory store) is called directly from async code
        # too: no coroutines per request for a dict operation.
        self._async_store = (
            self.store
            if isinstance(self.store, AsyncReplayStore)
            and not getattr(self.store, "never_blocks", False)
            else None
        )
        self._body = settings.challenge_body.encode("utf-8")
        self._pending_cookie = settings.cookies.pending_cookie
        self._session_cookie_name = settings.cookies.session_cookie
        self._verified_cookie_name = settings.cookies.verified_cookie
        self._refusal_headers = (
            ("Content-Type", settings.challenge_content_type),
            ("Cache-Control", "no-store"),
        )
        self._protects = settings.protects
        self._snapshot = self._build_snapshot(clock())
        self._origins = frozenset(settings.origin_info)
        if self.mode is ContextMode.PER_SESSION:
            self._replay_ttl = float(self.windows.longest_validity + REPLAY_TTL_SLACK)
        elif self.mode is ContextMode.PER_REQUEST:
            self._replay_ttl = float(settings.max_age + REPLAY_TTL_SLACK)
        else:
            self._replay_ttl = float(settings.replay_ttl)

    def __repr__(self) -> str:
        return f"Policy({self.settings!r}, store={self.store!r})"

    # --------------------------------------------------------------------------- keys

    @property
    def keys(self) -> KeyRing:
        """The keys tokens may be signed under, now."""
        return self._current_keys(self.clock()).keys

    @property
    def templates(self) -> tuple[tuple[ChallengeTemplate, str], ...]:
        """(challenge template, advertised token-key) per issuer challenged now."""
        return self._current_keys(self.clock()).templates

    def refresh_keys(self, *, force: bool = True) -> None:
        """Fetch the issuer directories now (only those due with ``force=False``); blocks."""
        self._key_source.refresh(force=force)

    def close(self) -> None:
        """Stop refreshing issuer directories (the policy keeps its last keys)."""
        self._key_source.close()

    def _current_keys(self, now: float) -> _KeySnapshot:
        snapshot = self._snapshot
        if now < snapshot.valid_until and snapshot.version == self._key_source.version:
            return snapshot
        with self._snapshot_lock:
            snapshot = self._snapshot
            if now >= snapshot.valid_until or snapshot.version != self._key_source.version:
                self._key_source.ensure_running()  # again in a forked child
                snapshot = self._snapshot = self._build_snapshot(now)
            return snapshot

    def _build_snapshot(self, now: float) -> _KeySnapshot:
        selection = self._key_source.select(now)
        named_keys = (((i.name, k.token_type), k) for i in selection.issuers for k in i.advertised)
        live = [(named, key) for named, key in named_keys if named in self._templates]
        templates = tuple((self._templates[named], key.token_key) for named, key in live)
        ring = KeyRing(TrustedKey(i.name, key) for i in selection.issuers for key in i.accepted)
        static = tuple(self._empty_challenges[named] for named, _ in live)
        quoted = self.settings.quoted_values
        pieces = tuple(
            (template, *challenge_pieces(token_key, quoted=quoted))
            for template, token_key in templates
        )
        return _KeySnapshot(
            keys=ring,
            templates=templates,
            static=static,
            static_header=_render(pieces, b"", self.settings.max_age),
            pieces=pieces,
            version=selection.version,
            valid_until=selection.valid_until,
            static_match=functools.partial(match_challenge, challenges=static),
            passes={(t.issuer_name, t.key.token_key_id): _pass(t) for t in ring},
        )

    def protects(self, method: str, *paths: str) -> bool:
        """True when the settings protect a request with these path spellings (see
        :meth:`Settings.protects`); raises :class:`DecodeError` for a path that does not
        decode (answer it with :meth:`bad_path`)."""
        return self._protects(method, *paths)

    def bad_path(self) -> Decision:
        """The 400 for a request path that does not decode while path rules are set."""
        self._observe(
            None, REJECT, 400, reason=Reason.MALFORMED, detail="request path does not decode"
        )
        return _BAD_PATH

    # ------------------------------------------------------------- one process or several

    def check_process(self) -> str | None:
        """Why this process must not accept tokens with its per-process replay store, as
        one line naming ``replay_store``; None when it may (a shared store, the
        ``allow_per_process_replay`` opt-in, or no sign of other processes).

        The signs: started by multiprocessing (uvicorn or hypercorn ``--workers``), forked
        from the process that built the policy or its store (gunicorn ``--preload``), a
        gunicorn worker whose configuration has several workers, and what the WSGI server
        says (:meth:`note_server`). Looked at once per process; every protected request asks
        (and is refused with ``store_unavailable_status`` while there is a reason). The ASGI
        middleware asks during lifespan start-up, which makes the server stop instead.
        """
        if not self._guard:
            return None
        mark = _process.current()
        if mark is not self._adopted:
            self._adopt(mark)
        return self._problem()

    def note_server(self, *, multiprocess: bool) -> None:
        """What the server says of itself: WSGI adapters pass ``wsgi.multiprocess`` (see
        :func:`pat_middleware.integrations.wsgi.note_server`) once, while :attr:`server_noted`
        is False."""
        if multiprocess and self._guard and self._several is None:
            self._several = _WSGI_MULTIPROCESS
        self.server_noted = True

    def _adopt(self, mark: _process.Mark) -> None:
        """The first look at this process (its first protected request, or start-up): a
        forked copy of the store has an epoch of its own, so contexts follow it."""
        epoch: bytes = getattr(self.store, "epoch", b"") if self._per_process else b""
        if epoch != self._epoch:
            self.contexts = ContextDeriver(self._context_key, epoch)
            self._epoch = epoch
        if self._guard and self._several is None:
            if mark is not self._born:
                self._several = _FORKED
            else:
                workers = _process.gunicorn_workers()
                if workers is not None and workers > 1:
                    self._several = _GUNICORN.format(workers)
        self._adopted = mark

    def _problem(self) -> str | None:
        why = self._several
        if why is None:
            return None
        return (
            f"replay_store: {self._store_name} keeps spent tokens in this process only, but "
            f"{why}: each process would accept a token once; use a shared store "
            "(redis://...) or set allow_per_process_replay = true"
        )

    # ------------------------------------------------------------------------ evaluation

    @classmethod
    def resolve(
        cls,
        policy: Policy | None = None,
        settings: Settings | None = None,
        settings_file: str | None = None,
        metrics: MetricsHook | None = None,
    ) -> Policy:
        """The adapters' constructor options: a policy, settings, or a settings file (``None``
        reads ``$PAT_SETTINGS``), in that order of precedence, and a metrics hook for a
        policy built here (a ready policy brings its own)."""
        if policy is not None:
            if metrics is not None:
                raise ConfigurationError("metrics", "give it to the Policy passed as policy=")
            return policy
        settings = settings if settings is not None else load_settings(settings_file)
        return cls(settings, metrics=metrics)

    def evaluate(self, request: RequestInfo, *, force: bool = False) -> Decision:
        """Judge a request. ``force`` protects it whatever the path settings say."""
        step = self._begin(request, force)
        if isinstance(step, Decision):
            return step
        try:
            fresh = self._spend(step)
        except StoreUnavailable as e:
            return self._unavailable(step.ctx, e)
        return self._finish(step, fresh)

    def _spend(self, step: _Pending) -> bool:
        """Record the token's replay key; False when it was already there."""
        fresh = self.store.reserve(step.replay_key, step.ttl)
        if fresh:
            self.store.commit(step.replay_key)
        return fresh

    async def evaluate_async(self, request: RequestInfo, *, force: bool = False) -> Decision:
        """:meth:`evaluate` for async adapters: uses the store's async form when it has one."""
        step = self._begin(request, force)
        if isinstance(step, Decision):
            return step
        try:
            if self._async_store is not None:
                fresh = await self._async_store.reserve_async(step.replay_key, step.ttl)
                if fresh:
                    await self._async_store.commit_async(step.replay_key)
            else:
                fresh = self._spend(step)
        except StoreUnavailable as e:
            return self._unavailable(step.ctx, e)
        return self._finish(step, fresh)

    def _begin(self, request: RequestInfo, force: bool) -> Decision | _Pending:
        if not force:
            try:
                if not self._protects(request.method, request.path, *request.paths):
                    return _SKIP
            except DecodeError:
                return self.bad_path()
        started = time.perf_counter() if self.metrics is not None else 0.0
        now = self.clock()
        cookies = parse_cookie_header(request.cookie) if request.cookie else _NO_COOKIES
        session = (
            self.sessions.load_session(cookies.get(self._session_cookie_name)) if cookies else None
        )
        ctx = _Context(request, now, session, self._current_keys(now), cookies, started)

        if self._per_process:
            # The pid is read only when a token is to be spent: forks made outside os.fork
            # skip the hooks that replace the mark.
            mark = _process.checked() if request.authorization else _process.current()
            if mark is not self._adopted:
                self._adopt(mark)
            if self._several is not None:
                problem = self._problem()
                assert problem is not None
                return self._unavailable(
                    ctx, StoreUnavailable(problem, retry_after=PER_PROCESS_RETRY_AFTER)
                )

        if self.settings.check_host and not self._host_allowed(request.host):
            return self._refuse(
                ctx, Reason.CHALLENGE_MISMATCH, "Host is not in origin_info", status=421
            )
        if not ctx.keys.templates:
            # No issuer has a key to challenge with (yet): fail closed.
            self._observe(ctx, UNAVAILABLE, _NO_KEYS.status, detail="no issuer key available yet")
            return _NO_KEYS

        tokens: list[bytes] = []
        if request.authorization:
            try:
                tokens = parse_authorization(
                    request.authorization, max_length=self.settings.max_authorization_length
                )
            except DecodeError as e:
                return self._refuse(ctx, Reason.MALFORMED, str(e))
        # Grease tokens stand for "no token" (RFC 9577 §2.2); so do empty ones.
        if tokens and (len(tokens) != 1 or _is_grease_or_empty(tokens[0])):
            tokens = [t for t in tokens if not _is_grease_or_empty(t)]
        if not tokens:
            # Only a request without a token is judged by the verified mark (its MAC is
            # checked here, not on the token path).
            if self.sessions.is_verified(
                cookies.get(self._verified_cookie_name),
                session,
                self.settings.verified_duration,
            ):
                self._observe(ctx, SESSION, 200)
                return Decision(Outcome.PASS, token=_VIA_SESSION)
            return self._challenge(ctx)

        # The first failure's reason, detail and token, not the exception: a kept exception
        # holds its traceback, whose frame holds the exception again, so every refused
        # request's token, cookies and context would wait for the cyclic garbage collector.
        first_error: tuple[Reason, str, bytes] | None = None
        matcher = self._matcher(ctx)
        for raw in tokens:
            try:
                result = verify_token(
                    raw,
                    keys=ctx.keys.keys,
                    challenges=matcher,
                    allowed_types=self.settings.token_types,
                )
            except TokenError as e:
                if e.reason is Reason.UNKNOWN_KEY:
                    self._key_source.key_missing(now)  # rate-limited, never waits
                first_error = first_error or (e.reason, e.detail, raw)
                continue
            if self.mode is ContextMode.PER_REQUEST:
                key = b"c" + result.challenge_digest
            else:
                key = b"n" + result.nonce
            return _Pending(ctx, result, key, self._replay_ttl)
        assert first_error is not None
        reason, detail, raw = first_error
        # Name the issuer and key in the report only when the token's key is a trusted one
        # (in the key snapshot this request was verified against).
        key_id = raw[TOKEN_KEY_ID_OFFSET:AUTHENTICATOR_INPUT_LENGTH]
        trusted = ctx.keys.keys.find(key_id) if reason in _KEY_KNOWN else None
        return self._refuse(
            ctx,
            reason,
            detail,
            issuer=trusted.issuer_name if trusted else None,
            key_id=trusted.key.token_key_id if trusted else None,
        )

    def _finish(self, step: _Pending, fresh: bool) -> Decision:
        ctx = step.ctx
        result = step.result
        if not fresh:
            return self._refuse(
                ctx,
                Reason.REPLAYED,
                "token was already spent",
                issuer=result.issuer_name,
                key_id=result.token_key_id,
            )
        key_id = result.key.token_key_id
        passed = ctx.keys.passes.get((result.issuer_name, key_id))
        if passed is None:  # a key added to the live ring (``Policy.keys``) after the snapshot
            passed = _pass(TrustedKey(result.issuer_name, result.key))
        duration = self.settings.verified_duration
        if duration > 0:
            headers: list[tuple[str, str]] = []
            session = ctx.session
            if session is None:
                session = self.sessions.new_session()
                headers.append(("Set-Cookie", self._session_cookie(session)))
            opts = self.settings.cookies
            verified = self.sessions.dump_verified(session)
            headers.append(("Set-Cookie", opts.render(opts.verified_cookie, verified, duration)))
            passed = Decision(Outcome.PASS, headers=tuple(headers), token=passed.token)
        self._observe(ctx, PASS, 200, issuer=result.issuer_name, key_id=key_id)
        return passed

    # ---------------------------------------------------------------------- challenges

    def _matcher(self, ctx: _Context) -> Callable[[bytes], TokenChallenge | None]:
        """Rebuild the challenges this request's session may hold, newest first."""
        if self.mode is ContextMode.NONE:
            return ctx.keys.static_match

        if self.mode is ContextMode.PER_SESSION:
            return functools.partial(self._match_per_session, ctx)

        def match(digest: bytes) -> TokenChallenge | None:
            for context, expired in self._candidate_contexts(ctx):
                for template, _ in ctx.keys.templates:
                    challenge = template.match(context, digest)
                    if challenge is None:
                        continue
                    if expired:
                        raise TokenError(Reason.EXPIRED, "challenge is older than max-age")
                    return challenge
            return None

        return match

    def _match_per_session(self, ctx: _Context, digest: bytes) -> TokenChallenge | None:
        """The live window's challenge with this digest, newest window first; ``expired``
        for one of the windows just before them (ranges, not generators: this runs on every
        redemption)."""
        session = ctx.session
        if session is None:
            return None
        sid = session.session_id
        pieces = ctx.keys.pieces
        derive = self.contexts.context
        for window in self.windows.live(ctx.now):
            context = derive(sid, window)
            for piece in pieces:
                challenge = piece[0].match(context, digest)
                if challenge is not None:
                    return challenge
        for window in self.windows.expired(ctx.now):  # only on the failure path
            context = derive(sid, window)
            for piece in pieces:
                if piece[0].match(context, digest) is not None:
                    raise TokenError(Reason.EXPIRED, "challenge is older than max-age")
        return None

    def _candidate_contexts(self, ctx: _Context) -> Iterator[tuple[bytes, bool]]:
        """Per-request mode: (context, expired) per challenge the session was sent."""
        session = ctx.session
        if session is None:
            return
        sid = session.session_id
        slots = self.sessions.load_pending(
            ctx.cookies.get(self._pending_cookie), session, self.settings.session_lifetime
        )
        now_ms = ctx.now * 1000
        for slot in slots:
            issued_ms = slot >> _SLOT_RANDOM_BITS
            yield (
                self.contexts.context(sid, slot),
                now_ms - issued_ms > self.settings.max_age * 1000,
            )

    def _challenge_header(self, ctx: _Context) -> str:
        if self.mode is ContextMode.NONE:
            return ctx.keys.static_header
        session = ctx.session
        fresh_needed = (
            session is None
            or session.issued_at + self.settings.session_lifetime - ctx.now
            < self.windows.longest_validity
        )
        if fresh_needed:
            session = self.sessions.new_session()
            ctx.session = session
            ctx.set_cookies.append(self._session_cookie(session))
        assert session is not None
        if self.mode is ContextMode.PER_SESSION:
            window = self.windows.index(ctx.now)
            context = self.contexts.context(session.session_id, window)
            max_age = self.windows.remaining(window, ctx.now)
        else:
            # Issue time (ms) above 16 random bits: two 401s in one millisecond still differ.
            slot = (int(ctx.now * 1000) << _SLOT_RANDOM_BITS) | secrets.randbits(_SLOT_RANDOM_BITS)
            context = self.contexts.context(session.session_id, slot)
            max_age = self.settings.max_age
            previous = (
                []
                if fresh_needed
                else self.sessions.load_pending(
                    ctx.cookies.get(self._pending_cookie), session, self.settings.session_lifetime
                )
            )
            kept = [s for s in previous if s != slot][-(MAX_PENDING_CHALLENGES - 1) :]
            slots = [*kept, slot]
            opts = self.settings.cookies
            ctx.set_cookies.append(
                opts.render(
                    self._pending_cookie,
                    self.sessions.dump_pending(session, slots),
                    self.settings.max_age + REPLAY_TTL_SLACK,
                )
            )
        return _render(ctx.keys.pieces, context, max_age)

    def _challenge(self, ctx: _Context) -> Decision:
        header = self._challenge_header(ctx)
        self._observe(ctx, CHALLENGE, 401)
        return Decision(
            Outcome.CHALLENGE,
            status=401,
            headers=self._response_headers(ctx, header),
            body=self._body,
        )

    def _refuse(
        self,
        ctx: _Context,
        reason: Reason,
        detail: str,
        *,
        status: int | None = None,
        issuer: str | None = None,
        key_id: bytes | None = None,
    ) -> Decision:
        status = status or self.settings.failure_status
        header = self._challenge_header(ctx) if status == 401 else None
        self._observe(
            ctx, REJECT, status, reason=reason, detail=detail, issuer=issuer, key_id=key_id
        )
        return Decision(
            Outcome.REJECT,
            status=status,
            headers=self._response_headers(ctx, header),
            body=self._body,
            reason=reason,
        )

    def _unavailable(self, ctx: _Context, error: StoreUnavailable) -> Decision:
        status = self.settings.store_unavailable_status
        self._observe(ctx, UNAVAILABLE, status, detail=str(error))
        return Decision(
            Outcome.UNAVAILABLE,
            status=status,
            headers=(
                ("Retry-After", str(error.retry_after)),
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Cache-Control", "no-store"),
            ),
            body=b"Service temporarily unavailable; please retry.\n",
        )

    # --------------------------------------------------------------- logging and metrics

    def _observe(
        self,
        ctx: _Context | None,
        outcome: str,
        status: int,
        *,
        reason: Reason | None = None,
        detail: str = "",
        issuer: str | None = None,
        key_id: bytes | None = None,
    ) -> None:
        """Report one decision: one log record, one metrics event. Nothing identifying a
        user (path, address, cookie, session id, nonce, token) goes into either."""
        hook = self.metrics
        if hook is not None:
            event = DecisionEvent(
                outcome,
                reason,
                issuer,
                key_id.hex() if key_id is not None else None,
                status,
                time.perf_counter() - ctx.started if ctx is not None else 0.0,
            )
            try:
                hook.record(event)
            except Exception:
                if not self._metrics_failed:  # once: a broken hook must not flood the log
                    self._metrics_failed = True
                    logger.error(
                        "metrics hook %r raised; requests go on, its errors are not logged again",
                        type(hook).__name__,
                        exc_info=True,
                    )
        level = _LEVELS[outcome]
        if not decision_logger.isEnabledFor(level):
            return
        key_hex = key_id.hex() if key_id is not None else None
        parts = [outcome]
        if reason is not None:
            parts.append(f"reason={reason.value}")
        parts.append(f"status={status}")
        if issuer is not None:
            parts.append(f"issuer={issuer} key_id={key_hex}")
        message = " ".join(parts) + (f": {detail}" if detail else "")
        decision_logger.log(
            level,
            message,
            extra={
                "pat_outcome": outcome,
                "pat_reason": reason.value if reason is not None else None,
                "pat_status": status,
                "pat_issuer": issuer,
                "pat_key_id": key_hex,
                "pat_detail": detail or None,
            },
        )

    def _response_headers(
        self, ctx: _Context, challenge: str | None
    ) -> tuple[tuple[str, str], ...]:
        cookies = [("Set-Cookie", c) for c in ctx.set_cookies] if ctx.set_cookies else ()
        if challenge:
            return ((WWW_AUTHENTICATE, challenge), *cookies, *self._refusal_headers)
        return (*cookies, *self._refusal_headers)

    def _session_cookie(self, session: Session) -> str:
        opts = self.settings.cookies
        return opts.render(
            opts.session_cookie, self.sessions.dump_session(session), self.settings.session_lifetime
        )

    def _host_allowed(self, host: str | None) -> bool:
        if not host:
            return False
        host = host.strip().lower()
        if host.endswith(":443"):
            host = host[:-4]
        return host in self._origins


__all__ = ["SCOPE_KEY", "Decision", "Outcome", "Policy", "RequestInfo", "TokenInfo"]
