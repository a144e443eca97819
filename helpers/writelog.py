"""What a notebook's kernel writes, for the pipeline's attribution of outputs.

The pipeline may run several notebooks at once, so a before/after listing of a
shared folder cannot tell which notebook wrote a file. Each kernel the pipeline
starts runs :func:`install` first (an IPython ``exec_lines`` start-up line, not a
cell of the notebook): a :func:`sys.addaudithook` hook appends to the notebook's
own log every file that the kernel opens for writing, renames into place
(``os.rename`` / ``os.replace``) or removes directly inside ``folder`` (the
processed data folder: subfolders such as the model cache are not logged).
Writes done by native code without a Python ``open`` (e.g. pyarrow writing to a
path) are not seen; the helpers write data files to a temporary name and
``os.replace`` them into place, which is seen.

:func:`note_keys` records which top-level keys of a merged JSON file
(``tuning.json``) a notebook wrote; it does nothing outside such a kernel.

Log format, one record a line: ``<absolute path>`` for a file, or
``keys<TAB><absolute path><TAB><JSON list of keys>``.
"""

from __future__ import annotations

import json
import os
import sys

_log = None  # the open log of this kernel, when installed


def _written_path(event: str, args) -> str | None:
    if event == "open":
        path, mode, flags = args
        if isinstance(path, int):
            return None
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(
            flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND))
        return path if writing else None
    if event == "os.rename":  # os.rename and os.replace
        return args[1]
    if event == "os.remove":  # os.remove and os.unlink
        return args[0]
    return None


def install(log_path, folder) -> None:
    """Log this process's writes of files directly in ``folder`` to ``log_path`` (append)."""
    global _log
    if _log is not None:
        return
    root = os.path.abspath(folder)
    _log = open(log_path, "a", buffering=1)  # kept open for the life of the kernel
    log = _log

    def hook(event, args):
        if event not in ("open", "os.rename", "os.remove"):
            return
        try:
            path = _written_path(event, args)
            if path is None:
                return
            path = os.path.abspath(os.fsdecode(path))
            if os.path.dirname(path) == root:
                log.write(path + "\n")
        except Exception:  # never break the write being audited
            pass

    sys.addaudithook(hook)


def note_keys(path, keys) -> None:
    """Record that this kernel wrote ``keys`` of the merged JSON file ``path`` (no-op when not installed)."""
    if _log is not None:
        _log.write(f"keys\t{os.path.abspath(path)}\t{json.dumps(sorted(keys))}\n")


def read(log_path) -> tuple[set[str], dict[str, set[str]]]:
    """``(files, {merged file: keys})`` of a log written by :func:`install` / :func:`note_keys`."""
    files: set[str] = set()
    keys: dict[str, set[str]] = {}
    try:
        text = open(log_path).read()
    except FileNotFoundError:
        return files, keys
    for line in text.splitlines():
        if line.startswith("keys\t"):
            _, path, names = line.split("\t", 2)
            keys.setdefault(path, set()).update(json.loads(names))
        elif line:
            files.add(line)
    return files, keys
