"""Protected paths: ``protect`` patterns, parsed once and compiled into one matcher.

A pattern is matched against every form of the request's path (see
:mod:`pat_middleware.core.paths`): the rule does not have to guess how a framework spells it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..core.paths import canonical_path, path_forms, percent_decode
from ..errors import ConfigurationError, DecodeError

_GLOB_CHARS = re.compile(r"[*?\[]")
#: The prefixes a pattern may name its kind with (lower case): ``exact:/a``.
KINDS = ("exact", "prefix", "glob")
#: Something written as a prefix: a URL-scheme-like word and a colon, before any '/'.
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def _unknown_prefix(text: str, prefix: str) -> str:
    known = ", ".join(kind + ":" for kind in KINDS)
    if prefix[:-1].lower() in KINDS:
        written = prefix.lower() + text[len(prefix) :]
        return f"path pattern {text!r}: prefixes are lower case: write {written!r}"
    return (
        f"path pattern {text!r}: unknown prefix {prefix!r}; known prefixes: {known} "
        "(regular expressions are not supported; a glob or a prefix usually does)"
    )


def _unclosed_set(pattern: str) -> int | None:
    """Where a ``[`` opens a set that no ``]`` closes, read as :mod:`fnmatch` reads a glob
    (a ``]`` right after ``[`` or ``[!`` belongs to the set), or None. fnmatch matches such
    a ``[`` literally, which a pattern's author rarely means."""
    i, n = 0, len(pattern)
    while i < n:
        if pattern[i] == "[":
            j = i + 1
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                return i
            i = j
        i += 1
    return None


def protected_methods(methods: Iterable[str]) -> frozenset[str]:
    """Upper-cased methods, with HEAD wherever GET is: frameworks answer HEAD with the GET
    handler, so protecting GET alone would leave HEAD open. Every adapter uses this."""
    upper = frozenset(m.upper() for m in methods)
    return upper | {"HEAD"} if "GET" in upper else upper


@dataclass(frozen=True, slots=True)
class PathRule:
    """A protected-path pattern: ``exact``, ``prefix`` or ``glob``."""

    kind: str
    pattern: str

    @classmethod
    def parse(cls, text: str, setting: str) -> PathRule:
        for kind in KINDS:
            if text.startswith(kind + ":"):
                pattern = text[len(kind) + 1 :]
                break
        else:
            prefix = _PREFIX.match(text)
            if prefix is not None:
                raise ConfigurationError(setting, _unknown_prefix(text, prefix.group()))
            if text.endswith("*") and not _GLOB_CHARS.search(text[:-1]):
                kind, pattern = "prefix", text[:-1]
            elif _GLOB_CHARS.search(text):
                kind, pattern = "glob", text
            else:
                kind, pattern = "exact", text
        if not pattern.startswith("/"):
            raise ConfigurationError(setting, f"path pattern {text!r} must start with '/'")
        if kind == "glob":
            unclosed = _unclosed_set(pattern)
            if unclosed is not None:
                raise ConfigurationError(
                    setting,
                    f"path pattern {text!r}: {pattern[unclosed:]!r} opens a character set that "
                    "no ']' closes, so the glob would match the '[' itself; close the set, or "
                    "write [[] for a literal '[' (or use exact: or prefix:, where '[' is "
                    "always itself)",
                )
        if kind != "glob" and "%" in pattern:
            try:  # rules are matched against decoded forms (see paths.py)
                pattern = percent_decode(pattern)
            except DecodeError as e:
                raise ConfigurationError(setting, f"path pattern {text!r}: {e}") from e
        if canonical_path(pattern) != pattern:
            raise ConfigurationError(
                setting,
                f"path pattern {text!r} has an empty, '.' or '..' segment; write it as "
                f"{canonical_path(pattern)!r} (requests are matched in that form too)",
            )
        return cls(kind, pattern)

    def matches(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.pattern
        if self.kind == "prefix":
            return path.startswith(self.pattern)
        return fnmatch.fnmatchcase(path, self.pattern)


def compile_protection(
    rules: tuple[PathRule, ...], methods: frozenset[str]
) -> Callable[[str, tuple[str, ...]], bool]:
    """The protect rules as one function over the forms of the request's paths: exact paths
    in a set, prefixes in one ``startswith`` call, globs as compiled patterns (what
    :meth:`PathRule.matches` says, rule by rule, for any form)."""
    # A method found as given is its own upper case only when every method is upper case
    # (as from_mapping makes them); otherwise only the upper-cased lookup counts.
    direct = methods if all(m == m.upper() for m in methods) else frozenset()
    exact = frozenset(r.pattern for r in rules if r.kind == "exact")
    prefixes = tuple(r.pattern for r in rules if r.kind == "prefix")
    globs = tuple(
        re.compile(fnmatch.translate(r.pattern)).match
        for r in rules
        if r.kind not in ("exact", "prefix")  # PathRule.matches: anything else is a glob
    )

    if not rules:

        def protects_nothing(method: str, paths: tuple[str, ...]) -> bool:
            return False

        return protects_nothing

    def protects(method: str, paths: tuple[str, ...]) -> bool:
        if methods and method not in direct and method.upper() not in methods:
            return False
        for path in path_forms(paths):
            if path in exact or path.startswith(prefixes):
                return True
            for match in globs:
                if match(path) is not None:
                    return True
        return False

    return protects


__all__ = ["KINDS", "PathRule", "compile_protection", "protected_methods"]
