"""Every export is a version: export() publishes into a versioned root, keeps two versions and
cleans an old plain layout on its first versioned export."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from helpers.export.production import export
from helpers.export.versioned import CURRENT, plain_entries, resolve, versions
from tests.export_fixtures import TOP_N


def _export(world: dict, root: Path) -> dict:
    """Another export of the tiny world into ``root`` (its fits come from the model cache)."""
    return export(world["processed"], world["tables"], root, top_n=TOP_N, n_similar=5, seed=0, api_top_n=30)


def test_each_export_is_a_version_and_two_are_kept(export_built, tmp_path):
    root = tmp_path / "exports"
    first = _export(export_built, root)
    second = _export(export_built, root)
    v1, v2 = Path(first["path"]), Path(second["path"])
    assert v1 != v2 and v1.parent == v2.parent == root
    assert versions(root) == [v1, v2] and resolve(root) == v2  # current points at the second
    assert os.readlink(root / CURRENT) == v2.name  # relative
    assert (v1 / "manifest.json").is_file()  # the first is still there, complete
    assert json.loads((v2 / "manifest.json").read_text())["model_version"] == second["model_version"]
    assert "timings" in second and second["timings"]["total_s"] >= 0
    assert sorted(p.name for p in root.iterdir()) == sorted([v1.name, v2.name, CURRENT])
    third = _export(export_built, root)
    v3 = Path(third["path"])
    assert versions(root) == [v2, v3] and resolve(root) == v3 and not v1.exists()  # keep=2: the oldest dropped
    assert not [p for p in tmp_path.iterdir() if p.name != "exports"]  # no temporary folder left


def test_an_old_plain_layout_is_cleaned_on_the_first_versioned_export(export_built, tmp_path):
    root = tmp_path / "exports"
    shutil.copytree(export_built["out"], root)  # an export written before versioning: files in the root
    (root / ".gitkeep").write_text("")
    assert resolve(root) == root and (root / "manifest.json").exists() and plain_entries(root)
    res = _export(export_built, root)
    version = Path(res["path"])
    assert resolve(root) == version and (version / "recommendations.parquet").is_file()
    assert sorted(p.name for p in root.iterdir()) == sorted([".gitkeep", version.name, CURRENT])
    assert plain_entries(root) == [] and not list(root.glob(".plain-*"))
