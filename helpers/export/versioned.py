"""Versioned export folders: every complete export in its own folder, ``current`` switched atomically.

Layout of an export root (``data/exports`` by default)::

    data/exports/
        20261203T115832Z-ce50ca64d06e/   one complete export (manifest.json, model/, ...)
        20261204T080102Z-0b1d2e3f4a5c/
        current -> 20261204T080102Z-0b1d2e3f4a5c

:func:`publish` moves a complete, staged export into a new version folder named
``<UTC time>-<model_version>`` (sortable, unique even when the model version repeats),
then repoints ``current`` by creating a new relative symlink beside it and renaming it
over the old one (``os.replace``: a reader sees the old target or the new one, never
none). The previous version is kept (``keep`` versions in all, ``current`` included;
older version folders are removed). :func:`resolve` gives the folder to serve:
``current``'s target when the link exists, else the root itself (the plain layout of
exports written before versioning). Nothing here copies files: the staged folder must be
on the same file system as the root (a rename).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

CURRENT = "current"
VERSION_RE = re.compile(r"^\d{8}T\d{6}(?:\.\d+)?Z-[A-Za-z0-9_.-]+$")


def version_name(staged_dir: Path, now: datetime | None = None) -> str:
    """``<UTC time>-<model_version>`` of a staged export (its manifest names the model version)."""
    manifest = json.loads((Path(staged_dir) / "manifest.json").read_text())
    model = re.sub(r"[^A-Za-z0-9_.-]", "_", str(manifest.get("model_version") or "export"))
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{stamp}-{model}"


def versions(export_root) -> list[Path]:
    """The version folders of an export root, oldest first."""
    root = Path(export_root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and VERSION_RE.match(p.name))


def publish(staged_dir, export_root, keep: int = 2) -> Path:
    """Move the complete export ``staged_dir`` into a new version folder of ``export_root`` and
    switch ``export_root/current`` to it atomically; returns the new version folder.

    ``staged_dir`` must hold ``manifest.json`` (written last by the export: its presence marks a
    complete export). ``keep`` (>= 2) version folders stay, the new one and the previous ones."""
    staged, root = Path(staged_dir), Path(export_root)
    if keep < 2:
        raise ValueError(f"keep must be at least 2 (the new version and the previous one), not {keep}")
    if not (staged / "manifest.json").is_file():
        raise FileNotFoundError(f"{staged / 'manifest.json'} is missing: {staged} is not a complete export")
    root.mkdir(parents=True, exist_ok=True)
    target = root / version_name(staged)
    os.replace(staged, target)  # same file system: one rename, never a half-copied folder
    link_tmp = root / f".{CURRENT}.{os.getpid()}.tmp"
    if link_tmp.is_symlink() or link_tmp.exists():
        link_tmp.unlink()
    os.symlink(target.name, link_tmp)  # relative: the root can be moved as a whole
    os.replace(link_tmp, root / CURRENT)
    _fsync_dir(root)
    for old in versions(root)[:-keep]:
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target


def resolve(export_root) -> Path:
    """The folder to serve: the target of ``export_root/current`` when that link (or folder)
    exists, else ``export_root`` itself (plain layout). A dangling ``current`` resolves to
    its missing target, so that a server reports the export as gone."""
    root = Path(export_root)
    cur = root / CURRENT
    if cur.is_symlink():
        link = Path(os.readlink(cur))
        return link if link.is_absolute() else root / link
    if cur.is_dir():
        return cur
    return root


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory descriptors
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
