"""MkDocs hook (mkdocs.yml ``hooks:``): fills ``<!-- generated: NAME -->`` markers in pages
with references built from the code at build time (see ``docgen.py``), so the settings and
CLI references cannot drift from the code: there is no generated file to forget.

The repository root goes first on ``sys.path``, so the pages describe the checkout being
built, not whatever copy of ``pat_middleware`` happens to be installed. A marker with no
generator, or a generator that finds the docs and the code disagreeing, fails the build.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for path in (str(HERE), str(ROOT)):
    if path in sys.path:
        sys.path.remove(path)
    sys.path.insert(0, path)

import docgen  # noqa: E402 - after the path set-up above

if TYPE_CHECKING:
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files
    from mkdocs.structure.pages import Page

MARKER = re.compile(r"^<!-- generated: ([a-z0-9-]+) -->$", re.MULTILINE)


def fill(markdown: str) -> str:
    """``markdown`` with every marker replaced by its generated text."""
    return MARKER.sub(lambda m: docgen.generated(m.group(1)), markdown)


def on_pre_build(config: MkDocsConfig) -> None:
    """Rebuild the generated text on every build (``mkdocs serve`` rebuilds in-process)."""
    docgen.generated.cache_clear()


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    return fill(markdown)
