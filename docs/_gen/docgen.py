"""The generated parts of the documentation: the settings reference and the CLI reference.

Both are read from the code being documented, at build time, by the MkDocs hook beside this
file (``hooks.py``), which replaces ``<!-- generated: NAME -->`` markers in the pages:

* ``settings``, ``issuer-keys``, ``pst-issuer-keys``: the settings tables. The key lists come
  from the loader (``KNOWN_KEYS``, ``ISSUER_KEYS``, ``PST_ISSUER_KEYS``), each default from
  the dataclass field that holds the validated value (``settings/model.py``), the type in
  words and the meaning from ``settings.toml`` beside this file.
* ``cli``: every subcommand of ``pat-middleware`` with its usage, options, defaults and help,
  from the argparse parser itself.

``tests/test_docs.py`` holds the generated text against the code: a setting without an
entry in ``settings.toml`` (or an entry for no setting) fails there and fails the build.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import functools
import importlib
import pkgutil
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SETTINGS_DOCS = HERE / "settings.toml"
#: Where the parser is looked for, in order; then every other module under the package.
CLI_PACKAGE = "pat_middleware.cli"
CLI_MODULES = ("pat_middleware.cli", "pat_middleware.cli.commands")
DAY = 86400
#: The cell of a setting or option with no default: an en dash, as the docs' tables write it.
NONE = "\u2013"


class DocsError(Exception):
    """The documentation does not match the code; the message says what to write where."""


# -- settings ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SettingDoc:
    """One documented key: a top-level setting or a key of an entry in a list of tables."""

    name: str
    type: str
    meaning: str
    attr: str | None = None
    default: str | None = None
    range: tuple[int, int] | None = None
    valid: tuple[Any, ...] = ()
    invalid: tuple[Any, ...] = ()
    check_with: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SettingsDocs:
    """``settings.toml``, read."""

    groups: tuple[tuple[str, tuple[str, ...]], ...]
    settings: Mapping[str, SettingDoc]
    issuer: Mapping[str, SettingDoc]
    pst_issuer: Mapping[str, SettingDoc]


def _entries(table: Mapping[str, Any], where: str) -> dict[str, SettingDoc]:
    out: dict[str, SettingDoc] = {}
    known = {f.name for f in dataclasses.fields(SettingDoc)}
    for name, raw in table.items():
        unknown = sorted(set(raw) - known)
        if unknown:
            raise DocsError(f"{SETTINGS_DOCS.name}: [{where}.{name}] has unknown key {unknown[0]}")
        for required in ("type", "meaning"):
            if not isinstance(raw.get(required), str) or not raw[required].strip():
                raise DocsError(f"{SETTINGS_DOCS.name}: [{where}.{name}] needs {required} = '...'")
        low_high = raw.get("range")
        out[name] = SettingDoc(
            name=name,
            type=raw["type"],
            meaning=raw["meaning"],
            attr=raw.get("attr"),
            default=raw.get("default"),
            range=(int(low_high[0]), int(low_high[1])) if low_high is not None else None,
            valid=tuple(raw.get("valid", ())),
            invalid=tuple(raw.get("invalid", ())),
            check_with=dict(raw.get("check_with", {})),
        )
    return out


def read_settings_docs(path: Path = SETTINGS_DOCS) -> SettingsDocs:
    """The hand-written half of the settings reference."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    groups = tuple((g["title"], tuple(g["keys"])) for g in data.get("group", []))
    return SettingsDocs(
        groups=groups,
        settings=_entries(data.get("setting", {}), "setting"),
        issuer=_entries(data.get("issuer", {}), "issuer"),
        pst_issuer=_entries(data.get("pst_issuer", {}), "pst_issuer"),
    )


@dataclass(frozen=True, slots=True)
class SettingsKeys:
    """The keys the code accepts, read from the loader."""

    known: frozenset[str]
    issuer: frozenset[str]
    pst_issuer: frozenset[str]


def code_keys() -> SettingsKeys:
    """``KNOWN_KEYS`` and ``ISSUER_KEYS`` as the settings package exports them, and the keys
    of a ``pst_issuers`` entry."""
    settings = importlib.import_module("pat_middleware.settings")
    pst = importlib.import_module("pat_middleware.settings.pst")
    return SettingsKeys(
        known=frozenset(settings.KNOWN_KEYS),
        issuer=frozenset(settings.ISSUER_KEYS),
        pst_issuer=frozenset(pst.PST_ISSUER_KEYS),
    )


def coverage_problems(docs: SettingsDocs, keys: SettingsKeys) -> list[str]:
    """Every way ``docs`` and the code disagree on which keys exist (empty: none)."""
    problems: list[str] = []

    def compare(code: frozenset[str], documented: Iterable[str], table: str) -> None:
        for key in sorted(code - set(documented)):
            problems.append(f"{key!r} is accepted by the code but has no [{table}.{key}] entry")
        for key in sorted(set(documented) - code):
            problems.append(f"[{table}.{key}] documents a key the code does not accept")

    compare(keys.known, docs.settings, "setting")
    compare(keys.issuer, docs.issuer, "issuer")
    compare(keys.pst_issuer, docs.pst_issuer, "pst_issuer")
    grouped = [key for _, group in docs.groups for key in group]
    for key in sorted(set(docs.settings) - set(grouped)):
        problems.append(f"setting {key!r} is in no [[group]] of {SETTINGS_DOCS.name}")
    for key in sorted({k for k in grouped if grouped.count(k) > 1}):
        problems.append(f"setting {key!r} is in more than one [[group]]")
    for key in sorted(set(grouped) - set(docs.settings)):
        problems.append(f"[[group]] lists {key!r}, which has no [setting.{key}] entry")
    return problems


_MISSING = object()


def field_default(root: type[Any], attr: str) -> Any:
    """The default of the dataclass field at ``attr`` (``"cookies.secure"``) below ``root``,
    following nested dataclasses through their default factories; ``_MISSING`` when the
    field has none."""
    cls: Any = root
    parts = attr.split(".")
    for i, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            raise DocsError(f"{cls.__name__} has no field {part!r} (attr = {attr!r})")
        found = fields[part]
        if found.default is not dataclasses.MISSING:
            value: Any = found.default
        elif found.default_factory is not dataclasses.MISSING:
            value = found.default_factory()
        else:
            value = _MISSING
        if i == len(parts) - 1:
            return value
        if value is _MISSING or not dataclasses.is_dataclass(value):
            raise DocsError(f"{attr!r}: {part!r} is not a dataclass with a default")
        cls = type(value)
    return _MISSING  # pragma: no cover - the loop returns


def literal(value: Any) -> str:
    """A default as it would be written in the TOML settings file."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, frozenset | set):
        value = sorted(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    raise DocsError(f"cannot write a default of type {type(value).__name__}")


def default_text(doc: SettingDoc, root: type[Any] | None) -> str:
    """The default column: the text given, else the field's default, else required / none."""
    if doc.default is not None:
        return doc.default
    if doc.attr is None or root is None:
        return NONE
    value = field_default(root, doc.attr)
    if value is _MISSING:
        return "required"
    if value is None:
        return "none"
    return f"`{literal(value)}`"


def _span(seconds: int) -> str:
    if seconds >= 2 * DAY and seconds % DAY == 0:
        return f"{seconds // DAY} days"
    return str(seconds)


def type_text(doc: SettingDoc) -> str:
    """The type column, with the range the loader enforces."""
    if doc.range is None:
        return doc.type
    low, high = doc.range
    if "seconds" in doc.type:
        low_text, high_text = _span(low), _span(high)
    else:
        low_text, high_text = str(low), str(high)
    return f"{doc.type} ({low_text} to {high_text})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(docs: Iterable[SettingDoc], root: type[Any] | None, first: str = "setting") -> list[str]:
    lines = [f"| {first} | type | default | meaning |", "|---|---|---|---|"]
    for doc in docs:
        cells = (f"`{doc.name}`", type_text(doc), default_text(doc, root), doc.meaning)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def settings_root() -> type[Any]:
    return importlib.import_module("pat_middleware.settings.model").Settings  # type: ignore[no-any-return]


def issuer_root() -> type[Any]:
    return importlib.import_module("pat_middleware.settings.model").IssuerConfig  # type: ignore[no-any-return]


def _checked_docs() -> SettingsDocs:
    docs = read_settings_docs()
    problems = coverage_problems(docs, code_keys())
    if problems:
        raise DocsError(
            "the settings reference does not match the code; edit docs/_gen/settings.toml:\n  "
            + "\n  ".join(problems)
        )
    return docs


def render_settings() -> str:
    """Every top-level setting, in the groups of ``settings.toml``."""
    docs = _checked_docs()
    root = settings_root()
    out: list[str] = []
    for title, keys in docs.groups:
        out += [f"### {title}", ""]
        out += _table((docs.settings[k] for k in keys), root)
        out.append("")
    return "\n".join(out)


def render_issuer_keys() -> str:
    """The keys of one entry of ``issuers``."""
    docs = _checked_docs()
    return "\n".join(_table(docs.issuer.values(), issuer_root(), first="key")) + "\n"


def render_pst_issuer_keys() -> str:
    """The keys of one entry of ``pst_issuers``."""
    docs = _checked_docs()
    return "\n".join(_table(docs.pst_issuer.values(), None, first="key")) + "\n"


# -- command line ------------------------------------------------------------------------------


def find_build_parser() -> Callable[[], argparse.ArgumentParser]:
    """``build_parser`` of the command line: from :mod:`pat_middleware.cli` (or its
    ``commands`` module, where it lives today), else from whichever module under the package
    defines it, so a split of the CLI into modules does not break the docs."""
    for name in CLI_MODULES:
        found = getattr(importlib.import_module(name), "build_parser", None)
        if callable(found):
            return found  # type: ignore[no-any-return]
    package = importlib.import_module(CLI_PACKAGE)
    for info in pkgutil.walk_packages(package.__path__, CLI_PACKAGE + "."):
        if info.name.endswith("__main__"):
            continue
        found = getattr(importlib.import_module(info.name), "build_parser", None)
        if callable(found):
            return found  # type: ignore[no-any-return]
    raise DocsError(f"no build_parser() under {CLI_PACKAGE}: the CLI reference cannot be built")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """Each subcommand's name, one-line help and parser, in the order they were added."""
    out: dict[str, tuple[str, argparse.ArgumentParser]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                out[name] = (helps.get(name, ""), sub)
    return out


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(prog, width=88, max_help_position=30)


def _option_name(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """How the argument is written: ``--out OUT``, ``--bits {2048,4096}``, ``value``."""
    return f"`{_formatter(parser.prog)._format_action_invocation(action)}`"


def _default(action: argparse.Action) -> str:
    if action.required:
        return "required"
    default = action.default
    if action.nargs == 0 or default is None or default is argparse.SUPPRESS:
        return NONE
    return f"`{default}`"


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    text = ""
    if action.help and action.help is not argparse.SUPPRESS:
        text = _formatter(parser.prog)._expand_help(action)
        text = " ".join(text.split())
    extra: list[str] = []
    if isinstance(action, argparse._AppendAction) and "repeatable" not in text:
        extra.append("repeatable")
    groups = [g for g in parser._mutually_exclusive_groups if action in g._group_actions]
    for group in groups:
        others = [
            a.option_strings[0]
            for a in group._group_actions
            if a is not action and a.option_strings
        ]
        need = "exactly one" if group.required else "at most one"
        extra.append(f"{need} of this and " + ", ".join(f"`{o}`" for o in others))
    return "; ".join(p for p in (text, *extra) if p)


def render_cli() -> str:
    """One section per subcommand: usage, then its arguments and options."""
    parser = find_build_parser()()
    parser.formatter_class = _formatter
    out = [
        f"`{parser.prog}`: {parser.description or ''}".rstrip(),
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    commands = subcommands(parser)
    if not commands:
        raise DocsError("the CLI parser has no subcommands")
    for name, (summary, _) in commands.items():
        out.append(f"| [`{name}`](#{name}) | {_cell(summary)} |")
    out.append("")
    for name, (summary, sub) in commands.items():
        sub.formatter_class = _formatter
        out += [f"### `{name}` {{ #{name} }}", "", summary[:1].upper() + summary[1:] + ".", ""]
        out += ["```text", sub.format_usage().strip(), "```", ""]
        actions = [a for a in sub._actions if not isinstance(a, argparse._HelpAction)]
        if actions:
            out += ["| argument | default | meaning |", "|---|---|---|"]
            for action in actions:
                cells = (_option_name(sub, action), _default(action), _help(sub, action))
                out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
            out.append("")
    return "\n".join(out)


#: Marker name -> generator, as pages write them: ``<!-- generated: NAME -->``.
GENERATORS: dict[str, Callable[[], str]] = {
    "settings": render_settings,
    "issuer-keys": render_issuer_keys,
    "pst-issuer-keys": render_pst_issuer_keys,
    "cli": render_cli,
}


@functools.cache
def generated(name: str) -> str:
    """The text for one marker (built once per process)."""
    if name not in GENERATORS:
        raise DocsError(f"unknown generated block {name!r}; known: {sorted(GENERATORS)}")
    return GENERATORS[name]()
