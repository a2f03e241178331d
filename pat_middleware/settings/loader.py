"""Settings: a TOML file or a mapping in, a validated frozen :class:`Settings` out.

The same keys work everywhere: a TOML file (path given or ``PAT_SETTINGS``), Django's
``PAT_MIDDLEWARE`` dict, and Flask config as ``PAT_<KEY>`` (upper case). Every problem raises
:class:`ConfigurationError` naming the setting, at start-up.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import secrets
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from ..core.directory import DIRECTORY_PATH, LEGACY_DIRECTORY_PATH
from ..core.headers import DEFAULT_MAX_AUTHORIZATION_LENGTH
from ..core.wire import TOKEN_TYPE_BLIND_RSA, TokenChallenge
from ..errors import ConfigurationError, DecodeError
from ..tokens.blind_rsa import IssuerKey
from .model import (
    DEFAULT_CHALLENGE_BODY,
    ContextMode,
    CookieOptions,
    DiscoveryOptions,
    IssuerConfig,
    Settings,
)
from .pst import PST_SETTINGS_KEYS, parse_pst_settings
from .rules import PathRule, protected_methods

logger = logging.getLogger("pat_middleware")

SETTINGS_ENV = "PAT_SETTINGS"
MIN_SECRET_LENGTH = 32
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
_SAMESITE = {"lax": "Lax", "strict": "Strict", "none": "None"}
_COOKIE_ATTR = re.compile(r"[\x21-\x3a\x3c-\x7e]+")  # printable ASCII, no space or ';'
_HEADER_VALUE = re.compile(r"[\x20-\x7e]+")

_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read a TOML settings file: ``path``, else ``$PAT_SETTINGS``."""
    chosen = path if path is not None else os.environ.get(SETTINGS_ENV)
    if not chosen:
        raise ConfigurationError(SETTINGS_ENV, "no settings file given and PAT_SETTINGS is not set")
    file = Path(chosen)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigurationError(SETTINGS_ENV, f"cannot read {file}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigurationError(SETTINGS_ENV, f"{file} is not valid TOML: {e}") from e
    section = data.get("pat_middleware", data)
    if not isinstance(section, Mapping):
        raise ConfigurationError("pat_middleware", "must be a table")
    return Settings.from_mapping(section, base_dir=file.parent, source=str(file))


KNOWN_KEYS = PST_SETTINGS_KEYS | frozenset(
    {
        "issuers", "secret", "secret_env", "secret_file", "origin_info", "check_host",
        "redemption_context", "max_age", "token_types", "protect", "protect_methods",
        "failure_status", "verified_duration", "session_lifetime", "cookie_name",
        "verified_cookie_name", "cookie_secure", "cookie_samesite", "cookie_domain",
        "cookie_path", "challenge_body", "challenge_body_file", "challenge_content_type",
        "quoted_values", "replay_store", "replay_ttl", "allow_per_process_replay",
        "store_unavailable_status",
        "max_authorization_length", "development", "directory_refresh_min",
        "directory_refresh_max", "directory_unknown_key_refresh", "directory_timeout",
        "directory_require_keys", "directory_key_grace",
    }
)  # fmt: skip
ISSUER_KEYS = frozenset(
    {"name", "token_key", "token_keys", "token_key_file", "allow_4096", "directory", "discover"}
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

    def fail(self, setting: str, message: str) -> ConfigurationError:
        where = f" (in {self.source})" if self.source else ""
        return ConfigurationError(setting, message + where)

    # -- typed getters -------------------------------------------------------------------
    def get(self, key: str, default: Any) -> Any:
        return self.data.get(key, default)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {value!r}")
        return value

    def integer(self, key: str, default: int, *, low: int, high: int) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(key, f"expected an integer from {low} to {high}, got {value!r}")
        return value

    def string(self, key: str, default: str | None) -> str | None:
        value = self.get(key, default)
        if value is not None and not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {type(value).__name__}")
        return value

    def strings(self, key: str, default: Sequence[str] = ()) -> tuple[str, ...]:
        value = self.get(key, default)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "expected a list of strings")
        return tuple(value)

    def path(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else self.base_dir / p

    # -- pieces ----------------------------------------------------------------------------
    def build(self) -> Settings:
        unknown = sorted(set(self.data) - KNOWN_KEYS)
        if unknown:
            raise self.fail(unknown[0], f"unknown setting; known ones are: {sorted(KNOWN_KEYS)}")
        development = self.boolean("development", False)
        max_age = self.integer("max_age", 60, low=1, high=86400)
        session_lifetime = self.integer("session_lifetime", 86400, low=60, high=400 * 86400)
        if session_lifetime < 2 * max_age:
            raise self.fail("session_lifetime", "must be at least twice max_age")
        mode_text = self.string("redemption_context", ContextMode.PER_SESSION.value) or ""
        try:
            mode = ContextMode(mode_text)
        except ValueError as e:
            allowed = ", ".join(m.value for m in ContextMode)
            raise self.fail("redemption_context", f"expected one of {allowed}") from e
        failure_status = self.integer("failure_status", 401, low=400, high=499)
        token_types = self.get("token_types", [TOKEN_TYPE_BLIND_RSA])
        if (
            not isinstance(token_types, list | tuple)
            or not token_types
            or any(t != TOKEN_TYPE_BLIND_RSA for t in token_types)
        ):
            raise self.fail(
                "token_types", "only token type 2 (Blind RSA) can be verified by an origin"
            )
        origin_info = tuple(o.lower() for o in self.strings("origin_info"))
        try:
            TokenChallenge(TOKEN_TYPE_BLIND_RSA, "issuer.invalid", b"", origin_info)
        except DecodeError as e:
            raise self.fail("origin_info", str(e)) from e
        pst = parse_pst_settings(
            self.data,
            origin_info=origin_info,
            base_dir=self.base_dir,
            development=development,
            source=self.source,
        )
        issuers = self.issuers(origin_info, development, pst_only=bool(pst.issuers))
        check_host = self.boolean("check_host", False)
        if check_host and not origin_info:
            raise self.fail("check_host", "needs origin_info to list the accepted hosts")
        methods = protected_methods(self.strings("protect_methods"))
        bad = sorted(methods - _METHODS)
        if bad:
            raise self.fail("protect_methods", f"unknown HTTP method {bad[0]!r}")
        protect = tuple(PathRule.parse(p, "protect") for p in self.strings("protect"))
        samesite_text = self.string("cookie_samesite", "Lax") or "Lax"
        samesite = _SAMESITE.get(samesite_text.lower())
        if samesite is None:
            raise self.fail("cookie_samesite", "expected Lax, Strict or None")
        secure = self.boolean("cookie_secure", True)
        if samesite == "None" and not secure:
            raise self.fail("cookie_samesite", "SameSite=None requires cookie_secure = true")
        cookies = CookieOptions(
            session_name=self.cookie_name("cookie_name", "pat_session"),
            verified_name=self.cookie_name("verified_cookie_name", "pat_verified"),
            secure=secure,
            samesite=samesite,
            domain=self.header_safe("cookie_domain", None, _COOKIE_ATTR),
            path=self.header_safe("cookie_path", "/", _COOKIE_ATTR) or "/",
        )
        if cookies.session_name == cookies.verified_name:
            raise self.fail("verified_cookie_name", "must differ from cookie_name")
        replay_store = self.string("replay_store", "memory://") or "memory://"
        from ..stores import check_store_url

        scheme = check_store_url(replay_store)  # validate the URL now, at start-up
        allow_per_process = self.boolean("allow_per_process_replay", False)
        if mode is ContextMode.NONE and scheme == "memory" and not allow_per_process:
            raise self.fail(
                "replay_store",
                'memory:// with redemption_context = "none": nothing binds a challenge to '
                "this process, so after a restart (or in another worker) every token spent "
                "within replay_ttl is accepted again; use a shared store (redis://...) or "
                "set allow_per_process_replay = true",
            )
        return Settings(
            issuers=issuers,
            secret=self.secret(development),
            origin_info=origin_info,
            check_host=check_host,
            redemption_context=mode,
            max_age=max_age,
            token_types=frozenset(token_types),
            protect=protect,
            protect_methods=methods,
            failure_status=failure_status,
            verified_duration=self.integer("verified_duration", 300, low=0, high=30 * 86400),
            session_lifetime=session_lifetime,
            cookies=cookies,
            challenge_body=self.challenge_body(),
            challenge_content_type=self.header_safe(
                "challenge_content_type", "text/html; charset=utf-8", _HEADER_VALUE
            )
            or "text/html; charset=utf-8",
            quoted_values=self.boolean("quoted_values", True),
            replay_store=replay_store,
            replay_ttl=self.integer("replay_ttl", 86400, low=60, high=366 * 86400),
            allow_per_process_replay=allow_per_process,
            store_unavailable_status=self.store_unavailable_status(),
            max_authorization_length=self.integer(
                "max_authorization_length", DEFAULT_MAX_AUTHORIZATION_LENGTH, low=600, high=16384
            ),
            development=development,
            discovery=self.discovery(),
            pst=pst,
        )

    def discovery(self) -> DiscoveryOptions:
        default = DiscoveryOptions()
        refresh_min = self.integer("directory_refresh_min", default.refresh_min, low=1, high=86400)
        refresh_max = self.integer(
            "directory_refresh_max", default.refresh_max, low=1, high=30 * 86400
        )
        if refresh_max < refresh_min:
            raise self.fail("directory_refresh_max", "must not be less than directory_refresh_min")
        return DiscoveryOptions(
            refresh_min=refresh_min,
            refresh_max=refresh_max,
            unknown_key_refresh=self.integer(
                "directory_unknown_key_refresh", default.unknown_key_refresh, low=1, high=86400
            ),
            timeout=self.integer("directory_timeout", int(default.timeout), low=1, high=60),
            require_keys=self.boolean("directory_require_keys", default.require_keys),
            key_grace=self.integer(
                "directory_key_grace", default.key_grace, low=0, high=30 * 86400
            ),
        )

    def store_unavailable_status(self) -> int:
        """429 or a 5xx: the answer while the replay store cannot record a token."""
        value = self.get("store_unavailable_status", 503)
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

    def header_safe(self, key: str, default: str | None, pattern: re.Pattern[str]) -> str | None:
        """A string that goes into a response header: printable ASCII, nothing that splits."""
        value = self.string(key, default)
        if value is not None and not pattern.fullmatch(value):
            raise self.fail(key, "must be printable ASCII without ';', CR or LF")
        return value

    def cookie_name(self, key: str, default: str) -> str:
        name = self.string(key, default) or default
        if not re.fullmatch(r"[A-Za-z0-9_\-.]{1,64}", name):
            raise self.fail(key, "cookie names are 1-64 letters, digits, '_', '-' or '.'")
        return name

    def issuers(
        self, origin_info: tuple[str, ...], development: bool, *, pst_only: bool = False
    ) -> tuple[IssuerConfig, ...]:
        raw = self.get("issuers", None)
        if raw is None and pst_only:
            return ()  # Private State Token records only
        if not isinstance(raw, list | tuple) or not raw:
            raise self.fail(
                "issuers",
                "at least one issuer (name and token_key) is required, or pst_issuers",
            )
        out: list[IssuerConfig] = []
        for i, entry in enumerate(raw):
            where = f"issuers[{i}]"
            if not isinstance(entry, Mapping):
                raise self.fail(where, "expected a table with name and token_key")
            unknown = sorted(set(entry) - ISSUER_KEYS)
            if unknown:
                raise self.fail(f"{where}.{unknown[0]}", "unknown issuer setting")
            name = entry.get("name")
            if not isinstance(name, str):
                raise self.fail(f"{where}.name", "expected the issuer name (host[:port])")
            try:
                TokenChallenge(TOKEN_TYPE_BLIND_RSA, name, b"", origin_info)
            except DecodeError as e:
                raise self.fail(f"{where}.name", str(e)) from e
            allow_4096 = entry.get("allow_4096", False)
            if not isinstance(allow_4096, bool):
                raise self.fail(f"{where}.allow_4096", "expected true or false")
            texts: list[tuple[str, str]] = []
            if "token_key" in entry:
                texts.append((f"{where}.token_key", entry["token_key"]))
            extra = entry.get("token_keys", [])
            if not isinstance(extra, list | tuple):
                raise self.fail(f"{where}.token_keys", "expected a list of token-key strings")
            for j, text in enumerate(extra):
                texts.append((f"{where}.token_keys[{j}]", text))
            if "token_key_file" in entry:
                texts.append((f"{where}.token_key_file", self.read_key_file(entry, where)))
            urls, directory_setting = self.directory_urls(entry, where, name, development)
            if not texts and not urls:
                raise self.fail(
                    f"{where}.token_key",
                    "expected token_key, token_keys, token_key_file, directory or discover = true",
                )
            keys: list[IssuerKey] = []
            for setting, text in texts:
                if not isinstance(text, str):
                    raise self.fail(setting, "expected a base64url token-key string")
                try:
                    if "-----BEGIN" in text:
                        keys.append(IssuerKey.from_pem(text, allow_4096=allow_4096))
                    else:
                        keys.append(IssuerKey.from_base64(text, allow_4096=allow_4096))
                except DecodeError as e:
                    raise self.fail(setting, f"not a valid type-2 token-key: {e}") from e
            out.append(
                IssuerConfig(
                    name=name,
                    keys=tuple(keys),
                    directory_urls=urls,
                    allow_4096=allow_4096,
                    directory_setting=directory_setting,
                )
            )
        names = [i.name.lower() for i in out]
        if len(set(names)) != len(names):
            raise self.fail("issuers", "each issuer name may appear once")
        key_ids = [k.token_key_id for i in out for k in i.keys]
        if len(set(key_ids)) != len(key_ids):
            raise self.fail("issuers", "the same token key is configured twice")
        return tuple(out)

    def directory_urls(
        self, entry: Mapping[str, Any], where: str, name: str, development: bool
    ) -> tuple[tuple[str, ...], str]:
        """The directory URLs to try for one issuer, and the setting that gave them."""
        discover = entry.get("discover", False)
        if not isinstance(discover, bool):
            raise self.fail(f"{where}.discover", "expected true or false")
        if "directory" not in entry:
            if not discover:
                return (), ""
            origin = "https://" + name
            parts = _split_url(origin)
            if (
                parts is None
                or not parts.hostname
                or parts.netloc != name
                or not _has_valid_port(parts)
            ):
                raise self.fail(
                    f"{where}.discover",
                    f"needs a name that is host[:port] to find the directory, not {name!r}; "
                    "give directory = URL instead",
                )
            return (origin + DIRECTORY_PATH, origin + LEGACY_DIRECTORY_PATH), f"{where}.discover"
        setting = f"{where}.directory"
        if discover:
            raise self.fail(setting, "give directory or discover = true, not both")
        url = entry["directory"]
        if not isinstance(url, str) or not _HEADER_VALUE.fullmatch(url) or " " in url:
            raise self.fail(setting, "expected an http(s) URL")
        parts = _split_url(url)
        # Not echoed: its query may hold an API key.
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or not _has_valid_port(parts)
        ):
            raise self.fail(setting, "expected an http(s) URL with a host and a valid port")
        if "@" in parts.netloc or parts.fragment:
            raise self.fail(setting, "must not carry user information or a fragment")
        if parts.scheme == "http" and not (development or _is_loopback(parts.hostname)):
            raise self.fail(
                setting,
                "plain http is allowed only for loopback hosts or with development = true; "
                "use https",
            )
        if parts.path in ("", "/") and not parts.query:
            origin = f"{parts.scheme}://{parts.netloc}"
            return (origin + DIRECTORY_PATH, origin + LEGACY_DIRECTORY_PATH), setting
        return (url,), setting

    def read_key_file(self, entry: Mapping[str, Any], where: str) -> str:
        value = entry["token_key_file"]
        if not isinstance(value, str):
            raise self.fail(f"{where}.token_key_file", "expected a file path")
        try:
            return self.path(value).read_text(encoding="ascii").strip()
        except (OSError, UnicodeError) as e:
            raise self.fail(f"{where}.token_key_file", f"cannot read {value}: {e}") from e

    def secret(self, development: bool) -> bytes:
        sources = [k for k in ("secret", "secret_env", "secret_file") if k in self.data]
        if len(sources) > 1:
            raise self.fail(sources[1], "give only one of secret, secret_env, secret_file")
        text: str | None = None
        key = sources[0] if sources else "secret"
        if key == "secret":
            text = self.string("secret", None)
        elif key == "secret_env":
            var = self.string("secret_env", None) or ""
            text = os.environ.get(var)
            if text is None:
                raise self.fail("secret_env", f"environment variable {var!r} is not set")
        else:
            path = self.string("secret_file", None) or ""
            try:
                text = self.path(path).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeError) as e:
                raise self.fail("secret_file", f"cannot read {path}: {e}") from e
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
        file = self.string("challenge_body_file", None)
        if file is not None:
            try:
                return self.path(file).read_text(encoding="utf-8")
            except (OSError, UnicodeError) as e:
                raise self.fail("challenge_body_file", f"cannot read {file}: {e}") from e
        return self.string("challenge_body", DEFAULT_CHALLENGE_BODY) or ""


def _split_url(url: str) -> SplitResult | None:
    """``urlsplit(url)``, or None where it raises (an unbalanced "[", a bad IP literal)."""
    try:
        return urlsplit(url)
    except ValueError:
        return None


def _has_valid_port(parts: SplitResult) -> bool:
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number in range
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


__all__ = [
    "DiscoveryOptions",
    "IssuerConfig",
    "PathRule",
    "Settings",
    "load_settings",
    "protected_methods",
]
