"""One process or several: a per-process replay store (``memory://``) is sound only while one
process accepts the tokens.

:class:`ProcessGuard` looks for the signs that other processes serve beside this one (see
:mod:`pat_middleware.stores.process`) and says why this process must then refuse tokens,
unless the operator opted in with ``allow_per_process_replay``. It also follows the store's
epoch: a forked copy of a memory store gets an epoch of its own, and contexts are derived
under it, so a challenge is redeemable only where its spend is recorded.
"""

from __future__ import annotations

from collections.abc import Callable

from ..settings.model import Settings
from ..stores import PerProcessStore, ReplayStore
from ..stores import process as _process

#: Retry-After of the answer while a per-process store serves beside other processes.
PER_PROCESS_RETRY_AFTER = 60
_SPAWNED = (
    "this process was started by multiprocessing, as uvicorn and hypercorn start "
    "--workers N (and uvicorn its --reload child)"
)
_FORKED = "this process was forked from the one that built it (gunicorn --preload, prefork)"
_GUNICORN = "gunicorn runs {} workers"
_WSGI_MULTIPROCESS = "the WSGI server says several processes serve it (wsgi.multiprocess)"
NONE_MODE_PER_PROCESS = (
    'a per-process store (memory://) with redemption_context = "none": nothing binds a '
    "challenge to this process, so after a restart (or in another worker) every token "
    "spent within replay_ttl is accepted again; use a shared store (redis://...) or set "
    "allow_per_process_replay = true"
)


def store_epoch(store: ReplayStore) -> bytes:
    """The epoch of a per-process store (new per store and per process), else empty."""
    return store.epoch if isinstance(store, PerProcessStore) else b""


class ProcessGuard:
    """Whether this process may accept tokens with its replay store, looked at once per
    process; ``on_epoch`` hears of a new store epoch (after a fork)."""

    __slots__ = (
        "_adopted",
        "_born",
        "_epoch",
        "_on_epoch",
        "_several",
        "_store",
        "_store_name",
        "active",
        "per_process",
        "server_noted",
    )

    def __init__(
        self,
        settings: Settings,
        store: ReplayStore,
        store_name: str,
        on_epoch: Callable[[bytes], None],
    ) -> None:
        self._store = store
        self._store_name = store_name
        self._on_epoch = on_epoch
        self.per_process = isinstance(store, PerProcessStore)
        #: The guard refuses tokens when other processes are seen (no opt-in).
        self.active = self.per_process and not settings.allow_per_process_replay
        self._epoch = store_epoch(store)
        self._born = _process.current()
        self._adopted: _process.Mark | None = None  # the process last looked at
        self._several: str | None = None  # why this process may be one of several
        #: False while the adapters should tell :meth:`note_server` what the server says.
        self.server_noted = not self.active
        if self.active:
            if isinstance(store, PerProcessStore) and store.forked:
                self._several = _FORKED
            elif _process.started_by_multiprocessing():
                self._several = _SPAWNED

    @property
    def epoch(self) -> bytes:
        return self._epoch

    def check_process(self) -> str | None:
        """Why this process must not accept tokens (one line naming ``replay_store``), or
        None. Looks at the process once; see :meth:`Policy.check_process`."""
        if not self.active:
            return None
        mark = _process.current()
        if mark is not self._adopted:
            self._adopt(mark)
        return self.problem()

    def on_request(self, spending: bool) -> str | None:
        """The per-request look: cheap unless the process changed. ``spending`` reads the
        pid too, for forks made outside ``os.fork`` (which skip the hooks)."""
        mark = _process.checked() if spending else _process.current()
        if mark is not self._adopted:
            self._adopt(mark)
        return self.problem() if self._several is not None else None

    def note_server(self, *, multiprocess: bool) -> None:
        """What the server says of itself (WSGI's ``wsgi.multiprocess``), once."""
        if multiprocess and self.active and self._several is None:
            self._several = _WSGI_MULTIPROCESS
        self.server_noted = True

    def _adopt(self, mark: _process.Mark) -> None:
        """The first look at this process (its first protected request, or start-up): a
        forked copy of the store has an epoch of its own, so contexts follow it."""
        epoch = store_epoch(self._store)
        if epoch != self._epoch:
            self._epoch = epoch
            self._on_epoch(epoch)
        if self.active and self._several is None:
            if mark is not self._born:
                self._several = _FORKED
            else:
                workers = _process.gunicorn_workers()
                if workers is not None and workers > 1:
                    self._several = _GUNICORN.format(workers)
        self._adopted = mark

    def problem(self) -> str | None:
        why = self._several
        if why is None:
            return None
        return (
            f"replay_store: {self._store_name} keeps spent tokens in this process only, but "
            f"{why}: each process would accept a token once; use a shared store "
            "(redis://...) or set allow_per_process_replay = true"
        )


__all__ = ["NONE_MODE_PER_PROCESS", "PER_PROCESS_RETRY_AFTER", "ProcessGuard", "store_epoch"]
