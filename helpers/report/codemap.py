"""The book's "Code map": the ``helpers`` package tree, one line per module, read from the
module docstrings (their first sentence), so the page cannot drift from the code.

Modules are read with :mod:`ast` (nothing is imported). :func:`code_map` returns the rows
(``module``, ``depth``, ``summary``) in tree order: a package's ``__init__`` gives the
package's line, its modules follow it, sub-packages after the modules.
"""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path

import pandas as pd

import helpers
from helpers.report.display import SCROLL_CLASS

PACKAGE_DIR = Path(helpers.__file__).parent


def first_sentence(doc: str | None) -> str:
    """The docstring's first sentence (up to the first full stop followed by a space, within
    its first paragraph), whitespace collapsed; "" without a docstring."""
    if not doc:
        return ""
    para = re.split(r"\n\s*\n", doc.strip(), maxsplit=1)[0]
    para = re.sub(r"\s+", " ", para)
    m = re.match(r"(.+?\.)(\s|$)", para)
    return (m.group(1) if m else para).strip()


def docstring(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text())) or ""


def code_map(root: Path = PACKAGE_DIR, name: str = "helpers", depth: int = 0) -> pd.DataFrame:
    """Tree-ordered rows of the package at ``root``."""
    rows = [{"module": name, "depth": depth, "kind": "package",
             "summary": first_sentence(docstring(root / "__init__.py")) if (root / "__init__.py").exists() else ""}]
    for f in sorted(p for p in root.glob("*.py") if p.name != "__init__.py"):
        rows.append({"module": f"{name}.{f.stem}", "depth": depth + 1, "kind": "module",
                     "summary": first_sentence(docstring(f))})
    frames = [pd.DataFrame(rows)]
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        frames.append(code_map(sub, f"{name}.{sub.name}", depth + 1))
    return pd.concat(frames, ignore_index=True)


def _inline(text: str) -> str:
    """Escaped text with ``literal`` and :role:`name` shown as code."""
    text = re.sub(r":\w+:`([^`]+)`", r"``\1``", text)
    return re.sub(r"``(.+?)``", r"<code>\1</code>", html.escape(text))


def code_map_html(rows: pd.DataFrame) -> str:
    """The tree as an HTML table (module names indented by depth, summaries escaped)."""
    body = "".join(
        f'<tr><td style="padding-left: {0.2 + 1.2 * r.depth:.1f}em; white-space: nowrap;">'
        f"<code>{html.escape(r.module.rsplit('.', 1)[-1] if r.depth else r.module)}"
        f"{'/' if r.kind == 'package' else '.py'}</code></td><td>{_inline(r.summary)}</td></tr>"
        for r in rows.itertuples())
    return (f'<div class="{SCROLL_CLASS}" style="overflow-x: auto; max-width: 100%;"><table class="table '
            f'recbook-table recbook-codemap"><thead><tr><th>module</th><th>what it holds</th></tr></thead>'
            f"<tbody>{body}</tbody></table></div>")
