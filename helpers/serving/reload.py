"""The export the server serves, and its reload when a new version is published.

A :class:`StoreHolder` serves :func:`helpers.export.versioned.resolve` of the export root. It
reloads when told to (``SIGHUP``, ``POST /admin/reload``) and when its periodic check sees
another export: the resolved folder or its ``manifest.json`` (size, modification time, inode)
changed. A new store is built beside the old one and swapped in one assignment, so requests
see the old export or the new one, never a mix; a failed load keeps the old one (and says
why in ``/health``). ``/health`` is ``degraded`` (HTTP 503) when nothing is loaded or when the
folder being served is gone.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from helpers.export.versioned import resolve
from helpers.serving.store import ExportChanged, ExportStore

LOAD_ATTEMPTS = 3  # an export replaced during a load is read again


def _signature(folder: Path):
    try:
        st = (folder / "manifest.json").stat()
    except OSError:
        return None
    return str(folder), st.st_size, st.st_mtime_ns, st.st_ino


class StoreHolder:
    """The current :class:`ExportStore` of an export root (``store`` is ``None`` until one loads)."""

    def __init__(self, export_root, cache_bytes: int):
        self.export_root = Path(export_root)
        self.cache_bytes = cache_bytes
        self.store: ExportStore | None = None
        self.signature = None
        self.loaded_at: str | None = None
        self.error: str | None = None
        self.reloads = 0
        self._lock = threading.Lock()

    def load(self) -> bool:
        """Load the export the root points at now; ``True`` when a store was (re)loaded."""
        with self._lock:
            for attempt in range(LOAD_ATTEMPTS):
                folder = resolve(self.export_root)
                signature = _signature(folder)
                try:
                    store = ExportStore(folder, cache_bytes=self.cache_bytes)
                except ExportChanged as exc:
                    self.error = str(exc)
                    time.sleep(0.2 * (attempt + 1))
                    continue
                except Exception as exc:  # a broken or half-written export: keep serving the old one
                    self.error = f"{type(exc).__name__}: {exc}"
                    self.signature = signature
                    return False
                self.store, self.signature, self.error = store, signature, None
                self.loaded_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                self.reloads += 1
                return True
            return False

    def changed(self) -> bool:
        return _signature(resolve(self.export_root)) != self.signature

    def check(self) -> bool:
        """Reload if the root now points at another export (the periodic check)."""
        return self.load() if self.changed() else False

    def health(self) -> tuple[int, dict]:
        store = self.store
        serving = {"export_root": str(self.export_root), "loaded_at": self.loaded_at, "reloads": self.reloads,
                   "reload_error": self.error}
        if store is None:
            return 503, {"status": "degraded", "reason": "no export loaded", "model_version": None, **serving}
        body = {**store.health(), **serving}
        if not (store.folder / "manifest.json").exists():
            body.update(status="degraded", reason=f"the export folder {store.folder} is gone (serving from memory)")
            return 503, body
        if self.changed():
            body["pending"] = "another export is published; the next check loads it"
        return 200, body
