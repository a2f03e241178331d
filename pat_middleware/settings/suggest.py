"""Messages for names nobody knows: a settings key, an issuer entry's key, a table. A typo
gets the name it is most likely a typo of (difflib's close match), as Flask's ``PAT_*``
config keys do; anything else gets the list of known names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: How alike (difflib's ratio) a name must be to a known one to be called its typo.
CUTOFF = 0.75


def close_to(name: str, known: Iterable[str], *, cutoff: float = CUTOFF) -> str | None:
    """The known name ``name`` is most likely a typo of, or None."""
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=cutoff)
    return close[0] if close else None


def unknown(name: str, known: Iterable[str], what: str = "setting") -> str:
    """``unknown setting; did you mean max_age?``, or the known names when none is close."""
    names = sorted(known)
    meant = close_to(name, names)
    if meant is not None:
        return f"unknown {what}; did you mean {meant}?"
    return f"unknown {what}; known ones are: {', '.join(names)}"


__all__ = ["CUTOFF", "close_to", "unknown"]
