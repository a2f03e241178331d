"""The validated configuration: frozen dataclasses, each default written once, here.

:mod:`pat_middleware.settings` reads TOML files and mappings into these, taking every
default from the fields below.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.headers import DEFAULT_MAX_AUTHORIZATION_LENGTH
from ..core.keys import TokenKey
from ..core.wire import TOKEN_TYPE_BLIND_RSA
from ..errors import ConfigurationError
from .checks import failer, fetchable_url
from .pst import PSTSettings
from .rules import PathRule, compile_protection


class ContextMode(enum.StrEnum):
    """Where a challenge's redemption_context comes from."""

    PER_SESSION = "per-session"
    PER_REQUEST = "per-request"
    NONE = "none"


DEFAULT_CHALLENGE_BODY = (
    "<!doctype html><title>Verification required</title>"
    "<h1>Verification required</h1>"
    "<p>This page needs a Private Access Token. Your browser did not provide one; "
    "please try another browser or device.</p>"
)
#: The token types accepted unless ``token_types`` says otherwise: Blind RSA, the publicly
#: verifiable type every deployed client uses.
DEFAULT_TOKEN_TYPES = frozenset({TOKEN_TYPE_BLIND_RSA})


@dataclass(frozen=True, slots=True)
class CookieOptions:
    """Attributes of the cookies the middleware sets."""

    session_name: str = "pat_session"
    verified_name: str = "pat_verified"
    secure: bool = True
    samesite: str = "Lax"
    domain: str | None = None
    path: str = "/"

    @property
    def prefix(self) -> str:
        """``__Host-`` when the cookies qualify for it (Secure, no Domain, Path=/): browsers
        then refuse the name from a sibling subdomain or over http (RFC 6265bis §4.1.3.2),
        so nobody can plant a session cookie for this host."""
        return "__Host-" if self.secure and self.domain is None and self.path == "/" else ""

    @property
    def session_cookie(self) -> str:
        """The session cookie's name as it travels."""
        return self.prefix + self.session_name

    @property
    def verified_cookie(self) -> str:
        """The verified-session cookie's name as it travels."""
        return self.prefix + self.verified_name

    @property
    def pending_cookie(self) -> str:
        """Per-request mode: the outstanding challenges' cookie name as it travels."""
        return self.prefix + self.session_name + "_c"

    def render(self, name: str, value: str, max_age: int) -> str:
        """A Set-Cookie value: always HttpOnly."""
        parts = [f"{name}={value}", f"Path={self.path}", f"Max-Age={max_age}", "HttpOnly"]
        parts.append(f"SameSite={self.samesite}")
        if self.secure:
            parts.append("Secure")
        if self.domain:
            parts.append(f"Domain={self.domain}")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class IssuerConfig:
    """One trusted issuer: its name as challenges carry it, its static keys (of any token
    type: public keys, or the issuer's private key for a privately verifiable type), and
    where to fetch its directory (URLs tried in order, the next one only after a 404)."""

    name: str
    keys: tuple[TokenKey, ...]
    directory_urls: tuple[str, ...] = ()
    allow_4096: bool = False
    #: The setting that named the directory, for errors (``issuers[0].directory``).
    directory_setting: str = ""
    #: The token types accepted from this issuer (the ``token_types`` setting).
    token_types: frozenset[int] = DEFAULT_TOKEN_TYPES

    def __post_init__(self) -> None:
        # Built by hand (not from settings), a URL the refresher cannot fetch would only
        # show in a background thread's log: refuse it now. Plain http, user information and
        # fragments are the settings' policy (``fetch_url``), not checked here.
        setting = self.directory_setting or "issuers.directory"
        for url in self.directory_urls:
            fetchable_url(url, setting, failer(""))

    @property
    def key(self) -> TokenKey | None:
        """The first static key, or None when keys come only from the directory."""
        return self.keys[0] if self.keys else None


@dataclass(frozen=True, slots=True)
class DiscoveryOptions:
    """How issuer directories are fetched and kept (the ``directory_*`` settings)."""

    refresh_min: int = 60
    refresh_max: int = 3600
    unknown_key_refresh: int = 30
    timeout: float = 5  # seconds (settings take whole ones, 1 to 60)
    require_keys: bool = True
    key_grace: int = 600

    def __post_init__(self) -> None:
        # Built by hand, a zero refresh_min or timeout would spin the refresher thread and
        # a negative one would raise in it: refuse them now, by setting name.
        for setting, value, above in (
            ("directory_refresh_min", self.refresh_min, True),
            ("directory_timeout", self.timeout, True),
            ("directory_unknown_key_refresh", self.unknown_key_refresh, False),
            ("directory_key_grace", self.key_grace, False),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigurationError(setting, f"expected a number, got {value!r}")
            if value < 0 or (above and value == 0):
                raise ConfigurationError(
                    setting, "must be above 0" if above else "must not be negative"
                )
        if not isinstance(self.refresh_max, int | float) or self.refresh_max < self.refresh_min:
            raise ConfigurationError(
                "directory_refresh_max", "must not be less than directory_refresh_min"
            )


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated configuration. Build with :func:`load_settings` or :meth:`from_mapping`."""

    issuers: tuple[IssuerConfig, ...]
    secret: bytes = field(repr=False)
    origin_info: tuple[str, ...] = ()
    check_host: bool = False
    redemption_context: ContextMode = ContextMode.PER_SESSION
    max_age: int = 60
    token_types: frozenset[int] = DEFAULT_TOKEN_TYPES
    protect: tuple[PathRule, ...] = ()
    protect_methods: frozenset[str] = frozenset()
    failure_status: int = 401
    verified_duration: int = 300
    session_lifetime: int = 86400
    cookies: CookieOptions = field(default_factory=CookieOptions)
    challenge_body: str = DEFAULT_CHALLENGE_BODY
    challenge_content_type: str = "text/html; charset=utf-8"
    quoted_values: bool = True
    replay_store: str = "memory://"
    replay_ttl: int = 86400
    #: Accept tokens with a per-process store (memory://) where several processes may serve.
    allow_per_process_replay: bool = False
    store_unavailable_status: int = 503
    max_authorization_length: int = DEFAULT_MAX_AUTHORIZATION_LENGTH
    development: bool = False
    discovery: DiscoveryOptions = field(default_factory=DiscoveryOptions)
    #: Trusted Private State Token issuers and the redeeming origins accepted.
    pst: PSTSettings = field(default_factory=PSTSettings)
    #: ``protect`` and ``protect_methods`` compiled, once per Settings (see protects).
    _protects: Callable[[str, tuple[str, ...]], bool] = field(init=False, repr=False, compare=False)

    def __repr__(self) -> str:
        names = ", ".join(i.name for i in self.issuers)
        return (
            f"Settings(issuers=[{names}], redemption_context={self.redemption_context}, "
            f"max_age={self.max_age}, secret=<hidden>)"
        )

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_protects", compile_protection(self.protect, self.protect_methods)
        )

    def protects(self, method: str, *paths: str) -> bool:
        """True when settings protect this request (decorators protect on their own): the
        method is in ``protect_methods`` (when set) and some :class:`PathRule` matches some
        form of some of ``paths`` (the spellings the adapter sees; see
        :func:`~pat_middleware.core.paths.path_forms`). Raises
        :class:`~pat_middleware.errors.DecodeError` for a path that does not decode, when
        rules are set."""
        return self._protects(method, paths)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, base_dir: Path | None = None, source: str = ""
    ) -> Settings:
        from .loader import build_settings  # builds Settings

        return build_settings(data, base_dir=base_dir or Path.cwd(), source=source)


def field_default(cls: type[Any], name: str) -> Any:
    """The default of a field of one of these dataclasses: how the loader reads each
    setting's default from here instead of writing it again."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    raise LookupError(f"{cls.__name__}.{name} has no default")


__all__ = [
    "DEFAULT_CHALLENGE_BODY",
    "DEFAULT_TOKEN_TYPES",
    "ContextMode",
    "CookieOptions",
    "DiscoveryOptions",
    "IssuerConfig",
    "Settings",
    "field_default",
]
