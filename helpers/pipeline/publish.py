"""All-or-nothing runs: every output of a run is written aside and published in one step, only
when every notebook succeeded.

Layout of the staging folder ``<reports_dir>/.staging-<pid>`` (same filesystem as the outputs,
so promotion is renames, never copies):

* ``processed/``: the notebooks' ``processed_dir``; starts as the published processed folder
  (top-level files copied, subfolders such as the ~2 GB model cache as trees of hard links: the
  project writes those files to a temporary name and renames it into place, so a link is never
  written through). Its ``exports/`` is the staged export root, where the export notebook
  writes (:func:`helpers.export.production.default_export_dir` of a non-default processed
  folder); it starts empty (nothing of the published export root is copied): the export
  publishes its one new version there (``exports/<UTC time>-<model_version>/`` and ``current``,
  :mod:`helpers.export.versioned`). A notebook reused from the cache writes no export, so the
  staged root stays empty and the published one is left as it is.
* ``reports/{executed,tables,figures}``: the reports; each executing notebook gets its own
  ``nb/<notebook>/`` reports folder holding the staged tables and figures when it starts, and
  what it adds, changes or removes there is merged back when it ends. Two notebooks that may
  run at the same time writing the same report file is an error (an undeclared dependency).

:meth:`Staging.promote` moves each staged entry onto its published place (a rename; unchanged
files are left alone) with SIGINT/SIGTERM held until it is done, then removes the staging
folder. The export root is never replaced as a whole: the staged version (``resolve`` of the
staged root, when it holds a ``manifest.json``) is published into the published export root
with :func:`helpers.export.versioned.publish` (a rename into a new version folder, then
``current`` switched atomically; the previous version is kept), so an API serving that root
never sees it vanish and reloads the new version. :meth:`Staging.discard` removes the staging
folder without touching anything published: a failed or interrupted run leaves every earlier
output (the export root's versions and ``current`` included) as it was.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

from helpers.export import versioned
from helpers.pipeline.cache import file_state
from helpers.pipeline.graph import ancestors

PUBLISHED = ("executed", "tables", "figures")
REPORT_FILES = ("tables", "figures")


def _link_or_copy(src, dst) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


class Staging:
    """The staged outputs of one run. ``processed``, ``reports_dir`` and ``export_dir`` are the
    published folders; ``link_subfolders=False`` leaves the processed folder's subfolders (the
    model cache) out of the staged copy (``--no-cache``: a cold run)."""

    def __init__(self, processed: Path, reports_dir: Path, export_dir: Path, depends_on: dict,
                 keep_reports: bool = False, link_subfolders: bool = True):
        self.published = {"processed": Path(processed), "reports": Path(reports_dir), "exports": Path(export_dir)}
        self.depends_on = depends_on
        self.root = Path(reports_dir) / f".staging-{os.getpid()}"
        self.processed = self.root / "processed"
        self.reports = self.root / "reports"
        self.exports = self.processed / "exports"
        self.logs = self.root / "logs"
        self.writers: dict[str, str] = {}
        self.keep_reports, self.link_subfolders = keep_reports, link_subfolders
        self.promoted = False

    def other_filesystems(self) -> list[Path]:
        """Published folders that are not on the staging folder's filesystem (they cannot be renamed into place)."""
        def device(path: Path) -> int:
            while not path.exists():
                path = path.parent
            return path.stat().st_dev

        here = device(self.root)
        return [p for p in self.published.values() if device(p) != here]

    def prepare(self) -> None:
        """Create the staging folder from the published outputs (see the module conventions)."""
        shutil.rmtree(self.root, ignore_errors=True)
        self.processed.mkdir(parents=True)
        self.logs.mkdir()
        for entry in self._published_entries():
            dst = self.processed / entry.name
            if entry.is_dir():
                if self.link_subfolders:
                    shutil.copytree(entry, dst, symlinks=True, copy_function=_link_or_copy)
            else:
                shutil.copy2(entry, dst)
        for name in PUBLISHED:
            src = self.published["reports"] / name
            if self.keep_reports and src.is_dir():  # a partial run keeps the outputs of the notebooks it skips
                shutil.copytree(src, self.reports / name, symlinks=True)
            (self.reports / name).mkdir(parents=True, exist_ok=True)

    def _nested(self) -> set[str]:
        """Entries of the processed folder that are promoted on their own (reports and exports inside it)."""
        p = self.published["processed"].resolve()
        return {q.name for q in (self.published["reports"], self.published["exports"]) if q.resolve().parent == p}

    def _published_entries(self) -> list[Path]:
        folder = self.published["processed"]
        if not folder.is_dir():
            return []
        skip = self._nested()
        return sorted(e for e in folder.iterdir() if e.name not in skip)

    # ------------------------------------------------------------ notebooks
    def workspace(self, name: str) -> tuple[Path, dict]:
        """A fresh ``reports_dir`` for notebook ``name`` holding the staged tables and figures;
        returns it and its file listing."""
        work = self.root / "nb" / name
        shutil.rmtree(work, ignore_errors=True)
        for sub in REPORT_FILES:
            shutil.copytree(self.reports / sub, work / sub)  # copy2: sizes and times kept
        return work, self.report_files(work)

    @staticmethod
    def report_files(root: Path) -> dict[str, list]:
        """``"tables/x.csv" -> [size, mtime_ns]`` of a reports folder's tables and figures (subfolders too)."""
        return {f"{sub}/{rel}": v for sub in REPORT_FILES for rel, v in file_state(root / sub, recursive=True).items()}

    def _claim(self, name: str, rel: str) -> None:
        prev = self.writers.get(rel)
        if prev is not None and prev != name and prev not in ancestors(name, self.depends_on):
            raise RuntimeError(f"{rel} is written by both {prev} and {name}, which DEPENDS_ON lets run at "
                               "the same time: declare one a dependency of the other")
        self.writers[rel] = name

    def merge(self, name: str, work: Path, before: dict) -> list[str]:
        """Put what ``name`` wrote in ``work`` into the staged reports; returns the files it wrote."""
        after = self.report_files(work)
        outputs = [rel for rel, state in sorted(after.items()) if before.get(rel) != state]
        for rel in outputs:
            self._claim(name, rel)
        for rel in outputs:
            (self.reports / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(work / rel, self.reports / rel)
        for rel in sorted(before.keys() - after.keys()):  # removed by the notebook (e.g. an old ranker)
            (self.reports / rel).unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
        return outputs

    def restore(self, name: str, outputs: list[str]) -> None:
        """Stage the published report files of a notebook reused from the cache, and its executed copy."""
        for rel in outputs:
            self._claim(name, rel)
            (self.reports / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.published["reports"] / rel, self.reports / rel)
        shutil.copy2(self.published["reports"] / "executed" / name, self.reports / "executed" / name)

    # ------------------------------------------------------------ promotion
    def promote(self, report_files: tuple[str, ...] = ()) -> None:
        """Publish the staged outputs (renames; signals held until done), then remove the staging
        folder. ``report_files``: single files of the staged reports folder to publish too
        (the manifest, the cache file)."""
        with _signals_held():
            self._promote(report_files)
        shutil.rmtree(self.root, ignore_errors=True)

    def _promote(self, report_files) -> None:
        old = self.root / "old"
        old.mkdir()
        processed = self.published["processed"]
        processed.mkdir(parents=True, exist_ok=True)
        staged = {e.name: e for e in self.processed.iterdir() if e.name != "exports"}
        for entry in self._published_entries():  # removed by a notebook
            if entry.name not in staged:
                os.replace(entry, old / f"processed-{entry.name}")
        for name, src in sorted(staged.items()):
            _put(src, processed / name, old / f"processed-{name}")
        staged_version = versioned.resolve(self.exports)
        if (staged_version / "manifest.json").is_file():  # the export notebook ran and wrote a complete export
            versioned.publish(staged_version, self.published["exports"])
        reports = self.published["reports"]
        for name in (*PUBLISHED, *report_files):
            if (self.reports / name).exists():
                _put(self.reports / name, reports / name, old / f"reports-{name}")
        self.promoted = True

    def discard(self) -> None:
        """Remove the staging folder; nothing published is touched."""
        shutil.rmtree(self.root, ignore_errors=True)


def _put(src: Path, dst: Path, old: Path) -> None:
    """Move ``src`` onto ``dst`` (the previous ``dst`` goes to ``old``); an identical file stays."""
    if src.is_file() and dst.is_file() and not dst.is_symlink():
        a, b = src.stat(), dst.stat()
        if (a.st_size, a.st_mtime_ns) == (b.st_size, b.st_mtime_ns):
            return
    if dst.exists() or dst.is_symlink():
        os.replace(dst, old)
    os.replace(src, dst)


@contextmanager
def _signals_held():
    """Hold SIGINT/SIGTERM (delivered when the block ends) in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, sigs)
