"""``recbook.toml``: how a folder of a retailer's files maps onto the star schema (read with tomllib).

Every key is optional; without the file the table and column names of
:mod:`helpers.data.schema` are the defaults. ``python -m helpers.data.recbook DIR``
prints a filled-in template for a folder. The keys::

    currency = "EUR"                  # the currency of sales_value, unit_price (shown in the book)

    [tables]                          # file stem of a table (sales.csv.gz), or false: the table is absent
    fact_transactions = "sales"
    customer_exposure = false

    [columns.dim_product]             # source column = star-schema column
    sku = "product_id"
    size = "package_size"

    [csv]
    delimiter = ";"                   # default: sniffed from the header line ("," ";" tab "|")
    decimal = ","                     # decimal comma
    encoding = "utf-8"                # a UTF-8 byte-order mark is always accepted

    [dates]
    format = "%d.%m.%Y"               # strptime format of date columns (default: ISO / inferred)
    timestamp_format = "%d.%m.%Y %H:%M"
    timezone = "Europe/Berlin"        # timestamps with a UTC offset are converted to this local time
    [dates.columns]                   # a format for one column
    "dim_promotion.start_date" = "%Y%m%d"

    [promotions]
    end_date = "inclusive"            # end_date is the last day (default "exclusive": the day after)
    [promotions.types]                # source type = display | mailer | campaign | discount
    coupon = "discount"

    [ids]                             # integer | text | auto (default: text unless canonical integers)
    product_id = "text"

Timezone policy: timestamps are naive local times in the star schema. Values
with a UTC offset are converted to ``dates.timezone`` and the offset dropped;
without ``timezone`` they keep their local wall time when every value has the
same offset, and mixed offsets are an error asking for ``timezone``.
"""

from __future__ import annotations

import argparse
import sys
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from helpers.data.ids import ID_KINDS
from helpers.data.readers import find_file, read_header
from helpers.data.schema import TABLES
from helpers.data.validate import DataValidationError

CONFIG_NAME = "recbook.toml"
PROMO_KINDS = ("display", "mailer", "campaign", "discount")
ID_MODES = ("auto", "integer", "text")
TOP_KEYS = {"currency", "tables", "columns", "csv", "dates", "promotions", "ids"}


@dataclass
class FolderConfig:
    """The parsed ``recbook.toml`` of a folder (defaults when absent)."""

    path: Path | None = None
    currency: str | None = None
    tables: dict[str, str | bool] = field(default_factory=dict)
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    delimiter: str | None = None
    decimal: str = "."
    encoding: str = "utf-8"
    date_format: str | None = None
    timestamp_format: str | None = None
    column_formats: dict[str, str] = field(default_factory=dict)
    timezone: str | None = None
    end_date: str = "exclusive"
    promo_types: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    def stem(self, table: str) -> str | None:
        """The file stem of a table; None when the config says the table is absent."""
        v = self.tables.get(table, table)
        if v is False:
            return None
        return table if v is True else str(v)

    def renames(self, table: str) -> dict[str, str]:
        return dict(self.columns.get(table, {}))

    def source_name(self, table: str, column: str) -> str:
        """The source column that becomes ``column`` (the column itself when not renamed)."""
        for src, dst in self.renames(table).items():
            if dst == column:
                return src
        return column

    def date_format_of(self, table: str, column: str) -> str | None:
        explicit = self.column_formats.get(f"{table}.{column}")
        if explicit:
            return explicit
        kind = TABLES[table].column(column).dtype
        return self.timestamp_format if kind == "datetime" else self.date_format

    def id_mode(self, kind: str) -> str:
        return self.ids.get(kind, "auto")

    def summary(self) -> dict:
        """What the build records in ``star_schema.json``."""
        return {"file": str(self.path) if self.path else None, "currency": self.currency,
                "end_date": self.end_date, "timezone": self.timezone, "decimal": self.decimal,
                "promo_types": self.promo_types, "renames": self.columns}


def _bad(key: str, detail: str) -> DataValidationError:
    return DataValidationError(CONFIG_NAME, key, "config", detail, fix="see `python -m helpers.data.recbook --help`")


def parse(doc: dict, path: Path | None = None) -> FolderConfig:
    """A :class:`FolderConfig` from a parsed TOML document; unknown keys are errors."""
    unknown = set(doc) - TOP_KEYS
    if unknown:
        raise _bad(sorted(unknown)[0], f"unknown key(s) {sorted(unknown)}; known: {sorted(TOP_KEYS)}")
    cfg = FolderConfig(path=path, currency=doc.get("currency"))
    for t, v in doc.get("tables", {}).items():
        if t not in TABLES:
            raise _bad(f"tables.{t}", f"no table {t!r}; tables: {list(TABLES)}")
        if TABLES[t].required_in_files and v is False:
            raise _bad(f"tables.{t}", f"{t} is required and cannot be absent")
        cfg.tables[t] = v
    for t, mapping in doc.get("columns", {}).items():
        if t not in TABLES:
            raise _bad(f"columns.{t}", f"no table {t!r}; tables: {list(TABLES)}")
        for src, dst in mapping.items():
            if dst not in TABLES[t].column_names:
                raise _bad(f"columns.{t}.{src}", f"{dst!r} is not a column of {t}: {TABLES[t].column_names}")
        cfg.columns[t] = dict(mapping)
    csv = doc.get("csv", {})
    cfg.delimiter = {"\\t": "\t", "tab": "\t"}.get(csv.get("delimiter"), csv.get("delimiter"))
    cfg.decimal = csv.get("decimal", ".")
    if cfg.decimal not in (".", ","):
        raise _bad("csv.decimal", f"decimal must be '.' or ',', got {cfg.decimal!r}")
    cfg.encoding = csv.get("encoding", "utf-8")
    dates = doc.get("dates", {})
    cfg.date_format, cfg.timestamp_format = dates.get("format"), dates.get("timestamp_format")
    cfg.timezone = dates.get("timezone")
    cfg.column_formats = dict(dates.get("columns", {}))
    if cfg.timezone:
        try:
            zoneinfo.ZoneInfo(cfg.timezone)
        except Exception as exc:
            raise _bad("dates.timezone", f"unknown timezone {cfg.timezone!r} ({exc})") from None
    promos = doc.get("promotions", {})
    cfg.end_date = promos.get("end_date", "exclusive")
    if cfg.end_date not in ("inclusive", "exclusive"):
        raise _bad("promotions.end_date", f"end_date must be 'inclusive' or 'exclusive', got {cfg.end_date!r}")
    cfg.promo_types = dict(promos.get("types", {}))
    for src, dst in cfg.promo_types.items():
        if dst not in PROMO_KINDS:
            raise _bad(f"promotions.types.{src}", f"{dst!r} is not one of {PROMO_KINDS}")
    for kind, mode in doc.get("ids", {}).items():
        if kind not in ID_KINDS or mode not in ID_MODES:
            raise _bad(f"ids.{kind}", f"ids take a kind of {ID_KINDS} and a mode of {ID_MODES}")
        cfg.ids[kind] = mode
    return cfg


def load_config(folder) -> FolderConfig:
    """The folder's ``recbook.toml`` (defaults when there is none)."""
    path = Path(folder) / CONFIG_NAME
    if not path.exists():
        return FolderConfig()
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except tomllib.TOMLDecodeError as exc:
        raise DataValidationError(CONFIG_NAME, None, "toml", f"{path} is not valid TOML: {exc}",
                                  fix="correct the line named above") from None
    return parse(doc, path)


def template(folder) -> str:
    """A filled-in ``recbook.toml`` for a folder: its files and their columns, unknown columns commented."""
    folder = Path(folder)
    cfg = load_config(folder) if (folder / CONFIG_NAME).exists() else FolderConfig()
    lines = ["# recbook.toml: how this folder maps onto the star schema (every key optional)",
             f'currency = "{cfg.currency or "EUR"}"', "", "[tables]"]
    headers = {}
    for t, spec in TABLES.items():
        path = find_file(folder, cfg.stem(t) or t)
        if path is None:
            lines.append(f"# {t} = \"{t}\"" + ("   # REQUIRED: no file found" if spec.required_in_files else
                                               "   # optional; `false` when absent"))
            continue
        lines.append(f'{t} = "{path.name.split(".")[0]}"   # {path.name}')
        try:
            headers[t] = read_header(path, cfg)
        except DataValidationError as exc:
            lines.append(f"# could not read {path.name}: {exc.detail}")
    for t, cols in headers.items():
        spec = TABLES[t]
        renames = cfg.renames(t)
        known = set(spec.column_names)
        lines += ["", f"[columns.{t}]   # source column = star-schema column"]
        for c in cols:
            if c in renames:
                lines.append(f'{c} = "{renames[c]}"')
            elif c not in known:
                lines.append(f'# {c} = ""   # not in the contract: kept aside unless mapped')
        mapped = set(renames.values()) | (set(cols) & known)
        for c in spec.required_columns:
            if c not in mapped:
                lines.append(f'# your_column = "{c}"   # REQUIRED column not found')
    lines += ["", "[csv]", f'# delimiter = "{cfg.delimiter or ","}"', f'decimal = "{cfg.decimal}"', "",
              "[dates]", f'# format = "{cfg.date_format or "%Y-%m-%d"}"',
              f'# timestamp_format = "{cfg.timestamp_format or "%Y-%m-%d %H:%M:%S"}"',
              f'# timezone = "{cfg.timezone or "Europe/London"}"   # aware timestamps converted to this local time',
              "", "[promotions]", f'end_date = "{cfg.end_date}"   # inclusive: the last day; exclusive: the day after',
              "[promotions.types]   # source type = display | mailer | campaign | discount"]
    lines += [f'{k} = "{v}"' for k, v in cfg.promo_types.items()] or ['# coupon = "discount"']
    lines += ["", "[ids]   # auto | integer | text"]
    lines += [f'{k} = "{v}"' for k, v in cfg.ids.items()] or ['# product_id = "text"']
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helpers.data.recbook", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir", help="the folder of the retailer's files")
    args = ap.parse_args(argv)
    try:
        sys.stdout.write(template(args.data_dir))
    except DataValidationError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
