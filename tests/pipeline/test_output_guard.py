"""The session guard of tests/conftest.py: it sees files added, removed and changed."""

from __future__ import annotations

import os

from tests.conftest import output_changes, output_state


def test_output_state_sees_added_changed_and_removed_files_but_not_gitkeep(tmp_path):
    (tmp_path / "data" / "processed").mkdir(parents=True)
    (tmp_path / "data" / "processed" / ".gitkeep").write_text("")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "keep.csv").write_text("a")
    (tmp_path / "reports" / "gone.csv").write_text("a")
    before = output_state(tmp_path)
    assert set(before) == {"reports/keep.csv", "reports/gone.csv"}
    (tmp_path / "data" / "processed" / "split.json").write_text("{}")
    (tmp_path / "reports" / "gone.csv").unlink()
    (tmp_path / "reports" / "keep.csv").write_text("ab")
    os.utime(tmp_path / "data" / "processed" / ".gitkeep", ns=(1, 1))
    assert output_changes(before, output_state(tmp_path)) == [
        "added data/processed/split.json", "removed reports/gone.csv", "changed reports/keep.csv"]
    assert output_changes(before, before) == []
