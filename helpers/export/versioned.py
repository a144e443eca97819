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

Every export is published this way: :func:`helpers.export.production.export` writes a temporary
sibling folder and publishes it, and a pipeline run publishes the version its export notebook
staged (:mod:`helpers.pipeline.publish`). Readers of an export root go through :func:`resolve`.

Old plain layout: a root written before versioning holds the export's files directly
(``manifest.json``, ``recommendations.parquet``, ``model/``, ...). The first versioned publish
into it leaves it clean: once ``current`` points at the new version, every entry of the root
that is neither a version folder nor ``current`` nor hidden (a name starting with ``.``, such
as ``.gitkeep`` or another publish's temporary link) is moved into a hidden
``.plain-<pid>`` folder, which is then deleted. Until the switch the plain export stays whole
and is what :func:`resolve` gives; after it the root holds only version folders and ``current``.
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
KEEP = 2  # version folders kept in a root: the new one and the previous one
PLAIN_TRASH = ".plain-"  # the plain-layout entries of a root on their way out


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


def publish(staged_dir, export_root, keep: int = KEEP) -> Path:
    """Move the complete export ``staged_dir`` into a new version folder of ``export_root`` and
    switch ``export_root/current`` to it atomically; returns the new version folder.

    ``staged_dir`` must hold ``manifest.json`` (written last by the export: its presence marks a
    complete export). ``keep`` (>= 2) version folders stay, the new one and the previous ones.
    The files of an old plain layout in the root are removed once ``current`` is switched."""
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
    _drop_plain(root)
    for old in versions(root)[:-keep]:
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target


def plain_entries(export_root) -> list[Path]:
    """Entries of an export root that belong to no version: the files and folders of an export
    written before versioning (neither a version folder, nor ``current``, nor hidden)."""
    root = Path(export_root)
    if not root.is_dir():
        return []
    return sorted(e for e in root.iterdir() if e.name != CURRENT and not e.name.startswith(".")
                  and not (e.is_dir() and not e.is_symlink() and VERSION_RE.match(e.name)))


def _drop_plain(root: Path) -> None:
    """Move the plain-layout entries away (one rename each into a hidden folder), then delete them;
    also removes what an interrupted earlier cleanup left."""
    trash = root / f"{PLAIN_TRASH}{os.getpid()}"
    entries = plain_entries(root)
    if entries:
        trash.mkdir(exist_ok=True)
        for entry in entries:
            os.replace(entry, trash / entry.name)
    for left in root.glob(f"{PLAIN_TRASH}*"):
        if left.is_dir() and not left.is_symlink():
            shutil.rmtree(left, ignore_errors=True)


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
