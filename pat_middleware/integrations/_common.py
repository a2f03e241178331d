"""What every integration shares, so each framework module is only its framework's glue:
building the policy from the adapter's options, the "already passed" check, the method
filter of decorators, and the mapping of a settings-file error to the adapter's own name.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import ConfigurationError
from ..policy import Decision, MetricsHook, Outcome, Policy, TokenInfo
from ..settings import SETTINGS_ENV, Settings, load_settings, protected_methods


def resolve_policy(
    policy: Policy | None = None,
    settings: Settings | None = None,
    settings_file: str | Path | None = None,
    metrics: MetricsHook | None = None,
) -> Policy:
    """An adapter's constructor options: a policy, settings, or a settings file (``None``
    reads ``$PAT_SETTINGS``), in that order of precedence, and a metrics hook for a policy
    built here (a ready policy brings its own). Configuration errors raise here, at start-up.
    """
    if policy is not None:
        if metrics is not None:
            raise ConfigurationError("metrics", "give it to the Policy passed as policy=")
        return policy
    if settings is None:
        settings = load_settings(settings_file)
    return Policy(settings, metrics=metrics)


def load_settings_file(path: str | Path, setting: str) -> Settings:
    """:func:`~pat_middleware.settings.load_settings`, with a problem reading the file itself
    named after ``setting`` (the adapter's own option, e.g. ``PAT_SETTINGS_FILE``)."""
    try:
        return load_settings(path)
    except ConfigurationError as e:
        if e.setting == SETTINGS_ENV:
            raise ConfigurationError(setting, e.message) from e
        raise


def passed(token: object) -> Decision | None:
    """The pass of a request an outer layer already let through (its :class:`TokenInfo`),
    so it is not judged again (that would spend its token twice); else None."""
    if isinstance(token, TokenInfo):
        return Decision(Outcome.SESSION if token.via_session else Outcome.PASS, token=token)
    return None


class MethodFilter:
    """A decorator's ``methods=``: protect only these (``GET`` implies ``HEAD``); None: all."""

    __slots__ = ("_methods",)

    def __init__(self, methods: Iterable[str] | None) -> None:
        self._methods = protected_methods(methods) if methods is not None else None

    def exempt(self, method: str | None) -> bool:
        return self._methods is not None and (method or "GET").upper() not in self._methods


__all__ = ["MethodFilter", "load_settings_file", "passed", "resolve_policy"]
