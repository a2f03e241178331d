"""Settings of trusted PST issuers: pst_issuers and pst_accepted_origins, each problem a
ConfigurationError naming its setting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pat_middleware.core.jwks import JWKS_PATH, RecordKey, RecordKeySet
from pat_middleware.errors import ConfigurationError
from pat_middleware.settings.pst import (
    PST_SETTINGS_KEYS,
    PSTIssuerConfig,
    PSTSettings,
    parse_pst_settings,
)

ISSUER = "https://issuer.example"


@pytest.fixture(scope="module")
def key_set() -> RecordKeySet:
    return RecordKeySet((RecordKey.from_public_key(Ed25519PrivateKey.generate().public_key()),))


@pytest.fixture
def jwks_file(tmp_path: Path, key_set: RecordKeySet) -> Path:
    path = tmp_path / "rr-keys.json"
    path.write_bytes(key_set.to_bytes())
    return path


def parse(data: dict[str, Any], **kw: Any) -> PSTSettings:
    kw.setdefault("origin_info", ("www.example.com",))
    return parse_pst_settings(data, **kw)


def refused(data: dict[str, Any], **kw: Any) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as info:
        parse(data, **kw)
    return info.value


def test_no_pst_settings_give_nothing_and_read_nothing_else() -> None:
    assert parse_pst_settings({"issuers": [], "origin_info": ["x"]}) == PSTSettings()
    # origin_info is not read when no PST issuer is configured.
    assert parse({}, origin_info=("bad origin/",)) == PSTSettings()
    assert {"pst_issuers", "pst_accepted_origins"} == PST_SETTINGS_KEYS


def test_a_fetched_issuer_and_the_default_accepted_origins() -> None:
    pst = parse(
        {"pst_issuers": [{"origin": "HTTPS://Issuer.Example:443/", "jwks": ISSUER}]},
        origin_info=("www.example.com", "example.com:8443"),
    )
    [issuer] = pst.issuers
    assert issuer.origin == ISSUER
    assert issuer.jwks_url == ISSUER + JWKS_PATH  # an origin alone: the well-known path
    assert issuer.keys == () and issuer.labels is None
    assert issuer.setting == "pst_issuers[0].jwks"
    assert pst.accepted_origins == {"https://www.example.com", "https://example.com:8443"}


def test_a_configured_key_set_labels_and_accepted_origins(
    jwks_file: Path, key_set: RecordKeySet
) -> None:
    pst = parse(
        {
            "pst_issuers": [
                {"origin": ISSUER, "jwks_file": jwks_file.name, "labels": [1, 2]},
                {
                    "origin": "http://localhost:8555",
                    "jwks": "http://localhost:8555/keys?v=1",
                    "jwks_file": str(jwks_file),
                },
            ],
            "pst_accepted_origins": ["https://Shop.Example", "http://localhost:8000"],
        },
        base_dir=jwks_file.parent,
    )
    first, second = pst.issuers
    assert (first.jwks_url, first.keys, first.labels) == (None, key_set.keys, frozenset({1, 2}))
    assert first.setting == "pst_issuers[0].jwks_file"
    assert second.jwks_url == "http://localhost:8555/keys?v=1"  # a path is kept as given
    assert second.keys == key_set.keys
    assert pst.accepted_origins == {"https://shop.example", "http://localhost:8000"}


@pytest.mark.parametrize(
    ("data", "setting", "words"),
    [
        ({"pst_issuers": {"origin": ISSUER}}, "pst_issuers", "list"),
        ({"pst_issuers": ["x"]}, "pst_issuers[0]", "table"),
        ({"pst_issuers": [{"origin": ISSUER, "jwks": ISSUER, "x": 1}]}, "pst_issuers[0].x", ""),
        ({"pst_issuers": [{"jwks": ISSUER}]}, "pst_issuers[0].origin", "origin"),
        ({"pst_issuers": [{"origin": "https://a/b", "jwks": ISSUER}]}, "pst_issuers[0].origin", ""),
        ({"pst_issuers": [{"origin": ISSUER}]}, "pst_issuers[0]", "jwks"),
        ({"pst_issuers": [{"origin": ISSUER, "jwks": 1}]}, "pst_issuers[0].jwks", "URL"),
        ({"pst_issuers": [{"origin": ISSUER, "jwks": "ftp://a/k"}]}, "pst_issuers[0].jwks", ""),
        (
            {"pst_issuers": [{"origin": ISSUER, "jwks": "https://a:99999/"}]},
            "pst_issuers[0].jwks",
            "",
        ),
        ({"pst_issuers": [{"origin": ISSUER, "jwks": "https://[::1/"}]}, "pst_issuers[0].jwks", ""),
        (
            {"pst_issuers": [{"origin": ISSUER, "jwks": "https://u:p@a/"}]},
            "pst_issuers[0].jwks",
            "",
        ),
        ({"pst_issuers": [{"origin": ISSUER, "jwks": "https://a/k#f"}]}, "pst_issuers[0].jwks", ""),
        ({"pst_issuers": [{"origin": ISSUER, "jwks": "https://a/ k"}]}, "pst_issuers[0].jwks", ""),
        (
            {"pst_issuers": [{"origin": ISSUER, "jwks": "http://issuer.example/k"}]},
            "pst_issuers[0].jwks",
            "loopback",
        ),
        (
            {"pst_issuers": [{"origin": ISSUER, "jwks": ISSUER, "labels": []}]},
            "pst_issuers[0].labels",
            "key ids",
        ),
        (
            {"pst_issuers": [{"origin": ISSUER, "jwks": ISSUER, "labels": [2**32]}]},
            "pst_issuers[0].labels",
            "",
        ),
        (
            {"pst_issuers": [{"origin": ISSUER, "jwks": ISSUER, "labels": [True]}]},
            "pst_issuers[0].labels",
            "",
        ),
        (
            {
                "pst_issuers": [
                    {"origin": ISSUER, "jwks": ISSUER},
                    {"origin": ISSUER + ":443", "jwks": ISSUER},
                ]
            },
            "pst_issuers",
            "once",
        ),
        (
            {"pst_issuers": [{"origin": ISSUER, "jwks": ISSUER}], "pst_accepted_origins": 3},
            "pst_accepted_origins",
            "list",
        ),
        (
            {"pst_issuers": [{"origin": ISSUER, "jwks": ISSUER}], "pst_accepted_origins": ["a"]},
            "pst_accepted_origins[0]",
            "",
        ),
        (
            {"pst_issuers": [{"origin": ISSUER, "jwks": ISSUER}], "pst_accepted_origins": [1]},
            "pst_accepted_origins[0]",
            "",
        ),
        (
            {"pst_issuers": [{"origin": ISSUER, "jwks": ISSUER}], "pst_accepted_origins": []},
            "pst_accepted_origins",
            "origin_info",
        ),
    ],
)
def test_problems_name_their_setting(data: dict[str, Any], setting: str, words: str) -> None:
    error = refused(data, source="site.toml")
    assert error.setting == setting
    assert words in error.message and error.message.endswith("(in site.toml)")


def test_plain_http_off_loopback_needs_development() -> None:
    data = {"pst_issuers": [{"origin": ISSUER, "jwks": "http://issuer.example/k"}]}
    [issuer] = parse(data, development=True).issuers
    assert issuer.jwks_url == "http://issuer.example/k"
    for host in ("localhost", "127.0.0.1", "[::1]"):
        data = {"pst_issuers": [{"origin": ISSUER, "jwks": f"http://{host}:9/k"}]}
        assert parse(data).issuers[0].jwks_url == f"http://{host}:9/k"


def test_url_secrets_are_not_echoed() -> None:
    error = refused({"pst_issuers": [{"origin": ISSUER, "jwks": "ftp://u:s3cret@a/?k=s3cret"}]})
    assert "s3cret" not in str(error)


def test_no_accepted_origin_at_all_is_refused() -> None:
    error = refused({"pst_issuers": [{"origin": ISSUER, "jwks": ISSUER}]}, origin_info=())
    assert error.setting == "pst_accepted_origins"


def test_a_bad_key_file_is_refused(tmp_path: Path, key_set: RecordKeySet) -> None:
    def problem(content: bytes | None) -> ConfigurationError:
        path = tmp_path / "keys.json"
        if content is not None:
            path.write_bytes(content)
        entry = {"origin": ISSUER, "jwks_file": str(path)}
        try:
            return refused({"pst_issuers": [entry]})
        finally:
            path.unlink(missing_ok=True)

    assert "cannot read" in problem(None).message
    assert problem(b"{}").setting == "pst_issuers[0].jwks_file"
    assert "not a JWK Set" in problem(b"[1]").message
    assert "longer than" in problem(b" " * 70_000).message
    private = key_set.to_json()
    private["keys"][0]["d"] = private["keys"][0]["x"]
    assert "private" in problem(json.dumps(private).encode()).message
    assert refused({"pst_issuers": [{"origin": ISSUER, "jwks_file": 3}]}).setting.endswith(
        "jwks_file"
    )


def test_the_model_checks_itself(key_set: RecordKeySet) -> None:
    config = PSTIssuerConfig("HTTPS://ISSUER.example", keys=key_set.keys)
    assert config.origin == ISSUER
    assert "fetched=False" in repr(config) and "keys=1" in repr(config)
    with pytest.raises(ConfigurationError, match="jwks"):
        PSTIssuerConfig(ISSUER)
    with pytest.raises(ConfigurationError) as info:
        PSTIssuerConfig("nope", jwks_url="https://a/k", setting="pst_issuers[3].jwks")
    assert info.value.setting == "pst_issuers[3].jwks"
    with pytest.raises(ConfigurationError, match="kid"):
        PSTIssuerConfig(ISSUER, keys=key_set.keys * 2)


@pytest.mark.parametrize(
    "url",
    ["ftp://issuer.example/k", "https:///k", "https://issuer.example:99999/k", "not a url"],
)  # fmt: skip
def test_a_hand_built_config_refuses_an_unfetchable_jwks_url(url: str) -> None:
    # Found here, at start-up, rather than by the refresher thread at the first fetch.
    with pytest.raises(ConfigurationError) as info:
        PSTIssuerConfig(ISSUER, jwks_url=url, setting="pst_issuers[0].jwks")
    assert info.value.setting == "pst_issuers[0].jwks"
    assert url not in info.value.message  # the query may hold a credential
