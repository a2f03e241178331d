"""The keys in force, as one immutable snapshot: built when the key source changes, never per
request, and swapped whole.

A snapshot holds the :class:`~pat_middleware.core.keyring.KeyRing` tokens verify against,
and what every challenge needs pre-rendered: per challenged issuer its template and the
constant pieces of its ``WWW-Authenticate`` challenge, the empty-context challenges of
``none`` mode and their header, and the pass for each trusted key.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..core.codec import b64url_encode
from ..core.headers import challenge_pieces
from ..core.verify import KeyRing, TrustedKey, match_challenge
from ..core.wire import ChallengeTemplate, TokenChallenge
from ..discovery import KeySource
from ..settings.model import Settings
from .decision import Decision, Outcome, TokenInfo

#: Per challenged issuer: (template, the header text before the base64 challenge, the text
#: between it and the max-age value, the text after that).
Pieces = tuple[tuple[ChallengeTemplate, str, str, str], ...]


def render_challenges(pieces: Pieces, context: bytes, max_age: int) -> str:
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


def token_info(trusted: TrustedKey) -> TokenInfo:
    """What a token under this issuer and key proves."""
    key = trusted.key
    return TokenInfo(
        issuer=trusted.issuer_name, token_type=key.token_type, token_key_id=key.token_key_id.hex()
    )


@dataclass(frozen=True, slots=True)
class KeySnapshot:
    """The keys in force at one moment, and everything derived from them."""

    keys: KeyRing
    #: (challenge template, token-key to advertise) per issuer that has a current key.
    templates: tuple[tuple[ChallengeTemplate, str], ...]
    static: tuple[TokenChallenge, ...]  # none mode: the empty-context challenges
    static_header: str
    version: int  # the key source's version it was built from
    valid_until: float  # a not-before or the end of a removed key's grace
    pieces: Pieces = field(repr=False)
    #: none mode: the matcher over ``static``, built once rather than per request.
    static_match: Callable[[bytes], TokenChallenge | None] = field(repr=False)
    #: What a token proves, per (issuer name, token_key_id): built once per key.
    proofs: Mapping[tuple[str, bytes], TokenInfo] = field(repr=False)
    #: The pass of a token under each key, when no cookie goes with it (``Decision(PASS,
    #: token=proofs[k])``): built once per key.
    passes: Mapping[tuple[str, bytes], Decision] = field(repr=False, default_factory=dict)


class PolicyKeys:
    """The policy's view of the key source: the current snapshot, rebuilt when due."""

    __slots__ = ("_lock", "_settings", "_snapshot", "_templates", "source")

    def __init__(self, settings: Settings, source: KeySource, now: float) -> None:
        self._settings = settings
        self.source = source
        # Per (issuer, token type), built once: keys only decide which issuers appear.
        self._templates: dict[tuple[str, int], ChallengeTemplate] = {}
        self._lock = threading.Lock()
        self._snapshot = self._build(now)

    def current(self, now: float) -> KeySnapshot:
        """The snapshot in force at ``now`` (lock-free unless it must be rebuilt)."""
        snapshot = self._snapshot
        if now < snapshot.valid_until and snapshot.version == self.source.version:
            return snapshot
        with self._lock:
            snapshot = self._snapshot
            if now >= snapshot.valid_until or snapshot.version != self.source.version:
                self.source.ensure_running()  # again in a forked child
                snapshot = self._snapshot = self._build(now)
            return snapshot

    def _template(self, issuer: str, token_type: int) -> ChallengeTemplate:
        template = self._templates.get((issuer, token_type))
        if template is None:
            template = ChallengeTemplate(token_type, issuer, self._settings.origin_info)
            self._templates[(issuer, token_type)] = template
        return template

    def _build(self, now: float) -> KeySnapshot:
        selection = self.source.select(now)
        # One challenge per issuer and accepted token type with a key to advertise.
        types = self._settings.token_types
        live = [
            (i.name, k) for i in selection.issuers for k in i.advertised if k.token_type in types
        ]
        templates = tuple(
            (self._template(name, key.token_type), key.token_key) for name, key in live
        )
        ring = KeyRing(TrustedKey(i.name, key) for i in selection.issuers for key in i.accepted)
        static = tuple(template.challenge(b"") for template, _ in templates)
        quoted = self._settings.quoted_values
        pieces = tuple(
            (template, *challenge_pieces(token_key, quoted=quoted))
            for template, token_key in templates
        )
        proofs = {(t.issuer_name, t.key.token_key_id): token_info(t) for t in ring}
        return KeySnapshot(
            keys=ring,
            templates=templates,
            static=static,
            static_header=render_challenges(pieces, b"", self._settings.max_age),
            pieces=pieces,
            version=selection.version,
            valid_until=selection.valid_until,
            static_match=functools.partial(match_challenge, challenges=static),
            proofs=proofs,
            passes={k: Decision(Outcome.PASS, token=info) for k, info in proofs.items()},
        )


__all__ = ["KeySnapshot", "Pieces", "PolicyKeys", "render_challenges", "token_info"]
