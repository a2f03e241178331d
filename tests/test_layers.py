"""The package's layout, held against the code: layers, cycles, framework imports, sizes.

Data flows one way: integrations -> policy -> settings, discovery, stores, tokens -> core ->
errors. The issuer roles and the command line sit beside the request path: they may use it,
nothing on it may import them. These tests read the source (no import runs), so they cover
lazy imports inside functions as well.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pat_middleware"

#: Layer of each top-level part: a module may import its own part and lower layers only.
RANK = {
    "errors": 0,
    "_version": 0,
    "core": 1,
    "tokens": 2,
    "stores": 3,
    "settings": 4,
    "discovery": 5,
    "policy": 6,
    "integrations": 7,
}
#: Beside the request path: may import any layer, and are imported by no layer.
BESIDE = {"issuer": 8, "cli": 9}
#: Integrations on the client side of the exchange: they obtain tokens as a browser would, so
#: they sit beside the request path with the issuer roles and may use them (not the CLI); no
#: module on the request path imports them.
CLIENT_SIDE = (
    "integrations._client",
    "integrations.httpx_auth",
    "integrations.requests_auth",
    "integrations.pytest_plugin",
    "integrations.testing",
)
#: Third-party packages that only integrations (and the CLI's and issuer's own servers) use.
FRAMEWORKS = {
    "starlette",
    "fastapi",
    "flask",
    "werkzeug",
    "django",
    "rest_framework",
    "drf_spectacular",
    "litestar",
    "uvicorn",
    "gunicorn",
    "httpx",
    "requests",
    "pytest",
    "_pytest",
    "redis",
    "prometheus_client",
    "opentelemetry",
    "pymemcache",
}
#: Where each framework may be imported beyond integrations/ (module path prefixes).
FRAMEWORK_HOMES = {
    "httpx": ("discovery.refresher", "issuer.client", "cli."),
    "redis": ("stores.redis", "stores.redis_cluster"),
    "pymemcache": ("stores.",),
    "starlette": ("issuer.server", "issuer.pst_server", "cli."),
    "uvicorn": ("cli.",),
}
MAX_MODULE_LINES = 600
MAX_CLASS_LINES = 300


@dataclass(frozen=True)
class Import:
    module: str  # importing module, dotted, without the package name
    target: str  # imported module, absolute dotted name
    lazy: bool  # inside a function or a TYPE_CHECKING block
    line: int


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def _imports() -> Iterator[Import]:
    for module, path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        lazy_nodes: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or (
                isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            ):
                lazy_nodes.update(id(n) for n in ast.walk(node) if n is not node)
        for node in ast.walk(tree):
            lazy = id(node) in lazy_nodes
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(module, alias.name, lazy, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    target = ".".join(["pat_middleware", *base, *filter(None, [node.module])])
                else:
                    target = node.module or ""
                yield Import(module, target, lazy, node.lineno)
                if target.startswith("pat_middleware"):
                    for alias in node.names:  # ``from . import submodule``
                        sub = f"{target}.{alias.name}"
                        if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists():
                            yield Import(module, sub, lazy, node.lineno)


def _part(module: str) -> str:
    return module.split(".")[0] if module else ""


def _own(target: str) -> str | None:
    """The package-relative name of an import of pat_middleware, else None."""
    if target == "pat_middleware":
        return ""
    if target.startswith("pat_middleware."):
        return target.removeprefix("pat_middleware.")
    return None


IMPORTS = list(_imports())


def test_each_layer_imports_only_layers_below_it() -> None:
    wrong = []
    for imp in IMPORTS:
        target = _own(imp.target)
        if target is None or imp.module == "":
            continue  # third party, or the curated top-level API
        mine, theirs = _part(imp.module), _part(target)
        if imp.module in CLIENT_SIDE and theirs == "issuer":
            continue
        if mine == theirs or theirs == "":
            if theirs == "" and mine in RANK:
                wrong.append(f"{imp.module}:{imp.line} imports the top-level package")
            continue
        if mine in BESIDE:
            if theirs in BESIDE and BESIDE[theirs] > BESIDE[mine]:
                wrong.append(f"{imp.module}:{imp.line} -> {target}")
            continue
        if theirs in BESIDE:
            wrong.append(f"{imp.module}:{imp.line} -> {target} (beside the request path)")
        elif RANK[theirs] >= RANK[mine]:
            wrong.append(f"{imp.module}:{imp.line} -> {target} (a layer up or beside)")
    assert wrong == []


def test_client_side_integrations_are_imported_only_beside_the_request_path() -> None:
    wrong = [
        f"{imp.module}:{imp.line} -> {imp.target}"
        for imp in IMPORTS
        if (_own(imp.target) or "") in CLIENT_SIDE
        and imp.module not in CLIENT_SIDE
        and _part(imp.module) != "cli"
    ]
    assert wrong == []


def test_no_import_cycles_between_modules() -> None:
    graph: dict[str, set[str]] = {}
    for imp in IMPORTS:
        target = _own(imp.target)
        if target is None or imp.lazy or target == imp.module:
            continue
        if imp.module.startswith(target + ".") or target == "":
            continue  # a module importing its own package's __init__
        graph.setdefault(imp.module, set()).add(target)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # A package __init__ re-exporting its own submodules is not a cycle.
    real = [c for c in cycles if len({_part(m) for m in c}) > 1 or len(c) > 2]
    real = [c for c in real if not all(m.startswith(c[0].split(".")[0]) for m in c)]
    assert real == []


def test_frameworks_are_imported_only_under_integrations() -> None:
    wrong = []
    for imp in IMPORTS:
        top = imp.target.split(".")[0]
        if top not in FRAMEWORKS or imp.module.startswith("integrations"):
            continue
        homes = FRAMEWORK_HOMES.get(top, ())
        if any(imp.module == h or imp.module.startswith(h) for h in homes):
            continue
        wrong.append(f"{imp.module}:{imp.line} imports {imp.target}")
    assert wrong == []


@pytest.mark.parametrize(
    "module",
    ["pat_middleware", "pat_middleware.core", "pat_middleware.policy", "pat_middleware.settings"],
)
def test_importing_the_request_path_loads_no_framework_issuer_or_cli(module: str) -> None:
    import subprocess

    code = (
        f"import sys, {module}\n"
        f"beside = ('pat_middleware.issuer', 'pat_middleware.cli')\n"
        "names = [m for m in sys.modules if m.split('.')[0] in "
        f"{sorted(FRAMEWORKS)!r} or m.startswith(beside)]\n"
        "print(','.join(sorted(names)))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == ""


def test_no_assert_in_library_code() -> None:
    found = []
    for module, path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assert):
                found.append(f"{module}:{node.lineno}")
    assert found == []


def test_modules_and_classes_stay_small() -> None:
    big = []
    for module, path in _modules():
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines > MAX_MODULE_LINES:
            big.append(f"{module}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                size = node.end_lineno - node.lineno + 1
                if size > MAX_CLASS_LINES:
                    big.append(f"{module}.{node.name}: {size} lines")
    assert big == []


def test_every_exception_derives_from_the_one_base() -> None:
    """The framework integrations raise their framework's HTTP exceptions (so it renders
    them); those, like every other exception of the package, are PrivateTokenErrors too.
    Checked in a child process: importing Django's modules needs Django configured."""
    import subprocess

    modules = [m for m, _ in _modules() if not m.endswith("__main__")]
    code = f"""
import importlib, inspect
import django
from django.conf import settings
settings.configure(INSTALLED_APPS=["rest_framework"])
django.setup()
from pat_middleware.errors import PrivateTokenError
stray = []
for module in {modules!r}:
    loaded = importlib.import_module("pat_middleware." + module if module else "pat_middleware")
    for name, obj in vars(loaded).items():
        if (inspect.isclass(obj) and issubclass(obj, BaseException)
                and obj.__module__ == loaded.__name__
                and not issubclass(obj, PrivateTokenError)):
            stray.append(module + "." + name)
print(",".join(stray))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == ""
