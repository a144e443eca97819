"""Small helpers shared by the notebooks: output folders and glue."""

from __future__ import annotations

import sys
from pathlib import Path

from helpers import config


def report_dirs(reports_dir=None) -> dict[str, Path]:
    """``tables``/``figures`` folders of a run (created), default ``reports/``."""
    root = Path(reports_dir) if reports_dir else config.REPORTS_DIR
    out = {"root": root, "tables": root / "tables", "figures": root / "figures"}
    for p in out.values():
        p.mkdir(parents=True, exist_ok=True)
    return out


def glue_all(values: dict, display: bool = False) -> None:
    """Glue every value of a dict under its key (numbers keep their type for formatting)."""
    # myst_nb's glue imports nbformat -> jsonschema, which loads its optional IRI format checker
    # rfc3987_syntax if installed (a Jupyter extra): that compiles 38 lark grammars, about 1 s in
    # every notebook's kernel. No kernel validates IRIs; marked absent, jsonschema skips that format.
    sys.modules.setdefault("rfc3987_syntax", None)
    from myst_nb import glue

    for key, value in values.items():
        if hasattr(value, "item"):
            value = value.item()
        glue(key, value, display=display)


def read_glue(executed) -> dict[str, str]:
    """Glue keys of an executed notebook -> their ``text/plain`` value.

    ``glue(display=False)`` stores values under the ``application/papermill.record/``
    mime prefix; displayed glue under the plain mime type. Both are read.
    """
    import json

    nb = json.loads(Path(executed).read_text())
    out = {}
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            meta = o.get("metadata", {}).get("scrapbook", {})
            name = meta.get("name")
            if not name:
                continue
            data = o.get("data", {})
            prefix = meta.get("mime_prefix", "")
            for key in (prefix + "text/plain", "text/plain"):
                if key in data:
                    out[name] = data[key]
                    break
    return out
