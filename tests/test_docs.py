"""The documentation site follows the code: every setting the loader accepts is documented
with the default it applies and the range it enforces, every command and option of the CLI
is in the generated reference, and the build is wired to regenerate both.

The generators live in docs/_gen/docgen.py and run at build time (the MkDocs hook in
docs/_gen/hooks.py); these tests hold them against the code, so a new setting without a line
in docs/_gen/settings.toml fails here, before the docs build would.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pat_middleware.errors import ConfigurationError
from pat_middleware.settings import ISSUER_KEYS, KNOWN_KEYS, Settings
from pat_middleware.settings.pst import PST_ISSUER_KEYS, PST_SETTINGS_KEYS
from pat_middleware.tokens.blind_rsa import IssuerKey

from ._origin import ISSUER, SECRET, issuer_entry

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_gen"))

import docgen  # noqa: E402 - docs/_gen is not a package
import hooks  # noqa: E402

SETTINGS_DOCS = docgen.read_settings_docs()


def _minimal(issuer_key: IssuerKey, **extra: Any) -> Settings:
    data: dict[str, Any] = {"issuers": [issuer_entry(ISSUER, issuer_key)], "secret": SECRET}
    data.update(extra)
    return Settings.from_mapping(data)


def _value(settings: Settings, attr: str) -> Any:
    value: Any = settings
    for part in attr.split("."):
        value = getattr(value, part)
    return value


# -- every key documented, nothing documented that is not a key ------------------------------


def test_every_setting_the_loader_accepts_is_documented() -> None:
    assert docgen.coverage_problems(SETTINGS_DOCS, docgen.code_keys()) == []
    assert set(SETTINGS_DOCS.settings) == set(KNOWN_KEYS)
    assert set(SETTINGS_DOCS.issuer) == set(ISSUER_KEYS)
    assert set(SETTINGS_DOCS.pst_issuer) == set(PST_ISSUER_KEYS)
    assert set(SETTINGS_DOCS.settings) >= PST_SETTINGS_KEYS


def test_a_setting_without_documentation_is_named() -> None:
    keys = docgen.code_keys()
    grown = docgen.SettingsKeys(keys.known | {"brand_new"}, keys.issuer, keys.pst_issuer)
    problems = docgen.coverage_problems(SETTINGS_DOCS, grown)
    assert problems == ["'brand_new' is accepted by the code but has no [setting.brand_new] entry"]
    shrunk = docgen.SettingsKeys(keys.known, keys.issuer - {"discover"}, keys.pst_issuer)
    assert docgen.coverage_problems(SETTINGS_DOCS, shrunk) == [
        "[issuer.discover] documents a key the code does not accept"
    ]


def test_the_generated_reference_has_a_row_per_key() -> None:
    text = docgen.render_settings()
    for key in KNOWN_KEYS:
        assert re.search(rf"^\| `{re.escape(key)}` \|", text, re.MULTILINE), key
    issuer_rows = docgen.render_issuer_keys()
    for key in ISSUER_KEYS:
        assert f"| `{key}` |" in issuer_rows
    pst_rows = docgen.render_pst_issuer_keys()
    for key in PST_ISSUER_KEYS:
        assert f"| `{key}` |" in pst_rows


def test_every_validated_field_is_filled_by_a_documented_setting() -> None:
    """A new field on Settings (or its nested options) needs a setting that fills it."""
    import dataclasses

    def leaves(cls: type[Any], prefix: str = "") -> Iterator[str]:
        for f in dataclasses.fields(cls):
            if f.name.startswith("_"):
                continue
            if f.default_factory is not dataclasses.MISSING:
                made = f.default_factory()
                if dataclasses.is_dataclass(made):
                    yield from leaves(type(made), prefix + f.name + ".")
                    continue
            yield prefix + f.name

    documented = {d.attr for d in SETTINGS_DOCS.settings.values() if d.attr}
    assert set(leaves(Settings)) - documented == set()


# -- the defaults and ranges shown are the ones the loader applies ----------------------------


@pytest.mark.parametrize("key", sorted(k for k, d in SETTINGS_DOCS.settings.items() if d.attr))
def test_documented_default_is_what_the_loader_applies(key: str, issuer_key: IssuerKey) -> None:
    doc = SETTINGS_DOCS.settings[key]
    assert doc.attr is not None
    expected = docgen.field_default(Settings, doc.attr)
    if key in {"issuers", "secret"}:
        assert expected is docgen._MISSING  # required: no default to apply
        return
    assert _value(_minimal(issuer_key), doc.attr) == expected


def _range_cases() -> list[tuple[str, Any, bool]]:
    cases: list[tuple[str, Any, bool]] = []
    for key, doc in sorted(SETTINGS_DOCS.settings.items()):
        if doc.range is not None:
            low, high = doc.range
            cases += [(key, low, True), (key, high, True)]
            cases += [(key, low - 1, False), (key, high + 1, False)]
        cases += [(key, value, True) for value in doc.valid]
        cases += [(key, value, False) for value in doc.invalid]
    return cases


@pytest.mark.parametrize(("key", "value", "accepted"), _range_cases())
def test_documented_range_is_what_the_loader_enforces(
    key: str, value: Any, accepted: bool, issuer_key: IssuerKey
) -> None:
    extra = {**SETTINGS_DOCS.settings[key].check_with, key: value}
    if accepted:
        _minimal(issuer_key, **extra)
    else:
        with pytest.raises(ConfigurationError) as raised:
            _minimal(issuer_key, **extra)
        assert raised.value.setting == key


def test_defaults_are_written_as_in_a_settings_file() -> None:
    assert docgen.literal(True) == "true"
    assert docgen.literal(5.0) == "5"
    assert docgen.literal(frozenset({2})) == "[2]"
    assert docgen.literal(()) == "[]"
    assert docgen.literal('say "hi"') == '"say \\"hi\\""'
    text = docgen.render_settings()
    assert "| `max_age` | int seconds (1 to 86400) | `60` |" in text
    assert "| `redemption_context` |" in text and '`"per-session"`' in text
    assert "| `directory_key_grace` | int seconds (0 to 30 days) | `600` |" in text


# -- the CLI reference -------------------------------------------------------------------------


def test_cli_reference_has_every_command_and_option() -> None:
    parser = docgen.find_build_parser()()
    text = docgen.render_cli()
    commands = docgen.subcommands(parser)
    assert {"keygen", "verify", "inspect", "issuer", "origin", "demo"} <= set(commands)
    for name, (_, sub) in commands.items():
        assert f"### `{name}` {{ #{name} }}" in text, name
        section = text.split(f"### `{name}`", 1)[1].split("\n### ", 1)[0]
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            positional = str(action.metavar or action.dest)
            spelled = action.option_strings[0] if action.option_strings else positional
            assert f"`{spelled}" in section, (name, spelled)
            if action.help:
                first_words = " ".join(action.help.split()[:3])
                assert first_words in section, (name, spelled)


def test_cli_reference_shows_defaults_and_required() -> None:
    text = docgen.render_cli()
    assert "| `--port PORT` | `8001` |" in text
    assert "| `--name NAME` | required |" in text
    assert "at most one of this and `--issuer-directory`" in text


# -- the build is wired to all of it -----------------------------------------------------------


def test_mkdocs_yml_registers_the_hook_and_every_page() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert re.search(r"^hooks:\n  - docs/_gen/hooks\.py$", config, re.MULTILINE)
    assert re.search(r"^strict: true$", config, re.MULTILINE)
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if "_gen" not in p.parts}
    in_nav = set(re.findall(r":\s+([\w/.-]+\.md)$", config, re.MULTILINE))
    assert pages == in_nav


def test_every_marker_in_the_pages_has_a_generator() -> None:
    used: set[str] = set()
    for page in DOCS.rglob("*.md"):
        used |= set(hooks.MARKER.findall(page.read_text(encoding="utf-8")))
    assert used == set(docgen.GENERATORS)


def test_hook_fills_markers_and_refuses_unknown_ones() -> None:
    filled = hooks.fill("before\n<!-- generated: issuer-keys -->\nafter")
    assert "| `token_key` |" in filled and "generated:" not in filled
    with pytest.raises(docgen.DocsError, match="unknown generated block"):
        hooks.fill("<!-- generated: nothing-here -->")
