"""Settings: mapping and TOML in, validated frozen Settings out; every error names its key."""

from __future__ import annotations

import base64
import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pat_middleware.core.codec import b64url_encode
from pat_middleware.errors import ConfigurationError
from pat_middleware.policy.contexts import ContextMode
from pat_middleware.settings import (
    KNOWN_KEYS,
    SETTINGS_ENV,
    DiscoveryOptions,
    IssuerConfig,
    PathRule,
    Settings,
    load_settings,
)
from pat_middleware.tokens.blind_rsa import IssuerKey, encode_pss_spki

from ._origin import ISSUER, OTHER_ISSUER, SECRET

SHORT_SECRET_ENV = "PAT_TEST_SHORT_SECRET"
GOOD_SECRET_ENV = "PAT_TEST_GOOD_SECRET"
UNSET_SECRET_ENV = "PAT_TEST_SECRET_THAT_IS_NOT_SET"
MISSING = object()  # "remove this key" in an error case


@pytest.fixture
def base(issuer_key: IssuerKey) -> dict[str, Any]:
    """The smallest valid mapping."""
    return {"issuers": [{"name": ISSUER, "token_key": issuer_key.token_key}], "secret": SECRET}


@pytest.fixture
def base_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory holding a too-short secret file, and environment variables for secret_env."""
    (tmp_path / "short-secret.txt").write_text("too short\n", encoding="utf-8")
    monkeypatch.setenv(SHORT_SECRET_ENV, "short")
    monkeypatch.setenv(GOOD_SECRET_ENV, SECRET)
    monkeypatch.delenv(UNSET_SECRET_ENV, raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def rsa_encryption_key(rsa_2048: rsa.RSAPrivateKey) -> str:
    """The issuer's public key as a plain rsaEncryption SPKI: not a valid type-2 token-key."""
    der = rsa_2048.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b64url_encode(der)


def _build(data: dict[str, Any], base_dir: Path | None = None) -> Settings:
    return Settings.from_mapping(data, base_dir=base_dir)


def _error(data: dict[str, Any], base_dir: Path | None = None) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as info:
        _build(data, base_dir)
    return info.value


# ------------------------------------------------------------------------ valid settings


def test_minimal_mapping_has_safe_defaults(base: dict[str, Any], issuer_key: IssuerKey) -> None:
    settings = _build(base)
    [issuer] = settings.issuers
    assert (issuer.name, issuer.key) == (ISSUER, issuer_key)
    assert settings.secret == SECRET.encode()
    assert settings.redemption_context is ContextMode.PER_SESSION
    assert (settings.max_age, settings.failure_status, settings.quoted_values) == (60, 401, True)
    assert settings.cookies.secure and settings.cookies.samesite == "Lax"
    assert settings.protect == () and not settings.protects("GET", "/")
    assert not settings.development


def test_every_known_key_is_applied(
    base_dir: Path, issuer_key: IssuerKey, other_rsa_2048: rsa.RSAPrivateKey
) -> None:
    (base_dir / "secret.txt").write_text(SECRET + "\n", encoding="utf-8")
    (base_dir / "body.html").write_text("<p>need a token</p>", encoding="utf-8")
    other_spki = encode_pss_spki(other_rsa_2048.public_key())
    other_pem = (
        "-----BEGIN PUBLIC KEY-----\n"
        + base64.encodebytes(other_spki).decode()
        + "-----END PUBLIC KEY-----\n"
    )
    data: dict[str, Any] = {
        "issuers": [
            {"name": ISSUER, "token_key": issuer_key.token_key},
            {"name": OTHER_ISSUER, "token_keys": [other_pem], "allow_4096": True},
            {"name": "third.example", "discover": True},
        ],
        "secret_file": "secret.txt",
        "origin_info": ["Origin.Example", "www.origin.example"],
        "check_host": True,
        "redemption_context": "per-request",
        "max_age": 120,
        "token_types": [2],
        "protect": ["/a", "/b/*"],
        "protect_methods": ["post", "PUT"],
        "failure_status": 403,
        "verified_duration": 0,
        "session_lifetime": 3600,
        "cookie_name": "sid",
        "verified_cookie_name": "ok",
        "cookie_secure": True,
        "cookie_samesite": "none",
        "cookie_domain": "origin.example",
        "cookie_path": "/app",
        "challenge_body_file": "body.html",
        "challenge_content_type": "text/plain",
        "quoted_values": False,
        "replay_store": "memory://?max_entries=10",
        "replay_ttl": 600,
        "allow_per_process_replay": True,
        "store_unavailable_status": 429,
        "max_authorization_length": 4096,
        "development": False,
        "directory_refresh_min": 10,
        "directory_refresh_max": 7200,
        "directory_unknown_key_refresh": 20,
        "directory_timeout": 3,
        "directory_require_keys": False,
        "directory_key_grace": 900,
        "pst_issuers": [{"origin": "https://pst.example", "jwks": "https://pst.example"}],
        "pst_accepted_origins": ["https://www.origin.example"],
    }
    assert set(data) | {"secret", "secret_env", "challenge_body"} == KNOWN_KEYS
    s = _build(data, base_dir)

    assert [i.name for i in s.issuers] == [ISSUER, OTHER_ISSUER, "third.example"]
    assert [i.origin for i in s.pst.issuers] == ["https://pst.example"]
    assert s.pst.accepted_origins == frozenset({"https://www.origin.example"})
    other = s.issuers[1].key
    assert other is not None and other.token_key_id != issuer_key.token_key_id
    assert s.issuers[1].allow_4096 and s.issuers[2].keys == ()
    assert s.issuers[2].directory_urls == (
        "https://third.example/.well-known/private-token-issuer-directory",
        "https://third.example/.well-known/token-issuer-directory",
    )
    assert s.issuers[2].directory_setting == "issuers[2].discover"
    assert s.discovery == DiscoveryOptions(
        refresh_min=10,
        refresh_max=7200,
        unknown_key_refresh=20,
        timeout=3,
        require_keys=False,
        key_grace=900,
    )
    assert s.secret == SECRET.encode()
    assert s.origin_info == ("origin.example", "www.origin.example")
    assert s.check_host
    assert s.redemption_context is ContextMode.PER_REQUEST
    assert (s.max_age, s.token_types, s.failure_status) == (120, frozenset({2}), 403)
    assert s.protect == (PathRule("exact", "/a"), PathRule("prefix", "/b/"))
    assert s.protect_methods == frozenset({"POST", "PUT"})
    assert (s.verified_duration, s.session_lifetime) == (0, 3600)
    c = s.cookies
    assert (c.session_name, c.verified_name, c.secure, c.samesite, c.domain, c.path) == (
        "sid",
        "ok",
        True,
        "None",
        "origin.example",
        "/app",
    )
    assert (s.challenge_body, s.challenge_content_type) == ("<p>need a token</p>", "text/plain")
    assert (s.quoted_values, s.replay_store, s.replay_ttl) == (
        False,
        "memory://?max_entries=10",
        600,
    )
    assert s.max_authorization_length == 4096
    assert s.allow_per_process_replay
    assert s.store_unavailable_status == 429
    assert not s.development


def test_secret_from_environment(base: dict[str, Any], base_dir: Path) -> None:
    del base["secret"]
    base["secret_env"] = GOOD_SECRET_ENV
    assert _build(base, base_dir).secret == SECRET.encode()


def test_secret_file_is_read_relative_to_base_dir(base: dict[str, Any], base_dir: Path) -> None:
    (base_dir / "secret.txt").write_text(f"  {SECRET}\n", encoding="utf-8")
    del base["secret"]
    base["secret_file"] = "secret.txt"
    assert _build(base, base_dir).secret == SECRET.encode()


def test_development_mode_generates_a_secret(
    base: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    del base["secret"]
    base["development"] = True
    caplog.set_level(logging.WARNING, logger="pat_middleware")
    first, second = _build(base), _build(base)

    assert first.development
    assert len(first.secret) >= 32
    assert first.secret != second.secret, "a random secret per process, not a fixed one"
    assert any("development mode" in r.getMessage() for r in caplog.records)


def test_development_mode_keeps_a_given_secret(base: dict[str, Any]) -> None:
    base["development"] = True
    assert _build(base).secret == SECRET.encode()


def test_challenge_body_inline(base: dict[str, Any]) -> None:
    base["challenge_body"] = "token please"
    assert _build(base).challenge_body == "token please"


# ------------------------------------------------------------------------------ errors

# (overrides, setting the error must name, a fragment of its message). MISSING removes a key.
ERROR_CASES: list[tuple[dict[str, Any], str, str]] = [
    ({"issuers": MISSING}, "issuers", "at least one issuer"),
    ({"issuers": []}, "issuers", "at least one issuer"),
    ({"issuers": "issuer.example"}, "issuers", "at least one issuer"),
    ({"issuers": ["issuer.example"]}, "issuers[0]", "table"),
    ({"issuers": [{"name": ISSUER}]}, "issuers[0].token_key", "token_key"),
    ({"issuers": [{"name": ISSUER, "discover": False}]}, "issuers[0].token_key", "discover"),
    ({"issuers": [{"name": ISSUER, "discover": "yes"}]}, "issuers[0].discover", "true or false"),
    (
        {"issuers": [{"name": ISSUER, "discover": True, "directory": "https://i.example"}]},
        "issuers[0].directory",
        "not both",
    ),
    ({"issuers": [{"name": ISSUER, "directory": 5}]}, "issuers[0].directory", "http(s) URL"),
    (
        {"issuers": [{"name": ISSUER, "directory": "ftp://i.example/d"}]},
        "issuers[0].directory",
        "http(s) URL",
    ),
    (
        {"issuers": [{"name": ISSUER, "directory": "https://u:p@i.example/d"}]},
        "issuers[0].directory",
        "user information",
    ),
    (
        {"issuers": [{"name": ISSUER, "directory": "http://issuer.example/d"}]},
        "issuers[0].directory",
        "loopback",
    ),
    *(
        ({"issuers": [{"name": name, "discover": True}]}, "issuers[0].discover", "host[:port]")
        for name in (
            "i.example/x",
            "i.example?x",
            "i.example#x",
            ":443",
            "i.example:x",
            "[::1",
            "[zz]",
        )
    ),
    *(  # urlsplit raises ValueError for the first three; the last has no valid port
        ({"issuers": [{"name": ISSUER, "directory": url}]}, "issuers[0].directory", "http(s) URL")
        for url in (
            "https://[::1/d",
            "https://i.example]/d",
            "https://[zz]/d",
            "https://i.example:99999/d",
        )
    ),
    ({"directory_refresh_min": 0}, "directory_refresh_min", "from 1 to"),
    ({"directory_refresh_max": 30}, "directory_refresh_max", "directory_refresh_min"),
    ({"directory_unknown_key_refresh": 0}, "directory_unknown_key_refresh", "from 1 to"),
    ({"directory_timeout": 61}, "directory_timeout", "from 1 to"),
    ({"directory_require_keys": 1}, "directory_require_keys", "true or false"),
    ({"directory_key_grace": -1}, "directory_key_grace", "from 0 to"),
    ({"issuers": [{"name": ISSUER, "token_key": "!!!"}]}, "issuers[0].token_key", "token-key"),
    ({"issuers": [{"name": ISSUER, "token_key": "AAAA"}]}, "issuers[0].token_key", "token-key"),
    ({"issuers": [{"name": ISSUER, "token_key": 7}]}, "issuers[0].token_key", "string"),
    (
        {"issuers": [{"name": ISSUER, "token_key_file": "no-such.key"}]},
        "issuers[0].token_key_file",
        "cannot read",
    ),
    ({"issuers": [{"token_key": "AAAA"}]}, "issuers[0].name", "issuer name"),
    ({"issuers": [{"name": "bad name", "token_key": "AAAA"}]}, "issuers[0].name", "issuer_name"),
    ({"issuers": [{"name": "u@host", "token_key": "AAAA"}]}, "issuers[0].name", "userinfo"),
    ({"issuers": [{"name": ISSUER, "tokenkey": "AAAA"}]}, "issuers[0].tokenkey", "unknown"),
    ({"redemption_context": "per-page"}, "redemption_context", "per-session"),
    ({"max_age": 0}, "max_age", "from 1 to"),
    ({"max_age": 86401}, "max_age", "from 1 to"),
    ({"max_age": "60"}, "max_age", "integer"),
    ({"max_age": True}, "max_age", "integer"),
    ({"max_age": 600, "session_lifetime": 1000}, "session_lifetime", "twice max_age"),
    ({"session_lifetime": 59}, "session_lifetime", "from 60"),
    ({"token_types": [1]}, "issuers[0].token_key", "token_types does not list 2"),
    ({"token_types": []}, "token_types", "non-empty list"),
    ({"token_types": [3]}, "token_types", "not registered; registered: 1 (VOPRF"),
    ({"token_types": [True]}, "token_types", "non-empty list"),
    ({"token_types": "2"}, "token_types", "non-empty list"),
    ({"secret": MISSING}, "secret", "development"),
    ({"secret": "x" * 31}, "secret", "at least 32"),
    ({"secret": 12345678901234567890123456789012345}, "secret", "string"),
    ({"secret_env": GOOD_SECRET_ENV}, "secret_env", "only one of"),
    ({"secret": MISSING, "secret_env": UNSET_SECRET_ENV}, "secret_env", "not set"),
    ({"secret": MISSING, "secret_env": SHORT_SECRET_ENV}, "secret_env", "at least 32"),
    ({"secret": MISSING, "secret_file": "no-such-secret.txt"}, "secret_file", "cannot read"),
    ({"secret": MISSING, "secret_file": "short-secret.txt"}, "secret_file", "at least 32"),
    ({"origin_info": [1]}, "origin_info", "list of strings"),
    ({"origin_info": ["bad name"]}, "origin_info", "origin_info"),
    ({"check_host": True}, "check_host", "origin_info"),
    ({"check_host": "yes"}, "check_host", "true or false"),
    ({"protect": ["api/*"]}, "protect", "must start with '/'"),
    ({"protect": ["*"]}, "protect", "must start with '/'"),
    ({"protect": ["glob:api"]}, "protect", "must start with '/'"),
    ({"protect": [3]}, "protect", "list of strings"),
    ({"protect_methods": ["FETCH"]}, "protect_methods", "FETCH"),
    ({"failure_status": 200}, "failure_status", "from 400 to 499"),
    ({"failure_status": 500}, "failure_status", "from 400 to 499"),
    ({"failure_status": 399}, "failure_status", "from 400 to 499"),
    ({"verified_duration": -1}, "verified_duration", "integer"),
    ({"cookie_name": "bad name"}, "cookie_name", "cookie names"),
    ({"verified_cookie_name": "a;b"}, "verified_cookie_name", "cookie names"),
    ({"verified_cookie_name": "pat_session"}, "verified_cookie_name", "differ"),
    ({"cookie_secure": "false"}, "cookie_secure", "true or false"),
    ({"cookie_samesite": "sometimes"}, "cookie_samesite", "Lax, Strict or None"),
    ({"cookie_samesite": "None", "cookie_secure": False}, "cookie_samesite", "cookie_secure"),
    ({"cookie_domain": 5}, "cookie_domain", "string"),
    ({"cookie_path": ["/"]}, "cookie_path", "string"),
    ({"challenge_body": 5}, "challenge_body", "string"),
    ({"challenge_body_file": "no-such-body.html"}, "challenge_body_file", "cannot read"),
    (
        {"challenge_body": "x", "challenge_body_file": "short-secret.txt"},
        "challenge_body_file",
        "not both",
    ),
    ({"challenge_content_type": 5}, "challenge_content_type", "string"),
    ({"quoted_values": "no"}, "quoted_values", "true or false"),
    ({"replay_store": "redis://localhost?bogus=1"}, "replay_store", "is unknown"),
    ({"replay_store": "memory://?max_entries=none"}, "replay_store", "integer"),
    ({"replay_ttl": 10}, "replay_ttl", "integer"),
    ({"allow_per_process_replay": "yes"}, "allow_per_process_replay", "true or false"),
    ({"store_unavailable_status": 404}, "store_unavailable_status", "429 or an integer"),
    ({"max_authorization_length": 100}, "max_authorization_length", "integer"),
    ({"development": "yes"}, "development", "true or false"),
    ({"protected": ["/a"]}, "protected", "unknown setting"),
    ({"pst_issuers": 5}, "pst_issuers", "expected a list"),
    ({"pst_accepted_origins": 5}, "pst_accepted_origins", "expected a list of origins"),
]


def _case_id(case: tuple[dict[str, Any], str, str]) -> str:
    overrides, setting, _ = case
    first = next(iter(overrides))
    return f"{setting}-{first}={overrides[first]!r}"[:60]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[_case_id(c) for c in ERROR_CASES])
def test_error_names_the_setting(
    base: dict[str, Any], base_dir: Path, case: tuple[dict[str, Any], str, str]
) -> None:
    overrides, setting, fragment = case
    for key, value in overrides.items():
        if value is MISSING:
            base.pop(key, None)
        else:
            base[key] = value
    error = _error(base, base_dir)

    assert error.setting == setting
    assert fragment in error.message
    assert str(error).startswith(f"{setting}: ")
    assert SECRET not in str(error)


# A typo gets the key it is most likely a typo of, as Flask's PAT_* config keys do.
TYPO_CASES = [
    ({"protected": ["/a"]}, "protected", "protect"),
    ({"max_agee": 30}, "max_agee", "max_age"),
    ({"cookie_same_site": "Lax"}, "cookie_same_site", "cookie_samesite"),
    ({"issuers": [{"name": ISSUER, "tokenkey": "AAAA"}]}, "issuers[0].tokenkey", "token_key"),
    (
        {"pst_issuers": [{"orign": "https://pst.example", "jwks": "https://pst.example"}]},
        "pst_issuers[0].orign",
        "origin",
    ),
]


@pytest.mark.parametrize(("overrides", "setting", "meant"), TYPO_CASES)
def test_a_typo_gets_did_you_mean(
    base: dict[str, Any], overrides: dict[str, Any], setting: str, meant: str
) -> None:
    base.update(overrides)
    error = _error(base)
    assert error.setting == setting
    assert f"unknown setting; did you mean {meant}?" in error.message


def test_an_unknown_key_like_no_setting_lists_the_known_ones(base: dict[str, Any]) -> None:
    base["colour"] = "blue"
    error = _error(base)
    assert error.setting == "colour" and "did you mean" not in error.message
    assert "max_age" in error.message


def test_a_typo_in_a_toml_file_gets_did_you_mean(tmp_path: Path, issuer_key: IssuerKey) -> None:
    file = tmp_path / "pat.toml"
    file.write_text(_toml(issuer_key, "verified_duraton = 0", table=True), encoding="utf-8")
    with pytest.raises(ConfigurationError) as info:
        load_settings(file)
    assert info.value.setting == "verified_duraton"
    assert "did you mean verified_duration?" in info.value.message
    assert str(file) in info.value.message


def test_every_known_key_has_an_error_case() -> None:
    named = {setting.split("[")[0] for _, setting, _ in ERROR_CASES}
    assert KNOWN_KEYS - named == set()


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("/a/[bc", "'[bc' opens a character set that no ']' closes"),
        ("/a/[bc*", "'[bc*' opens a character set"),
        ("glob:/a/[!", "'[!' opens a character set"),
        ("/a/[]", "'[]' opens a character set"),
        ("/a/[x]/[y", "'[y' opens a character set"),
        ("regex:/x", "unknown prefix 'regex:'; known prefixes: exact:, prefix:, glob:"),
        ("re:^/x$", "unknown prefix 're:'"),
        ("Exact:/x", "prefixes are lower case: write 'exact:/x'"),
        ("GLOB:/a/*", "prefixes are lower case: write 'glob:/a/*'"),
    ],
)
def test_a_protect_pattern_that_would_not_do_what_it_says_is_named(
    base: dict[str, Any], pattern: str, fragment: str
) -> None:
    """An unclosed '[' is matched literally by fnmatch, and an unknown prefix made an
    exact path that no request has: both would protect nothing, silently."""
    base["protect"] = ["/fine", pattern]
    error = _error(base)
    assert error.setting == "protect"
    assert f"path pattern {pattern!r}" in error.message
    assert fragment in error.message


@pytest.mark.parametrize(
    ("pattern", "rule"),
    [
        ("/a/[bc]", PathRule("glob", "/a/[bc]")),
        ("/a/[[]", PathRule("glob", "/a/[[]")),  # a literal '[', as fnmatch spells it
        ("/a/[]]", PathRule("glob", "/a/[]]")),
        ("/a/[!]]x", PathRule("glob", "/a/[!]]x")),
        ("exact:/a/[b", PathRule("exact", "/a/[b")),  # not a glob: '[' is itself
        ("prefix:/a/[b", PathRule("prefix", "/a/[b")),
    ],
)
def test_brackets_closed_or_outside_globs_are_accepted(pattern: str, rule: PathRule) -> None:
    assert PathRule.parse(pattern, "protect") == rule


def test_rsa_encryption_key_is_refused(base: dict[str, Any], rsa_encryption_key: str) -> None:
    base["issuers"] = [{"name": ISSUER, "token_key": rsa_encryption_key}]
    error = _error(base)
    assert error.setting == "issuers[0].token_key"
    assert "rsaEncryption" in error.message


def test_second_bad_key_of_an_issuer_is_named(
    base: dict[str, Any], issuer_key: IssuerKey, rsa_encryption_key: str
) -> None:
    base["issuers"] = [{"name": ISSUER, "token_keys": [issuer_key.token_key, rsa_encryption_key]}]
    assert _error(base).setting == "issuers[0].token_keys[1]"


@pytest.mark.parametrize("second", [OTHER_ISSUER.upper(), ISSUER, ISSUER.upper()])
def test_duplicate_issuer_names_are_refused(
    base: dict[str, Any], issuer_key: IssuerKey, second: str
) -> None:
    base["issuers"].append({"name": second, "token_key": issuer_key.token_key})
    error = _error(base)
    assert error.setting == "issuers"
    if second == OTHER_ISSUER.upper():
        # A distinct name, but a key already configured: the key ring could not tell which
        # issuer a token came from, so one of them would always be refused.
        assert "same token key" in error.message
    else:
        assert "once" in error.message


def test_short_secret_is_not_echoed(base: dict[str, Any]) -> None:
    base["secret"] = "hunter2-but-longer-than-20"
    assert "hunter2" not in str(_error(base))


# --------------------------------------------------------------------------------- TOML


def _toml(issuer_key: IssuerKey, *extra: str, table: bool = False) -> str:
    lines = [f'secret = "{SECRET}"', 'protect = ["/protected"]', *extra]
    issuer = f'name = "{ISSUER}"\ntoken_key = "{issuer_key.token_key}"'
    if table:
        return (
            "[pat_middleware]\n" + "\n".join(lines) + f"\n\n[[pat_middleware.issuers]]\n{issuer}\n"
        )
    return "\n".join(lines) + f"\n\n[[issuers]]\n{issuer}\n"


@pytest.mark.parametrize("table", [False, True], ids=["top-level", "pat_middleware-table"])
def test_load_toml_file(tmp_path: Path, issuer_key: IssuerKey, table: bool) -> None:
    file = tmp_path / "pat.toml"
    file.write_text(_toml(issuer_key, "max_age = 30", table=table), encoding="utf-8")
    settings = load_settings(file)
    assert settings.issuers[0].key == issuer_key
    assert settings.max_age == 30
    assert settings.protects("GET", "/protected")


def test_load_from_pat_settings_env(
    tmp_path: Path, issuer_key: IssuerKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "from-env.toml"
    file.write_text(_toml(issuer_key, "max_age = 45", table=True), encoding="utf-8")
    monkeypatch.setenv(SETTINGS_ENV, str(file))
    assert load_settings().max_age == 45


def test_no_settings_file_names_pat_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SETTINGS_ENV, raising=False)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert info.value.setting == SETTINGS_ENV


@pytest.mark.parametrize(
    ("content", "fragment"), [(None, "cannot read"), ("issuers = [", "not valid TOML")]
)
def test_unreadable_settings_file(tmp_path: Path, content: str | None, fragment: str) -> None:
    file = tmp_path / "pat.toml"
    if content is not None:
        file.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigurationError) as info:
        load_settings(file)
    assert info.value.setting == SETTINGS_ENV
    assert fragment in info.value.message


def test_pat_middleware_must_be_a_table(tmp_path: Path) -> None:
    file = tmp_path / "pat.toml"
    file.write_text("pat_middleware = 5\n", encoding="utf-8")
    with pytest.raises(ConfigurationError) as info:
        load_settings(file)
    assert info.value.setting == "pat_middleware"


def test_toml_error_names_setting_and_file(tmp_path: Path, issuer_key: IssuerKey) -> None:
    file = tmp_path / "pat.toml"
    file.write_text(_toml(issuer_key, 'cookie_samesite = "bogus"'), encoding="utf-8")
    with pytest.raises(ConfigurationError) as info:
        load_settings(file)
    assert info.value.setting == "cookie_samesite"
    assert str(file) in info.value.message


# A newcomer's files: keys TOML puts outside the [pat_middleware] table, which would leave
# them unread (protect above the table: every route open).
OUTSIDE_THE_TABLE = [
    ('protect = ["/protected"]\n[pat_middleware]\nmax_age = 30\n', "protect", ("protect",)),
    (
        'protect = ["/protected"]\ncheck_host = false\n[pat_middleware]\nmax_age = 30\n',
        "protect",
        ("protect", "check_host"),
    ),
    ("[pat_middleware]\nmax_age = 30\n[[issuers]]\n", "issuers", ("[[pat_middleware.issuers]]",)),
    ("[pat_middleware]\nmax_age = 30\n[logging]\nlevel = 1\n", "logging", ("logging",)),
]


def outside_the_table(text: str, issuer_key: IssuerKey) -> str:
    """``text`` with a secret and an issuer inside the table: only the stray key is wrong."""
    issuer = f'name = "{ISSUER}"\ntoken_key = "{issuer_key.token_key}"\n'
    text = text.replace("[pat_middleware]\n", f'[pat_middleware]\nsecret = "{SECRET}"\n')
    text = text.replace("[[issuers]]\n", "[[issuers]]\n" + issuer)
    return text + "\n[[pat_middleware.issuers]]\n" + issuer


@pytest.mark.parametrize(
    ("text", "setting", "named"),
    OUTSIDE_THE_TABLE,
    ids=["protect-above", "two-above", "issuers-below", "another-table"],
)
def test_keys_outside_the_pat_middleware_table_are_refused(
    tmp_path: Path, issuer_key: IssuerKey, text: str, setting: str, named: tuple[str, ...]
) -> None:
    file = tmp_path / "pat.toml"
    file.write_text(outside_the_table(text, issuer_key), encoding="utf-8")
    with pytest.raises(ConfigurationError) as info:
        load_settings(file)
    assert info.value.setting == setting
    for name in named:
        assert name in info.value.message
    assert "[pat_middleware]" in info.value.message
    assert str(file) in info.value.message


def test_a_misspelt_table_is_named(tmp_path: Path, issuer_key: IssuerKey) -> None:
    file = tmp_path / "pat.toml"
    file.write_text(
        _toml(issuer_key, table=True).replace("pat_middleware", "pat-middleware"),
        encoding="utf-8",
    )
    with pytest.raises(ConfigurationError) as info:
        load_settings(file)
    assert info.value.setting == "pat-middleware"
    assert "did you mean [pat_middleware]?" in info.value.message


def test_files_are_relative_to_the_toml_directory(
    tmp_path: Path, issuer_key: IssuerKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    (conf / "keys").mkdir(parents=True)
    body = base64.encodebytes(issuer_key.spki).decode().strip()
    pem = f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"
    (conf / "keys" / "issuer.pem").write_text(pem, encoding="ascii")
    (conf / "secret.txt").write_text(SECRET, encoding="utf-8")
    (conf / "body.html").write_text("<p>from file</p>", encoding="utf-8")
    (conf / "pat.toml").write_text(
        'secret_file = "secret.txt"\nchallenge_body_file = "body.html"\n\n'
        f'[[issuers]]\nname = "{ISSUER}"\ntoken_key_file = "keys/issuer.pem"\n',
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter

    settings = load_settings(conf / "pat.toml")
    assert settings.issuers[0].key == issuer_key
    assert settings.secret == SECRET.encode()
    assert settings.challenge_body == "<p>from file</p>"


def test_token_key_file_missing_names_the_issuer_key(tmp_path: Path) -> None:
    file = tmp_path / "pat.toml"
    file.write_text(
        f'secret = "{SECRET}"\n[[issuers]]\nname = "{ISSUER}"\ntoken_key_file = "gone.key"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigurationError) as info:
        load_settings(file)
    assert info.value.setting == "issuers[0].token_key_file"


@pytest.mark.parametrize(
    ("line", "setting"),
    [
        ('secret_file = "keys/secret.txt"', "secret_file"),
        ('challenge_body_file = "pages/401.html"', "challenge_body_file"),
        (
            '[[issuers]]\nname = "issuer.example"\ntoken_key_file = "keys/k.pem"',
            "issuers[0].token_key_file",
        ),
        (
            '[[pst_issuers]]\norigin = "https://pst.example"\njwks_file = "keys/jwks.json"',
            "pst_issuers[0].jwks_file",
        ),
    ],
    ids=["secret_file", "challenge_body_file", "token_key_file", "jwks_file"],
)
def test_an_unreadable_file_is_named_by_its_absolute_path(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    issuer_key: IssuerKey,
    line: str,
    setting: str,
) -> None:
    """A relative path is taken from the settings file's directory: the error says which
    file that made, whatever the working directory and however the file was named."""
    (tmp_path / "conf").mkdir()
    head = f'secret = "{SECRET}"\n' if setting != "secret_file" else ""
    if "[[" not in line:
        line += f'\n[[issuers]]\nname = "{ISSUER}"\ntoken_key = "{issuer_key.token_key}"'
    (tmp_path / "conf" / "pat.toml").write_text(head + line + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError) as info:
        load_settings("conf/pat.toml")  # a relative settings path, as PAT_SETTINGS may be
    assert info.value.setting == setting
    missing = next(part for part in line.split('"') if part.startswith(("keys/", "pages/")))
    assert f"cannot read {tmp_path / 'conf' / missing}:" in info.value.message


def test_a_missing_settings_file_is_named_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError) as info:
        load_settings("conf/../pat.toml")
    assert info.value.message.startswith(f"cannot read {tmp_path / 'pat.toml'}:")


def test_relative_base_dir_errors_name_absolute_paths(
    base: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    base["challenge_body_file"] = "body.html"
    error = _error(base, Path("site"))
    assert f"cannot read {tmp_path / 'site' / 'body.html'}:" in error.message


def test_repr_hides_the_secret(base: dict[str, Any]) -> None:
    settings = _build(base)
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert "<hidden>" in repr(settings)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("challenge_content_type", "text/html; charset=utf-8 \u2713"),
        ("challenge_content_type", "text/html\r\nX-Injected: 1"),
        ("cookie_domain", "ex\u00e4mple.com"),
        ("cookie_domain", "origin.example; Secure"),
        ("cookie_path", "/\u2603"),
        ("cookie_path", "/; Domain=evil.example"),
    ],
)
def test_header_unsafe_values_are_refused_at_start_up(
    base: dict[str, Any], key: str, value: str
) -> None:
    """These values end up in response headers: accepting them breaks every 401 later."""
    base[key] = value
    assert _error(base).setting == key


@pytest.mark.parametrize("value", [5, "MIIB", {"a": 1}])
def test_token_keys_must_be_a_list(base: dict[str, Any], value: object) -> None:
    base["issuers"][0]["token_keys"] = value
    assert _error(base).setting == "issuers[0].token_keys"


@pytest.mark.parametrize(
    ("url", "development", "expected"),
    [
        (
            "https://issuer.example",
            False,
            (
                "https://issuer.example/.well-known/private-token-issuer-directory",
                "https://issuer.example/.well-known/token-issuer-directory",
            ),
        ),
        ("https://issuer.example/keys.json", False, ("https://issuer.example/keys.json",)),
        ("http://127.0.0.1:8001/d", False, ("http://127.0.0.1:8001/d",)),
        ("http://[::1]:8001/d", False, ("http://[::1]:8001/d",)),
        ("http://localhost/d", False, ("http://localhost/d",)),
        ("http://issuer.example/d", True, ("http://issuer.example/d",)),
    ],
)
def test_directory_urls(
    base: dict[str, Any], url: str, development: bool, expected: tuple[str, ...]
) -> None:
    base["issuers"] = [{"name": ISSUER, "directory": url}]
    base["development"] = development
    [issuer] = _build(base).issuers
    assert issuer.directory_urls == expected
    assert issuer.keys == () and issuer.key is None
    assert issuer.directory_setting == "issuers[0].directory"


def test_discovery_defaults(base: dict[str, Any]) -> None:
    # refresh_min, refresh_max, unknown_key_refresh, timeout, require_keys, key_grace
    assert dataclasses.astuple(_build(base).discovery) == (60, 3600, 30, 5, True, 600)


def test_static_keys_and_directory_together(base: dict[str, Any], issuer_key: IssuerKey) -> None:
    base["issuers"] = [{"name": ISSUER, "token_key": issuer_key.token_key, "discover": True}]
    [issuer] = _build(base).issuers
    assert issuer.keys == (issuer_key,)
    assert len(issuer.directory_urls) == 2


@pytest.mark.parametrize(
    "url",
    ["ftp://i.example/d?api_key=s3cret", "https:///d?api_key=s3cret", "https://[::1/d?k=s3cret"],
)
def test_a_refused_directory_url_is_not_echoed(base: dict[str, Any], url: str) -> None:
    """Its query may hold an API key: the start-up error names the setting only."""
    base["issuers"] = [{"name": ISSUER, "directory": url}]
    error = _error(base)
    assert error.setting == "issuers[0].directory"
    assert "s3cret" not in str(error)


@pytest.mark.parametrize(
    "url", ["ftp://issuer.example/d", "https://issuer.example:0x1/d", "//issuer.example/d"]
)
def test_a_hand_built_issuer_config_refuses_an_unfetchable_directory_url(url: str) -> None:
    # Found at start-up, not by the refresher thread at the first fetch.
    with pytest.raises(ConfigurationError) as info:
        IssuerConfig("issuer.example", (), directory_urls=(url,), directory_setting="x.directory")
    assert info.value.setting == "x.directory"


@pytest.mark.parametrize(
    ("field", "value", "setting"),
    [
        ("refresh_min", 0, "directory_refresh_min"),
        ("refresh_min", -1, "directory_refresh_min"),
        ("timeout", 0, "directory_timeout"),
        ("timeout", "5", "directory_timeout"),
        ("unknown_key_refresh", -1, "directory_unknown_key_refresh"),
        ("key_grace", -1, "directory_key_grace"),
        ("refresh_max", 10, "directory_refresh_max"),
    ],
)
def test_hand_built_discovery_options_are_checked(field: str, value: Any, setting: str) -> None:
    # A zero refresh_min would make the refresher thread fetch in a tight loop.
    with pytest.raises(ConfigurationError) as info:
        dataclasses.replace(DiscoveryOptions(refresh_min=60), **{field: value})
    assert info.value.setting == setting
