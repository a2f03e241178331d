"""The policy: one object that answers "what does this request get?" Every integration calls
it (through :mod:`pat_middleware.integrations`) and does nothing else.

request -> protected? -> keys in force -> trust signals, in order -> at most one store spend
-> :class:`~pat_middleware.policy.decision.Decision`. What differs between the
redemption-context modes lives in :mod:`.strategies`, the evidence a request may carry in
:mod:`.signals`, the answers in :mod:`.responses`, the keys in :mod:`.keys`, the one-process
check in :mod:`.guard`. Client input never raises out of :meth:`Policy.evaluate`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from types import MappingProxyType

from ..core.clock import high_water
from ..core.verify import KeyRing
from ..core.wire import ChallengeTemplate
from ..discovery import KeySource, RecordKeySource
from ..errors import ConfigurationError, DecodeError, Reason
from ..settings.model import ContextMode, Settings
from ..stores import (
    MemoryReplayStore,
    PerProcessStore,
    ReplayStore,
    StoreUnavailable,
    open_replay_store,
)
from ..tokens.pss_tink import requested_backend
from .contexts import ContextDeriver, Windows, derive_key
from .decision import Decision, RequestInfo
from .guard import NONE_MODE_PER_PROCESS, PER_PROCESS_RETRY_AFTER, ProcessGuard
from .keys import PolicyKeys
from .observe import MetricsHook, Observer
from .responses import SKIP, Responses
from .sessions import CookieHeader, SessionCodec
from .signals import (
    Accepted,
    PrivateTokenSignal,
    RedemptionRecordSignal,
    Refused,
    TrustSignal,
    VerifiedSessionSignal,
)
from .strategies import ContextStrategy, Cookies, RequestState, strategy_for

logger = logging.getLogger("pat_middleware")
#: How many protect answers a policy remembers (see Policy._protects).
PROTECTS_CACHE_SIZE = 1024
#: Longer paths are judged every time, not remembered.
PROTECTS_CACHE_PATH = 256
#: So are longer methods (registered ones are at most 17 characters): a server may let a
#: method of many KiB through, and the memo's size must not be set by the server's limits.
PROTECTS_CACHE_METHOD = 32
_NO_COOKIES: Mapping[str, str] = MappingProxyType({})


def names_are_secure(cookies: Cookies, request: RequestInfo) -> bool:
    return cookies.names_for(request).secure


def host_allowed(origins: frozenset[str], host: str | None) -> bool:
    """Whether a Host header names one of ``origins`` (``check_host``)."""
    if not host:
        return False
    host = host.strip().lower()
    if host.endswith(":443"):
        host = host[:-4]
    return host in origins


class RememberedProtection:
    """:meth:`Settings.protects`, remembered per (method, path spellings): the rules are fixed
    for the policy's life, so the answer is too. At most :data:`PROTECTS_CACHE_SIZE` answers
    are kept (then forgotten all at once, so a client sending endless new paths costs a
    recomputation, never memory; long paths and methods are not kept); a path that does
    not decode raises every time, as it did."""

    __slots__ = ("_known", "_protects")

    def __init__(self, protects: Callable[..., bool]) -> None:
        self._protects = protects
        self._known: dict[tuple[str, ...], bool] = {}

    def __call__(self, method: str, *paths: str) -> bool:
        key = (method, *paths)
        known = self._known.get(key)
        if known is not None:
            return known
        answer = self._protects(method, *paths)
        if (
            len(paths) <= 4
            and len(method) <= PROTECTS_CACHE_METHOD
            and all(len(path) <= PROTECTS_CACHE_PATH for path in paths)
        ):
            cache = self._known
            if len(cache) >= PROTECTS_CACHE_SIZE:
                cache.clear()
            cache[key] = answer
        return answer


def _attach(source: KeySource | RecordKeySource, what: str, background: bool) -> None:
    """Fetch now, then keep fresh, what ``source`` discovers; the fetching needs httpx, whose
    absence is a start-up error naming the first setting that asks for it."""
    if not source.discovers:
        return
    try:
        from ..discovery.refresher import attach  # imports httpx
    except ImportError as e:
        raise ConfigurationError(
            source.states[0].setting,
            f"fetching {what} needs httpx: pip install 'pat-middleware[discovery]'",
        ) from e
    attach(source, background=background)


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
        signals: Sequence[TrustSignal] = (),
    ) -> None:
        """``signals`` are trust signals of your own, asked after the Private Access Token
        and before the verified session (see :mod:`pat_middleware.policy.signals`)."""
        self.settings = settings
        requested_backend()  # a typo stops start-up, not a key load in the refresher
        # One clock for windows, cookies, keys and the memory store: never backwards.
        self.clock = clock = high_water(clock)
        self.mode = settings.redemption_context
        if (
            self.mode is ContextMode.NONE
            and isinstance(replay_store, PerProcessStore)
            and not settings.allow_per_process_replay
        ):
            # Before any thread starts. (Settings refuse memory:// URLs in none mode.)
            raise ConfigurationError("replay_store", NONE_MODE_PER_PROCESS)
        source = KeySource(settings.issuers, settings.discovery, clock=clock)
        _attach(source, "issuer directories", refresh_in_background)
        if not settings.origin_info:
            logger.warning(
                "origin_info is empty: challenges name no origin, so a token minted for this "
                "site's challenge can be redeemed at any origin that trusts the same issuer%s; "
                "set origin_info to this site's host names",
                " (and, in none mode, tokens minted for other sites are accepted here)"
                if self.mode is ContextMode.NONE
                else "",
            )
        # "is not None": an empty store may be falsy (it has __len__) and must still be used.
        self.store: ReplayStore = (
            replay_store
            if replay_store is not None
            else open_replay_store(settings.replay_store, clock=clock)
        )
        # Its spend_async only calls spend (no I/O): the async path calls spend, one coroutine
        # fewer per redemption. Exactly the class: a subclass may wait.
        self._spends_in_place = type(self.store) is MemoryReplayStore
        store_name = (
            settings.replay_store.split("?", 1)[0]
            if replay_store is None
            else type(replay_store).__name__
        )
        self.guard = ProcessGuard(settings, self.store, store_name, self._new_epoch)
        self._context_key = derive_key(settings.secret, "redemption-context")
        self.windows = Windows.for_max_age(settings.max_age)
        self.sessions = SessionCodec(
            derive_key(settings.secret, "cookies"), lifetime=settings.session_lifetime, clock=clock
        )
        self.cookies = cookies = Cookies(settings, self.sessions)
        # With a per-process store, contexts are derived with its epoch (new per store and
        # per process): a challenge is redeemable only where its spend is recorded.
        contexts = ContextDeriver(self._context_key, self.guard.epoch)
        self.strategy: ContextStrategy = strategy_for(
            settings, self.sessions, cookies, contexts, self.windows
        )
        self._keys = PolicyKeys(settings, source, clock())
        self.responses = Responses(
            settings, self.strategy, self.sessions, cookies, Observer(metrics)
        )
        self.record_keys = self._record_keys(settings, clock, refresh_in_background)
        records: tuple[TrustSignal, ...] = ()
        if self.record_keys is not None:
            records = (RedemptionRecordSignal(self.record_keys),)
        #: The trust signals, asked in order: the first one present decides.
        self.signals: tuple[TrustSignal, ...] = (
            PrivateTokenSignal(settings, self.strategy, source),
            *records,
            *signals,
            VerifiedSessionSignal(settings, self.sessions),
        )
        self._signals_by_choice: dict[frozenset[str], tuple[TrustSignal, ...]] = {}
        self._protects = RememberedProtection(settings.protects)
        # Warn once when a token arrives over http without the Secure session cookie.
        self._warn_secure = settings.cookies.secure and self.mode is not ContextMode.NONE
        self._origins = frozenset(settings.origin_info)

    def __repr__(self) -> str:
        return f"Policy({self.settings!r}, store={self.store!r})"

    @staticmethod
    def _record_keys(
        settings: Settings, clock: Callable[[], float], background: bool
    ) -> RecordKeySource | None:
        """The trusted PST issuers' record keys (``pst_issuers``), fetched now when any
        issuer publishes them, then kept fresh like issuer directories."""
        if not settings.pst.issuers:
            return None
        source = RecordKeySource.from_settings(settings.pst, settings.discovery, clock=clock)
        _attach(source, "redemption-record keys", background)
        return source

    # ------------------------------------------------------------------------ state

    @property
    def metrics(self) -> MetricsHook | None:
        return self.responses.observer.metrics

    @property
    def contexts(self) -> ContextDeriver | None:
        """The key redemption contexts are derived under (None in ``none`` mode)."""
        return self.strategy.contexts

    def _new_epoch(self, epoch: bytes) -> None:
        if self.strategy.contexts is not None:
            self.strategy.contexts = ContextDeriver(self._context_key, epoch)

    @property
    def keys(self) -> KeyRing:
        """The keys tokens may be signed under, now."""
        return self._keys.current(self.clock()).keys

    @property
    def templates(self) -> tuple[tuple[ChallengeTemplate, str], ...]:
        """(challenge template, advertised token-key) per issuer challenged now."""
        return self._keys.current(self.clock()).templates

    @property
    def _key_source(self) -> KeySource:
        return self._keys.source

    def refresh_keys(self, *, force: bool = True) -> None:
        """Fetch the issuer directories now (only those due with ``force=False``); blocks."""
        self._keys.source.refresh(force=force)

    def close(self) -> None:
        """Stop refreshing issuer directories and record keys (the policy keeps its last)."""
        self._keys.source.close()
        if self.record_keys is not None:
            self.record_keys.close()

    def protects(self, method: str, *paths: str) -> bool:
        """True when the settings protect a request with these path spellings (see
        :meth:`Settings.protects`); raises :class:`DecodeError` for a path that does not
        decode (answer it with :meth:`bad_path`)."""
        return self._protects(method, *paths)

    def bad_path(self) -> Decision:
        """The 400 for a request path that does not decode while path rules are set."""
        return self.responses.bad_path()

    @property
    def server_noted(self) -> bool:
        """False while the WSGI adapters should tell :meth:`note_server` about the server."""
        return self.guard.server_noted

    def note_server(self, *, multiprocess: bool) -> None:
        """What the server says of itself: WSGI adapters pass ``wsgi.multiprocess`` once."""
        self.guard.note_server(multiprocess=multiprocess)

    def check_process(self) -> str | None:
        """Why this process must not accept tokens with its per-process replay store, as
        one line naming ``replay_store``; None when it may (a shared store, the
        ``allow_per_process_replay`` opt-in, or no sign of other processes). See
        :mod:`pat_middleware.policy.guard`; the ASGI middleware asks at lifespan start-up."""
        return self.guard.check_process()

    # --------------------------------------------------------------------- evaluation

    def signals_for(self, accept: Collection[str] | None) -> tuple[TrustSignal, ...]:
        """The signals a route accepts (``accept``: their names; None: all of them). Names
        of no signal here accept nothing (fail closed); decorators check them at start-up."""
        if accept is None:
            return self.signals
        key = frozenset(accept)
        chosen = self._signals_by_choice.get(key)
        if chosen is None:
            chosen = tuple(s for s in self.signals if s.name in key)
            self._signals_by_choice[key] = chosen
        return chosen

    def evaluate(
        self, request: RequestInfo, *, force: bool = False, accept: Collection[str] | None = None
    ) -> Decision:
        """Judge a request. ``force`` protects it whatever the path settings say; ``accept``
        limits the trust signals it may pass on (by name: ``private-token``, ``session``,
        ``redemption-record``)."""
        step = self._judge(request, force, accept)
        if not isinstance(step, tuple):
            return step
        state, accepted = step
        if accepted.spend is not None:
            try:
                fresh = self.store.spend(accepted.spend, accepted.ttl)
            except StoreUnavailable as e:
                return self.responses.unavailable(state, e)
            if not fresh:
                return self._replayed(state, accepted)
        return self.responses.passed(state, accepted)

    async def evaluate_async(
        self, request: RequestInfo, *, force: bool = False, accept: Collection[str] | None = None
    ) -> Decision:
        """:meth:`evaluate` for async adapters: uses the store's async form when it has one."""
        step = self._judge(request, force, accept)
        if not isinstance(step, tuple):
            return step
        state, accepted = step
        if accepted.spend is not None:
            try:
                if self._spends_in_place:  # the memory store: a dict under a lock, no I/O
                    fresh = self.store.spend(accepted.spend, accepted.ttl)
                else:
                    fresh = await self.store.spend_async(accepted.spend, accepted.ttl)
            except StoreUnavailable as e:
                return self.responses.unavailable(state, e)
            if not fresh:
                return self._replayed(state, accepted)
        return self.responses.passed(state, accepted)

    def _replayed(self, state: RequestState, accepted: Accepted) -> Decision:
        refused = Refused(
            Reason.REPLAYED, "token was already spent", accepted.issuer, accepted.key_id
        )
        return self.responses.refuse(state, refused)

    def _judge(
        self, request: RequestInfo, force: bool, accept: Collection[str] | None = None
    ) -> Decision | tuple[RequestState, Accepted]:
        """Everything up to the store: a decision, or the accepted signal to spend."""
        if not force:
            try:
                if not self._protects(request.method, request.path, *request.paths):
                    return SKIP
            except DecodeError:
                return self.responses.bad_path()
        responses = self.responses
        started = responses.observer.started()
        now = self.clock()
        names = self.cookies.names_for(request)
        # Read by name (CookieHeader): only the policy's own cookies are looked for.
        cookies = CookieHeader(request.cookie) if request.cookie else _NO_COOKIES
        session = self.sessions.load_session(cookies.get(names.session)) if request.cookie else None
        if session is None and self._warn_secure and request.scheme == "http":
            self._no_secure_cookie(request)
        keys = self._keys.current(now)
        state = RequestState(request, now, session, keys, cookies, started, names)
        if self.guard.per_process:
            problem = self.guard.on_request(spending=bool(request.authorization))
            if problem is not None:
                error = StoreUnavailable(problem, retry_after=PER_PROCESS_RETRY_AFTER)
                return responses.unavailable(state, error)
        if self.settings.check_host and not host_allowed(self._origins, request.host):
            refused = Refused(Reason.CHALLENGE_MISMATCH, "Host is not in origin_info", status=421)
            return responses.refuse(state, refused)
        if not state.keys.templates and self.settings.issuers:
            return responses.no_keys(state)
        for signal in self.signals if accept is None else self.signals_for(accept):
            verdict = signal.judge(state)
            if verdict is None:
                continue
            if isinstance(verdict, Refused):
                return responses.refuse(state, verdict)
            return state, verdict
        return responses.challenge(state)

    def _no_secure_cookie(self, request: RequestInfo) -> None:
        """A token over plain http without a session cookie: a Secure cookie set on an
        earlier answer never came back. Said once per process, naming the setting."""
        if request.authorization and names_are_secure(self.cookies, request):
            self._warn_secure = False
            logger.warning(
                "a token arrived over plain http without the session cookie: cookie_secure "
                "is true, so clients send the cookie only over https and the token fails "
                "with challenge_mismatch; serve https, or set cookie_secure = false (or "
                "development = true) while testing over http"
            )


__all__ = ["Policy"]
