"""Thin notebooks: a line budget, one parameters cell, no outputs in git, tags set by the helper."""

from __future__ import annotations

import copy

import nbformat
import pytest

from helpers import config
from helpers.report import cells

MAX_CODE_LINES = 40
NOTEBOOKS = sorted(config.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def test_there_are_nine_notebooks():
    assert len(NOTEBOOKS) == 9


def test_code_lines_counts_non_empty_code_lines_only():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a = 1\n\n   \nb = 2"),
                                         nbformat.v4.new_markdown_cell("text\nmore"),
                                         nbformat.v4.new_code_cell("# a comment counts")])
    assert cells.code_lines(nb) == 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_thin(path):
    nb = nbformat.read(path, as_version=4)
    assert cells.code_lines(nb) <= MAX_CODE_LINES, f"{path.name}: {cells.code_lines(nb)} code lines"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_no_outputs_and_helper_tags(path):
    nb = nbformat.read(path, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and params[0].cell_type == "code"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    tagged = copy.deepcopy(nb)
    cells.tag_notebook(tagged)
    assert nbformat.writes(tagged) == nbformat.writes(nb), (
        f"run `python -m helpers.report.cells {path.relative_to(config.PROJECT_ROOT)}`")


def test_tag_rule():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import os\ny = 2"),
        nbformat.v4.new_code_cell("show(y)"),
        nbformat.v4.new_code_cell("for i in range(2):\n    pass")])
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="x")]
    cells.tag_notebook(nb)
    tags = [c.metadata["tags"] for c in nb.cells]
    assert tags == [["parameters", "remove-cell"], ["remove-cell"], ["remove-input", "remove-stderr"], ["remove-cell"]]
    assert nb.cells[2].metadata["mystnb"] == {"remove_code_outputs": False} and nb.cells[2].outputs == []
    assert nb.metadata["mystnb"] == {"remove_code_source": True, "remove_code_outputs": True}
    assert cells.shows_output("a = 1\na") and not cells.shows_output("a = 1") and not cells.shows_output("def (")
