"""What the book shows of each notebook cell, set by one rule (not by hand).

The book is a report: it shows prose and results, never code. :func:`tag_notebook` sets

* notebook metadata ``mystnb: {remove_code_source: true, remove_code_outputs: true}``: by
  default a code cell, including the ``injected-parameters`` cell papermill adds, is not
  rendered at all;
* the ``parameters`` cell: tags ``parameters`` and ``remove-cell``;
* a cell whose last statement is an expression (a table, a chart, a note: what the reader
  needs): tags ``remove-input`` and ``remove-stderr`` and the cell-level override
  ``mystnb: {remove_code_outputs: false}``, so its output is shown without its code;
* every other code cell (imports, set-up, glue): tag ``remove-cell``.

Outputs and execution counts are cleared: notebooks are committed without outputs.
``python -m helpers.report.cells notebooks/*.ipynb`` rewrites notebooks in place; the test
suite checks that every committed notebook is already in that form.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import nbformat

FILE_CONFIG = {"remove_code_source": True, "remove_code_outputs": True}
SHOW_TAGS = ["remove-input", "remove-stderr"]


def shows_output(source: str) -> bool:
    """True when the cell's last statement is an expression (its value is displayed)."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    return bool(body) and isinstance(body[-1], ast.Expr)


def tag_cell(cell) -> None:
    if cell.get("cell_type") != "code":
        return
    tags = [t for t in cell.get("metadata", {}).get("tags", []) if t == "parameters"]
    meta = {k: v for k, v in cell.get("metadata", {}).items() if k not in ("tags", "mystnb")}
    if tags:
        tags.append("remove-cell")
    elif shows_output("".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]):
        tags = list(SHOW_TAGS)
        meta["mystnb"] = {"remove_code_outputs": False}
    else:
        tags = ["remove-cell"]
    cell["metadata"] = {**meta, "tags": tags}
    cell["outputs"] = []
    cell["execution_count"] = None


def tag_notebook(nb) -> None:
    """Apply the rule above to every cell of ``nb`` (in place)."""
    nb.metadata["mystnb"] = dict(FILE_CONFIG)
    for cell in nb.cells:
        tag_cell(cell)


def rewrite(path) -> bool:
    """Tag one notebook file in place; True when it changed."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    tag_notebook(nb)
    after = nbformat.writes(nb)
    if after != before:
        path.write_text(after + ("" if after.endswith("\n") else "\n"))
    return after != before


def code_lines(nb) -> int:
    """Non-empty source lines of all code cells (the thin-notebook budget counts these)."""
    return sum(1 for c in nb.cells if c.cell_type == "code" for line in c.source.splitlines() if line.strip())


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(("tagged " if rewrite(p) else "unchanged ") + p)
