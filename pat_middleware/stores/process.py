"""Which process this is, and what can be told about the processes serving beside it.

A per-process replay store (``memory://``) is only sound when one process accepts the
tokens. Nothing tells a process reliably how many siblings serve the same origin; these are
the signals that can be read cheaply and without false alarms in the usual servers:

* a :class:`Mark` replaced in every forked child (``os.register_at_fork``), so "this object
  was made in another process" is one identity comparison; :func:`checked` also compares
  the pid, for forks made outside ``os.fork`` (which skip the hooks);
* ``multiprocessing.parent_process()``: set in processes started by multiprocessing, as
  uvicorn and hypercorn start their ``--workers`` (and uvicorn its ``--reload`` child);
* a gunicorn worker or arbiter on the call stack, whose configuration says how many workers
  run (every worker class: sync, gthread, UvicornWorker...).
"""

from __future__ import annotations

import os
import sys
from types import FrameType


class Mark:
    """One process: a new mark is made in each forked child."""

    __slots__ = ("pid",)

    def __init__(self) -> None:
        self.pid = os.getpid()

    def __repr__(self) -> str:
        return f"Mark(pid={self.pid})"


_current = Mark()


def current() -> Mark:
    """This process's mark, as the fork hook last set it (no system call)."""
    return _current


def checked() -> Mark:
    """This process's mark, made anew when the pid says a fork skipped the hooks."""
    global _current
    if _current.pid != os.getpid():
        _current = Mark()
    return _current


def _after_fork_in_child() -> None:
    global _current
    _current = Mark()


os.register_at_fork(after_in_child=_after_fork_in_child)


def started_by_multiprocessing() -> bool:
    """True in a process multiprocessing started (spawn, forkserver or fork)."""
    # Such a process has imported multiprocessing already; no need to import it here.
    module = sys.modules.get("multiprocessing")
    return module is not None and module.parent_process() is not None


def gunicorn_workers() -> int | None:
    """The worker count of the gunicorn worker (or arbiter) found on the call stack, or
    None when there is none: the stack of a worker holds its ``init_process`` and ``run``
    frames below the app's, whichever worker class runs it. Walks the stack: call it once
    per process, not per request."""
    modules = (sys.modules.get("gunicorn.workers.base"), sys.modules.get("gunicorn.arbiter"))
    kinds = tuple(
        getattr(module, name)
        for module, name in zip(modules, ("Worker", "Arbiter"), strict=True)
        if module is not None and hasattr(module, name)
    )
    if not kinds:
        return None
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_argcount and code.co_varnames[0] == "self":
            owner = frame.f_locals.get("self")
            if isinstance(owner, kinds):
                workers = getattr(getattr(owner, "cfg", None), "workers", None)
                return workers if isinstance(workers, int) else None
        frame = frame.f_back
    return None


__all__ = ["Mark", "checked", "current", "gunicorn_workers", "started_by_multiprocessing"]
