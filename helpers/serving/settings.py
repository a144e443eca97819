"""Server settings, read from the environment once when the app is created.

======================================  =========================  ==========================================
variable                                default                    meaning
======================================  =========================  ==========================================
``RECBOOK_EXPORT_DIR``                  ``data/exports``           export root (versioned or plain layout)
``RECBOOK_API_CACHE_MB``                ``64``                     answer cache in MiB (0: off)
``RECBOOK_API_MAX_BODY_BYTES``          ``262144``                 larger request bodies: 413, never read
``RECBOOK_API_KEY``                     unset (off)                required ``X-API-Key`` header value
``RECBOOK_API_RATE``                    ``0`` (off)                requests per second per client address
``RECBOOK_API_BURST``                   ``2 x rate`` (min 1)       token-bucket size per client address
``RECBOOK_API_RELOAD_SECONDS``          ``5``                      period of the export check (0: off)
``RECBOOK_API_BASKET_BATCH``            ``16``                     most baskets scored in one micro-batch
======================================  =========================  ==========================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from helpers import config

ENV_VAR = "RECBOOK_EXPORT_DIR"
CACHE_ENV_VAR = "RECBOOK_API_CACHE_MB"
MAX_BASKET = 1000  # product ids in one basket
MAX_ID_LENGTH = 200  # characters of one text id


def export_dir_from_env() -> Path:
    return Path(os.environ.get(ENV_VAR) or config.EXPORTS_DIR)


def _number(name: str, default: float, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: a number is required") from None
    if not value >= minimum:
        raise ValueError(f"{name}={raw!r}: must be at least {minimum}")
    return value


@dataclass(frozen=True)
class Settings:
    export_root: Path
    cache_bytes: int = 64 * 2 ** 20
    max_body_bytes: int = 256 * 2 ** 10
    api_key: str | None = None
    rate_per_second: float = 0.0
    burst: float = 0.0
    reload_seconds: float = 5.0
    basket_batch: int = 16

    @classmethod
    def from_env(cls, export_dir=None, **overrides) -> Settings:
        rate = _number("RECBOOK_API_RATE", 0.0)
        values = dict(
            export_root=Path(export_dir) if export_dir else export_dir_from_env(),
            cache_bytes=int(_number(CACHE_ENV_VAR, 64.0) * 2 ** 20),
            max_body_bytes=int(_number("RECBOOK_API_MAX_BODY_BYTES", 256 * 2 ** 10, minimum=1)),
            api_key=os.environ.get("RECBOOK_API_KEY") or None,
            rate_per_second=rate,
            burst=_number("RECBOOK_API_BURST", max(1.0, 2.0 * rate), minimum=1.0),
            reload_seconds=_number("RECBOOK_API_RELOAD_SECONDS", 5.0),
            basket_batch=int(_number("RECBOOK_API_BASKET_BATCH", 16, minimum=1)),
        )
        values.update(overrides)
        return cls(**values)
