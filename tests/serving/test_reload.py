"""Versioned export folders, reload (admin endpoint, periodic check, SIGHUP), deleted and overwritten files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from helpers.export.production import export
from helpers.export.versioned import CURRENT, publish, resolve, versions
from tests.export_fixtures import TOP_N
from tests.serving.conftest import make_client

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


def _variant(src: Path, dst: Path, version: str) -> int:
    """A copy of an export with another model version whose first customer's list lost its first item;
    returns that customer."""
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["model_version"] = version
    (dst / "manifest.json").write_text(json.dumps(manifest))
    top = pd.read_parquet(dst / "model" / "top_all.parquet")
    cid = top["customer_id"].iloc[0]
    top = top.drop(index=top.index[0])
    top.loc[top["customer_id"] == cid, "rank"] -= 1
    top.to_parquet(dst / "model" / "top_all.parquet", index=False)
    return int(cid)


def _first(client, cid) -> int:
    return client.get(f"/customers/{cid}/recommendations", params={"k": 3}).json()["items"][0]["product_id"]


def test_publish_switches_current_and_keeps_the_previous(export_world, tmp_path):
    root = tmp_path / "exports"
    assert resolve(root) == root  # plain layout (nothing published): the root itself
    names = []
    for i in range(4):
        staged = tmp_path / f"staged{i}"
        shutil.copytree(export_world["out"], staged)
        target = publish(staged, root)
        names.append(target.name)
        assert not staged.exists() and resolve(root) == target and (root / CURRENT).is_symlink()
        assert os.readlink(root / CURRENT) == target.name  # relative: the root can move
    assert [p.name for p in versions(root)] == names[-2:]  # the new one and the previous one
    assert all(n.endswith(export_world["manifest"]["model_version"]) for n in names)
    assert sorted(p.name for p in root.iterdir()) == sorted(names[-2:] + [CURRENT])  # no temporary link left
    half = tmp_path / "half"
    half.mkdir()
    with pytest.raises(FileNotFoundError, match="not a complete export"):
        publish(half, root)
    assert resolve(root).name == names[-1]


def test_publish_then_reload_serves_the_new_version(export_world, tmp_path):
    root = tmp_path / "exports"
    staged = tmp_path / "v1"
    shutil.copytree(export_world["out"], staged)
    publish(staged, root)
    with make_client(root) as c:
        old = c.get("/health").json()
        assert old["model_version"] == export_world["manifest"]["model_version"]
        cid = _variant(resolve(root), tmp_path / "v2", "newversion01")
        before = _first(c, cid)
        new_folder = publish(tmp_path / "v2", root)
        assert c.get("/health").json()["model_version"] == old["model_version"]  # until reloaded
        r = c.post("/admin/reload")
        assert r.status_code == 200 and r.json()["model_version"] == "newversion01"
        h = c.get("/health").json()
        assert h["model_version"] == "newversion01" and h["export_dir"] == str(new_folder) and h["reloads"] == 2
        assert _first(c, cid) != before  # the lists changed (the answer cache did not keep the old one)


def test_periodic_check_picks_up_a_published_version(export_world, tmp_path):
    root = tmp_path / "exports"
    shutil.copytree(export_world["out"], tmp_path / "v1")
    publish(tmp_path / "v1", root)
    _variant(resolve(root), tmp_path / "v2", "periodic0002")
    with make_client(root, reload_seconds=0.2) as c:
        publish(tmp_path / "v2", root)
        deadline = time.monotonic() + 20
        while c.get("/health").json()["model_version"] != "periodic0002" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert c.get("/health").json()["model_version"] == "periodic0002"


def test_reload_follows_an_export_into_the_served_root(export_world, tmp_path):
    """``export()`` publishes a version into the root a server watches: the server loads it, and the
    root never stops holding a complete export (the previous version stays)."""
    root = tmp_path / "exports"
    shutil.copytree(export_world["out"], tmp_path / "v1")
    first = publish(tmp_path / "v1", root)
    with make_client(root, reload_seconds=0.2) as c:
        assert c.get("/health").json()["export_dir"] == str(first)
        res = export(export_world["processed"], export_world["tables"], root, top_n=TOP_N, n_similar=5, seed=0,
                     api_top_n=30)
        new_folder = Path(res["path"])
        assert resolve(root) == new_folder and versions(root) == [first, new_folder]
        deadline = time.monotonic() + 20
        while c.get("/health").json()["export_dir"] != str(new_folder) and time.monotonic() < deadline:
            time.sleep(0.1)  # the periodic check sees current switch
        h = c.get("/health").json()
        assert h["export_dir"] == str(new_folder) and h["reloads"] == 2 and h["status"] == "ok"
        assert h["model_version"] == res["model_version"]
        r = c.post("/admin/reload")  # nothing new: the same version stays served
        assert r.status_code == 200 and r.json()["export_dir"] == str(new_folder)


def test_a_broken_new_version_keeps_the_old_one(export_world, tmp_path):
    root = tmp_path / "exports"
    shutil.copytree(export_world["out"], tmp_path / "v1")
    publish(tmp_path / "v1", root)
    shutil.copytree(export_world["out"], tmp_path / "v2")
    (tmp_path / "v2" / "model" / "top_all.parquet").write_bytes(b"PAR1 truncated")
    with make_client(root) as c:
        publish(tmp_path / "v2", root)
        h = c.post("/admin/reload").json()
        assert h["model_version"] == export_world["manifest"]["model_version"] and h["reload_error"]
        assert c.get("/customers/1/recommendations").status_code in (200, 404)


def test_deleted_export_makes_health_degraded(export_world, tmp_path):
    folder = tmp_path / "exports"
    shutil.copytree(export_world["out"], folder)
    cid = int(pd.read_parquet(folder / "recommendations.parquet")["customer_id"].iloc[0])
    with make_client(folder) as c:
        assert c.get("/health").status_code == 200
        shutil.rmtree(folder)
        r = c.get("/health")
        assert r.status_code == 503 and r.json()["status"] == "degraded" and "gone" in r.json()["reason"]
        assert c.get(f"/customers/{cid}/recommendations").status_code == 200  # still served from memory
    with make_client(tmp_path / "missing") as c:  # nothing to load: up, but degraded and saying so
        r = c.get("/health")
        assert r.status_code == 503 and r.json()["reason"] == "no export loaded"
        assert c.get(f"/customers/{cid}/recommendations").status_code == 503


def test_files_overwritten_in_place_change_nothing_served(export_world, tmp_path):
    """``cp`` over a served file rewrites it in place (same inode): no memory map may see it."""
    folder = tmp_path / "exports"
    shutil.copytree(export_world["out"], folder)
    rec = pd.read_parquet(folder / "recommendations.parquet")
    cid, basket = int(rec["customer_id"].iloc[0]), rec["product_id"].drop_duplicates().tolist()[:3]
    with make_client(folder, cache_bytes=0) as c:
        before = (c.get(f"/customers/{cid}/recommendations").json(),
                  c.post("/recommendations", json={"product_ids": basket}).json()["items"])
        for path in [p for p in folder.rglob("*") if p.is_file() and p.suffix in (".npy", ".npz", ".parquet")]:
            size = path.stat().st_size
            with open(path, "r+b") as f:  # in place, like cp: truncate and write
                f.truncate(0)
                f.write(b"\0" * min(size, 64))
        after = (c.get(f"/customers/{cid}/recommendations").json(),
                 c.post("/recommendations", json={"product_ids": basket}).json()["items"])
        assert after[0] == before[0]
        assert [i["product_id"] for i in after[1]] == [i["product_id"] for i in before[1]]


def test_an_export_changed_while_loading_is_read_again(export_world, tmp_path, monkeypatch):
    from helpers.serving import store as store_mod
    from helpers.serving.reload import StoreHolder

    folder = tmp_path / "exports"
    shutil.copytree(export_world["out"], folder)
    real = store_mod.ExportStore._load
    calls = []

    def load_while_touched(self):
        real(self)
        calls.append(1)
        if len(calls) <= 2:  # another writer rewrites a file during the first two loads
            os.utime(folder / "model" / "hybrid.json", ns=(len(calls), len(calls)))

    monkeypatch.setattr(store_mod.ExportStore, "_load", load_while_touched)
    with pytest.raises(store_mod.ExportChanged):
        store_mod.ExportStore(folder)
    holder = StoreHolder(folder, cache_bytes=0)
    assert holder.load() and len(calls) == 3 and holder.store is not None


def test_sighup_reloads_a_running_server(export_world, tmp_path):
    """A real uvicorn process on 127.0.0.1: publish a version, send SIGHUP, /health reports it."""
    import httpx

    from helpers.bench.api_load import free_port, start_server, stop_server

    root = tmp_path / "exports"
    shutil.copytree(export_world["out"], tmp_path / "v1")
    publish(tmp_path / "v1", root)
    _variant(resolve(root), tmp_path / "v2", "sighup000002")
    port = free_port()
    proc = start_server(root, port, env_extra={"RECBOOK_API_RELOAD_SECONDS": "0"})
    try:
        url = f"http://127.0.0.1:{port}/health"
        assert httpx.get(url).json()["model_version"] == export_world["manifest"]["model_version"]
        publish(tmp_path / "v2", root)
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while httpx.get(url).json()["model_version"] != "sighup000002" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert httpx.get(url).json()["model_version"] == "sighup000002"
        assert proc.poll() is None
    finally:
        stop_server(proc)
