"""Bad input, one suite: every bad data folder, parameter or request a run can get is refused
before any work with a message naming what is wrong, and the outputs of the last good run stay
byte-identical.

Each case starts from a valid retailer folder (the sample format: text ids, ``;`` and decimal
comma, a renamed column, inclusive promotion end dates), breaks one thing and calls the command
line (``python -m helpers.pipeline run``) with the project's own notebooks into an output folder
holding a published run. The notebook runner is replaced by one that fails the test when called:
a refusal happens before the first notebook starts.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from helpers.data.sample import write_sample
from helpers.pipeline import __main__ as cli
from helpers.pipeline import run as run_module
from tests.pipeline.test_run_fake import FAKE_GRAPH, FAKE_SPECS, FakeCommand, make_notebook, tree

SALES, PRODUCTS, PROMOS, CUSTOMERS, TOML = "sales.csv.gz", "products.csv", "promotions.csv", "customers.parquet", \
    "recbook.toml"


# Editing the sample folder's files as text tables (every value kept as written).
def read_table(d: Path, name: str) -> pd.DataFrame:
    if name.endswith(".parquet"):
        return pd.read_parquet(d / name)
    sep = ";" if name == SALES else ","
    return pd.read_csv(d / name, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")


def write_table(d: Path, name: str, df: pd.DataFrame) -> None:
    if name.endswith(".parquet"):
        df.to_parquet(d / name, index=False)
        return
    text = df.to_csv(index=False, sep=";" if name == SALES else ",")
    if name.endswith(".gz"):
        (d / name).write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        (d / name).write_text(text)


def edit(name: str, fn: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        write_table(d, name, fn(read_table(d, name).copy()))
    return apply


def set_cell(name: str, column: str, value: str, row: int = 2) -> Callable[[Path], None]:
    def fn(df):
        df.loc[row, column] = value
        return df
    return edit(name, fn)


def toml_edit(old: str, new: str) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        text = (d / TOML).read_text()
        assert old in text, f"{old!r} is not in the sample's recbook.toml"
        (d / TOML).write_text(text.replace(old, new))
    return apply


def truncate(name: str) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        data = (d / name).read_bytes()
        (d / name).write_bytes(data[: len(data) // 2])
    return apply


def last_days(n: int) -> Callable[[Path], None]:
    def fn(df):
        day = pd.to_datetime(df["timestamp"]).dt.normalize()
        return df[day > day.max() - pd.Timedelta(days=n)]
    return edit(SALES, fn)


def mixed_offsets(df):
    ts = pd.to_datetime(df["timestamp"]).dt.strftime("%Y-%m-%dT%H:%M:%S")
    df["timestamp"] = ts + ["+01:00" if i % 2 else "+02:00" for i in range(len(df))]
    return df


@dataclass
class Case:
    id: str
    words: tuple[str, ...]  # every one appears in the message
    mutate: Callable[[Path], None] | None = None  # breaks the valid folder
    args: list[str] = field(default_factory=list)  # extra command-line arguments
    folder: bool = True  # pass --data-dir (the folder, mutated)


CASES = [
    # the data folder (the data check run before any notebook)
    Case("missing file", ("dim_product", "[present]", "[tables]"), lambda d: (d / PRODUCTS).unlink()),
    Case("mapped column missing", ("dim_product.sku", "[mapped-column]", "[columns.dim_product]"),
         edit(PRODUCTS, lambda df: df.rename(columns={"sku": "article"}))),
    Case("missing required column", ("fact_transactions.quantity", "[required-column]", "[columns.fact_transactions]"),
         edit(SALES, lambda df: df.drop(columns=["quantity"]))),
    Case("unparseable date", ("fact_transactions.timestamp", "[dtype]", "ISO8601", "timestamp_format"),
         set_cell(SALES, "timestamp", "3rd of March")),
    Case("unparseable promotion date", ("dim_promotion.start_date", "%d/%m/%Y"),
         set_cell(PROMOS, "start_date", "2023-13-45")),
    Case("duplicate product", ("dim_product", "[unique-key]", "P00001"),
         edit(PRODUCTS, lambda df: pd.concat([df, df.head(1)], ignore_index=True))),
    Case("duplicate customer", ("dim_customer", "[unique-key]"),
         edit(CUSTOMERS, lambda df: pd.concat([df, df.head(1)], ignore_index=True))),
    Case("orphan customer", ("fact_transactions.customer_id", "[foreign-key]", "C99999"),
         set_cell(SALES, "customer_id", "C99999")),
    Case("orphan product", ("fact_transactions.product_id", "[foreign-key]", "HBZ-0000"),
         set_cell(SALES, "product_id", "HBZ-0000")),
    Case("non-numeric quantity", ("fact_transactions.quantity", "[dtype]", "decimal"),
         set_cell(SALES, "quantity", "one")),
    Case("non-numeric sales value", ("fact_transactions.sales_value", "[dtype]"),
         set_cell(SALES, "sales_value", "twelve")),
    Case("empty fact table", ("fact_transactions", "[non-empty]"), edit(SALES, lambda df: df.head(0))),
    Case("truncated parquet", ("customers.parquet", "[readable]", "re-export"), truncate(CUSTOMERS)),
    Case("truncated gzip", ("sales.csv.gz", "[readable]", "re-export"), truncate(SALES)),
    Case("20-day history", ("[date-range]", "at least 84 days"), last_days(20)),
    Case("one customer", ("[minimum-size]", "customer"),
         edit(SALES, lambda df: df.assign(customer_id=df["customer_id"].iloc[0]))),
    Case("mixed UTC offsets", ("fact_transactions.timestamp", "[timezone]", "different UTC offsets"),
         edit(SALES, mixed_offsets)),
    Case("promotion ends before it starts", ("dim_promotion", "end_date", "[period]"),
         set_cell(PROMOS, "end_date", "01/01/2020", row=0)),
    Case("inclusive end date not declared", ("dim_promotion", "[period]", 'end_date = "inclusive"'),
         lambda d: (toml_edit('end_date = "inclusive"', 'end_date = "exclusive"')(d),
                    set_cell(PROMOS, "end_date", read_table(d, PROMOS).loc[0, "start_date"], row=0)(d))),
    Case("wrong delimiter declared", ("[delimiter]", "';'"), toml_edit('decimal = ","', 'decimal = ","\ndelimiter = ","')),
    Case("negative unit price", ("dim_product.unit_price", "[non-negative]"), set_cell(PRODUCTS, "unit_price", "-1")),
    Case("unknown config key", ("recbook.toml", "unknown key", "colour"),
         toml_edit('currency = "EUR"', 'currency = "EUR"\ncolour = "red"')),
    Case("config syntax error", ("recbook.toml",), toml_edit('currency = "EUR"', "currency = ")),
    Case("bad end-date convention", ("inclusive", "exclusive"), toml_edit('end_date = "inclusive"', 'end_date = "last"')),
    Case("windows longer than the history", ("[date-range]", "test_days"), args=["--param", "test_days=400"]),
    # parameters (checked before the data)
    Case("test_days not a number", ("test_days='abc'", "an integer >= 1"), args=["--param", "test_days=abc"]),
    Case("negative test_days", ("test_days=-7", "an integer >= 1"), args=["--param", "test_days=-7"]),
    Case("n_boot not a number", ("n_boot='abc'", "an integer >= 1"), args=["--param", "n_boot=abc"]),
    Case("top_n zero", ("top_n=0", "an integer >= 1"), args=["--param", "top_n=0"]),
    Case("seed not an integer", ("seed=1.5", "an integer >= 0"), args=["--param", "seed=1.5"]),
    Case("as_of not a date", ("as_of='yesterday'", "YYYY-MM-DD"), args=["--param", "as_of=yesterday"]),
    Case("unknown protocol", ("ranker_protocols=['everyone']", '"all" and "new"'),
         args=["--param", 'ranker_protocols=["everyone"]']),
    Case("misspelt parameter", ("['tset_days'] is not a parameter",), args=["--param", "tset_days=28"]),
    Case("reserved parameter", ("is set by the pipeline",), args=["--param", "processed_dir=/tmp/x"]),
    Case("no --data-dir", ("dataset=files needs --data-dir",), folder=False),
    Case("no such folder", ("no such folder",), mutate=lambda d: shutil.rmtree(d)),
    Case("zero jobs", ("--jobs=0",), args=["--jobs", "0"]),
]


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory) -> Path:
    return write_sample(tmp_path_factory.mktemp("good") / "sample", n_customers=150, n_products=80, n_days=120)


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """An output folder holding a published run (star schema, model cache, tables, exports, manifest)."""
    base = tmp_path_factory.mktemp("published")
    nbs = base / "notebooks"
    nbs.mkdir()
    for stem in FAKE_GRAPH:
        make_notebook(nbs / f"{stem}.ipynb", "knob = 0\n" + ("export_dir = None\n" if stem == "03_join" else ""))
    out = base / "out"
    run_module.run("synthetic", output_dir=out, progress=False, log=lambda s: None, notebooks_dir=nbs,
                   depends_on=FAKE_GRAPH, command=FakeCommand(FAKE_SPECS))
    (out / "models" / "als").mkdir(parents=True)
    (out / "models" / "als" / "fit.npz").write_bytes(b"a fitted model")
    return out


def never_run(nb, out, parameters, progress):
    raise AssertionError(f"{nb.name} was started: the bad input was not refused before any work")


def test_the_valid_folder_passes_the_check(good_folder):
    assert run_module.check_folder(good_folder).ok


def test_there_are_at_least_25_cases():
    assert len(CASES) >= 25 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_a_clear_message_and_changes_nothing(case, good_folder, published, tmp_path,
                                                                       monkeypatch, capsys):
    data = tmp_path / "in"
    shutil.copytree(good_folder, data)
    if case.mutate:
        case.mutate(data)
    out = tmp_path / "out"
    shutil.copytree(published, out)
    before = tree(out, skip=())
    monkeypatch.setattr(run_module, "papermill_command", never_run)
    argv = ["run", "--dataset", "files", "--output-dir", str(out), "--no-progress",
            *(["--data-dir", str(data)] if case.folder else []), *case.args]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for word in case.words:
        assert word in err, f"{word!r} not in the message:\n{err}"
    assert "ERROR" in err and cli.REFUSED in err
    assert tree(out, skip=()) == before  # byte-identical: star schema, model cache, tables, exports, manifest
    assert sorted(p.name for p in out.rglob(".staging*")) == []
