"""Settings: a TOML file or a mapping in, a validated frozen :class:`Settings` out.

The same keys work everywhere: a TOML file (path given or ``PAT_SETTINGS``), Django's
``PAT_MIDDLEWARE`` dict, and Flask config as ``PAT_<KEY>`` (upper case). Every problem raises
:class:`ConfigurationError` naming the setting, at start-up.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..core.wire import TokenChallenge
from ..errors import ConfigurationError, DecodeError
from ..tokens.registry import default_registry
from .checks import failer
from .issuers import ISSUER_KEYS, IssuerEntries
from .model import (
    ContextMode,
    CookieOptions,
    DiscoveryOptions,
    IssuerConfig,
    Settings,
    field_default,
)
from .pst import PST_SETTINGS_KEYS, parse_pst_settings
from .rules import PathRule, protected_methods
from .suggest import close_to
from .suggest import unknown as unknown_setting

logger = logging.getLogger("pat_middleware")

SETTINGS_ENV = "PAT_SETTINGS"
#: The table of a TOML settings file that holds the settings (else: its top-level keys).
TABLE = "pat_middleware"
MIN_SECRET_LENGTH = 32
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
_SAMESITE = {"lax": "Lax", "strict": "Strict", "none": "None"}
_COOKIE_ATTR = re.compile(r"[\x21-\x3a\x3c-\x7e]+")  # printable ASCII, no space or ';'
_HEADER_VALUE = re.compile(r"[\x20-\x7e]+")


#: Each setting with a default, and the dataclass field it fills: the default is read from
#: the field (settings/model.py), never written here again.
_FIELDS: dict[str, tuple[type[Any], str]] = {
    **{
        key: (Settings, key)
        for key in (
            "origin_info", "check_host", "redemption_context", "max_age", "token_types",
            "protect", "protect_methods", "failure_status", "verified_duration",
            "session_lifetime", "challenge_body", "challenge_content_type", "quoted_values",
            "replay_store", "replay_ttl", "allow_per_process_replay",
            "store_unavailable_status", "max_authorization_length", "development",
        )
    },
    "cookie_name": (CookieOptions, "session_name"),
    "verified_cookie_name": (CookieOptions, "verified_name"),
    "cookie_secure": (CookieOptions, "secure"),
    "cookie_samesite": (CookieOptions, "samesite"),
    "cookie_domain": (CookieOptions, "domain"),
    "cookie_path": (CookieOptions, "path"),
    "directory_refresh_min": (DiscoveryOptions, "refresh_min"),
    "directory_refresh_max": (DiscoveryOptions, "refresh_max"),
    "directory_unknown_key_refresh": (DiscoveryOptions, "unknown_key_refresh"),
    "directory_timeout": (DiscoveryOptions, "timeout"),
    "directory_require_keys": (DiscoveryOptions, "require_keys"),
    "directory_key_grace": (DiscoveryOptions, "key_grace"),
}  # fmt: skip
#: The default of every setting that has one, by setting name.
DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {key: field_default(cls, name) for key, (cls, name) in _FIELDS.items()}
)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read a TOML settings file: ``path``, else ``$PAT_SETTINGS``."""
    chosen = path if path is not None else os.environ.get(SETTINGS_ENV)
    if not chosen:
        raise ConfigurationError(SETTINGS_ENV, "no settings file given and PAT_SETTINGS is not set")
    section, file = read_settings_file(chosen)
    return Settings.from_mapping(section, base_dir=file.parent, source=str(file))


def read_settings_file(
    path: str | os.PathLike[str], *, setting: str = SETTINGS_ENV
) -> tuple[Mapping[str, Any], Path]:
    """The settings a TOML file holds (see :func:`settings_section`) and the file's absolute
    path, which relative paths inside it are taken from. A file that cannot be read or is
    not TOML raises :class:`ConfigurationError` naming ``setting`` and the absolute path."""
    file = absolute(Path(path))
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigurationError(setting, f"cannot read {file}: {e.strerror}") from e
    except (UnicodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigurationError(setting, f"{file} is not valid TOML: {e}") from e
    return settings_section(data, source=str(file)), file


def settings_section(data: Mapping[str, Any], *, source: str = "") -> Mapping[str, Any]:
    """The settings of a parsed TOML file: its ``[pat_middleware]`` table, or its top-level
    keys when it has no such table.

    With the table, nothing else may be in the file: TOML puts a key written above the
    table's header at the top level and an ``[[issuers]]`` written below it there too, so
    either would be silently ignored (a ``protect`` list above the header would leave its
    routes open). Such a file is refused, naming the keys."""
    where = f" (in {source})" if source else ""
    for key, value in data.items():
        if key != TABLE and isinstance(value, Mapping) and close_to(key, [TABLE]):
            raise ConfigurationError(key, f"unknown table; did you mean [{TABLE}]?{where}")
    if TABLE not in data:
        return data
    section = data[TABLE]
    if not isinstance(section, Mapping):
        raise ConfigurationError(TABLE, f"must be a table{where}")
    outside = [key for key in data if key != TABLE]
    if not outside:
        return section
    advice = (
        f"settings are read from the [{TABLE}] table alone, and a key written above its "
        "header belongs to no table: move it below the header"
    )
    for key in ("issuers", "pst_issuers"):
        if key in outside:
            advice += f"; write each entry of {key} as [[{TABLE}.{key}]]"
    raise ConfigurationError(
        outside[0],
        f"outside the [{TABLE}] table, so it would be ignored (outside it: "
        f"{', '.join(outside)}); {advice}{where}",
    )


def _why(error: OSError | UnicodeError) -> str:
    """Why a file could not be read, without the path again (the message names it)."""
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    return f"not UTF-8 text ({error})"


def absolute(path: Path) -> Path:
    """``path`` made absolute against the working directory, its ``.`` and ``..`` segments
    resolved but not its symbolic links: the path a file is read from, as errors show it."""
    return Path(os.path.abspath(path))


#: Every setting name: those with a default, those without one, and the PST ones.
KNOWN_KEYS = (
    frozenset(DEFAULTS)
    | {"issuers", "secret", "secret_env", "secret_file", "challenge_body_file"}
    | PST_SETTINGS_KEYS
)


def build_settings(data: Mapping[str, Any], *, base_dir: Path, source: str = "") -> Settings:
    """Validated :class:`Settings` from a mapping of settings keys (see
    :meth:`Settings.from_mapping`); every problem raises :class:`ConfigurationError`."""
    return _Builder(data, base_dir, source).build()


class _Builder:
    def __init__(self, data: Mapping[str, Any], base_dir: Path, source: str) -> None:
        self.data = data
        self.base_dir = base_dir
        self.source = source
        self.fail = failer(source)

    # -- typed getters: the default of each comes from DEFAULTS ----------------------------
    def get(self, key: str) -> Any:
        return self.data.get(key, DEFAULTS.get(key))

    def boolean(self, key: str) -> bool:
        value = self.get(key)
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {value!r}")
        return value

    def integer(self, key: str, *, low: int, high: int) -> int:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(key, f"expected an integer from {low} to {high}, got {value!r}")
        return value

    def string(self, key: str) -> str | None:
        value = self.get(key)
        if value is not None and not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {type(value).__name__}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.get(key)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple | frozenset) or not all(
            isinstance(v, str) for v in value
        ):
            raise self.fail(key, "expected a list of strings")
        return tuple(value)

    def path(self, value: str) -> Path:
        """A path from the settings, relative ones taken from ``base_dir``: absolute, as
        errors name it."""
        return absolute(self.base_dir / value)

    # -- pieces ----------------------------------------------------------------------------
    def build(self) -> Settings:
        unknown = sorted(set(self.data) - KNOWN_KEYS)
        if unknown:
            raise self.fail(unknown[0], unknown_setting(unknown[0], KNOWN_KEYS))
        development = self.boolean("development")
        max_age = self.integer("max_age", low=1, high=86400)
        session_lifetime = self.integer("session_lifetime", low=60, high=400 * 86400)
        if session_lifetime < 2 * max_age:
            raise self.fail("session_lifetime", "must be at least twice max_age")
        mode_text = self.string("redemption_context") or ""
        try:
            mode = ContextMode(mode_text)
        except ValueError as e:
            allowed = ", ".join(m.value for m in ContextMode)
            raise self.fail("redemption_context", f"expected one of {allowed}") from e
        token_types = self.token_types()
        origin_info = tuple(o.lower() for o in self.strings("origin_info"))
        try:
            TokenChallenge(min(token_types), "issuer.invalid", b"", origin_info)
        except DecodeError as e:
            raise self.fail("origin_info", str(e)) from e
        pst = parse_pst_settings(
            self.data,
            origin_info=origin_info,
            base_dir=self.base_dir,
            development=development,
            source=self.source,
        )
        raw_issuers = self.data.get("issuers")
        if raw_issuers is None and pst.issuers:
            issuers: tuple[IssuerConfig, ...] = ()  # Private State Token records only
        else:
            issuers = IssuerEntries(self.fail, self.base_dir).read(
                raw_issuers,
                origin_info=origin_info,
                development=development,
                token_types=token_types,
            )
        check_host = self.boolean("check_host")
        if check_host and not origin_info:
            raise self.fail("check_host", "needs origin_info to list the accepted hosts")
        methods = protected_methods(self.strings("protect_methods"))
        bad = sorted(methods - _METHODS)
        if bad:
            raise self.fail("protect_methods", f"unknown HTTP method {bad[0]!r}")
        try:
            protect = tuple(PathRule.parse(p, "protect") for p in self.strings("protect"))
        except ConfigurationError as e:
            raise self.fail(e.setting, e.message) from None  # with the file's name
        replay_store, allow_per_process = self.replay_store(mode)
        return Settings(
            issuers=issuers,
            secret=self.secret(development),
            origin_info=origin_info,
            check_host=check_host,
            redemption_context=mode,
            max_age=max_age,
            token_types=token_types,
            protect=protect,
            protect_methods=methods,
            failure_status=self.integer("failure_status", low=400, high=499),
            verified_duration=self.integer("verified_duration", low=0, high=30 * 86400),
            session_lifetime=session_lifetime,
            cookies=self.cookies(),
            challenge_body=self.challenge_body(),
            challenge_content_type=self.header_safe("challenge_content_type", _HEADER_VALUE)
            or DEFAULTS["challenge_content_type"],
            quoted_values=self.boolean("quoted_values"),
            replay_store=replay_store,
            replay_ttl=self.integer("replay_ttl", low=60, high=366 * 86400),
            allow_per_process_replay=allow_per_process,
            store_unavailable_status=self.store_unavailable_status(),
            max_authorization_length=self.integer("max_authorization_length", low=600, high=16384),
            development=development,
            discovery=self.discovery(),
            pst=pst,
        )

    def token_types(self) -> frozenset[int]:
        """The accepted token types: registered ones, listed explicitly (a token never
        chooses what is accepted)."""
        value = self.get("token_types")
        registry = default_registry()
        if (
            not isinstance(value, list | tuple | frozenset)
            or not value
            or any(isinstance(t, bool) or not isinstance(t, int) for t in value)
        ):
            raise self.fail(
                "token_types",
                f"expected a non-empty list of token types; registered: {registry.describe()}",
            )
        for token_type in value:
            if token_type not in registry:
                raise self.fail(
                    "token_types",
                    f"token type {token_type} is not registered; registered: {registry.describe()}",
                )
        return frozenset(value)

    def replay_store(self, mode: ContextMode) -> tuple[str, bool]:
        replay_store = self.string("replay_store") or DEFAULTS["replay_store"]
        from ..stores import check_store_url

        scheme = check_store_url(replay_store)  # validate the URL now, at start-up
        allow_per_process = self.boolean("allow_per_process_replay")
        if mode is ContextMode.NONE and scheme == "memory" and not allow_per_process:
            raise self.fail(
                "replay_store",
                'memory:// with redemption_context = "none": nothing binds a challenge to '
                "this process, so after a restart (or in another worker) every token spent "
                "within replay_ttl is accepted again; use a shared store (redis://...) or "
                "set allow_per_process_replay = true",
            )
        return replay_store, allow_per_process

    def cookies(self) -> CookieOptions:
        samesite_text = self.string("cookie_samesite") or DEFAULTS["cookie_samesite"]
        samesite = _SAMESITE.get(samesite_text.lower())
        if samesite is None:
            raise self.fail("cookie_samesite", "expected Lax, Strict or None")
        secure = self.boolean("cookie_secure")
        if samesite == "None" and not secure:
            raise self.fail("cookie_samesite", "SameSite=None requires cookie_secure = true")
        cookies = CookieOptions(
            session_name=self.cookie_name("cookie_name"),
            verified_name=self.cookie_name("verified_cookie_name"),
            secure=secure,
            samesite=samesite,
            domain=self.header_safe("cookie_domain", _COOKIE_ATTR),
            path=self.header_safe("cookie_path", _COOKIE_ATTR) or DEFAULTS["cookie_path"],
        )
        if cookies.session_name == cookies.verified_name:
            raise self.fail("verified_cookie_name", "must differ from cookie_name")
        return cookies

    def discovery(self) -> DiscoveryOptions:
        refresh_min = self.integer("directory_refresh_min", low=1, high=86400)
        refresh_max = self.integer("directory_refresh_max", low=1, high=30 * 86400)
        if refresh_max < refresh_min:
            raise self.fail("directory_refresh_max", "must not be less than directory_refresh_min")
        return DiscoveryOptions(
            refresh_min=refresh_min,
            refresh_max=refresh_max,
            unknown_key_refresh=self.integer("directory_unknown_key_refresh", low=1, high=86400),
            timeout=self.integer("directory_timeout", low=1, high=60),
            require_keys=self.boolean("directory_require_keys"),
            key_grace=self.integer("directory_key_grace", low=0, high=30 * 86400),
        )

    def store_unavailable_status(self) -> int:
        """429 or a 5xx: the answer while the replay store cannot record a token."""
        value = self.get("store_unavailable_status")
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not (value == 429 or 500 <= value <= 599)
        ):
            raise self.fail(
                "store_unavailable_status",
                f"expected 429 or an integer from 500 to 599, got {value!r}",
            )
        return value

    def header_safe(self, key: str, pattern: re.Pattern[str]) -> str | None:
        """A string that goes into a response header: printable ASCII, nothing that splits."""
        value = self.string(key)
        if value is not None and not pattern.fullmatch(value):
            raise self.fail(key, "must be printable ASCII without ';', CR or LF")
        return value

    def cookie_name(self, key: str) -> str:
        name = self.string(key) or DEFAULTS[key]
        if not re.fullmatch(r"[A-Za-z0-9_\-.]{1,64}", name):
            raise self.fail(key, "cookie names are 1-64 letters, digits, '_', '-' or '.'")
        return name

    def secret(self, development: bool) -> bytes:
        sources = [k for k in ("secret", "secret_env", "secret_file") if k in self.data]
        if len(sources) > 1:
            raise self.fail(sources[1], "give only one of secret, secret_env, secret_file")
        text: str | None = None
        key = sources[0] if sources else "secret"
        if key == "secret":
            text = self.string("secret")
        elif key == "secret_env":
            var = self.string("secret_env") or ""
            text = os.environ.get(var)
            if text is None:
                raise self.fail("secret_env", f"environment variable {var!r} is not set")
        else:
            path = self.path(self.string("secret_file") or "")
            try:
                text = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeError) as e:
                raise self.fail("secret_file", f"cannot read {path}: {_why(e)}") from e
        if text is None:
            if not development:
                raise self.fail(
                    "secret",
                    "a secret of at least 32 characters is required (signs session cookies "
                    "and derives redemption contexts); set development = true to use a "
                    "random per-process secret while developing",
                )
            logger.warning(
                "development mode: using a random per-process secret; sessions will not "
                "survive a restart or be shared between workers"
            )
            return secrets.token_bytes(32)
        if len(text) < MIN_SECRET_LENGTH:
            raise self.fail(key, f"must be at least {MIN_SECRET_LENGTH} characters")
        return text.encode("utf-8")

    def challenge_body(self) -> str:
        if "challenge_body" in self.data and "challenge_body_file" in self.data:
            raise self.fail("challenge_body_file", "give challenge_body or the file, not both")
        file = self.string("challenge_body_file")
        if file is not None:
            path = self.path(file)
            try:
                return path.read_text(encoding="utf-8")
            except (OSError, UnicodeError) as e:
                raise self.fail("challenge_body_file", f"cannot read {path}: {_why(e)}") from e
        return self.string("challenge_body") or ""


__all__ = [
    "DEFAULTS",
    "ISSUER_KEYS",
    "KNOWN_KEYS",
    "SETTINGS_ENV",
    "TABLE",
    "absolute",
    "build_settings",
    "load_settings",
    "read_settings_file",
    "settings_section",
]
