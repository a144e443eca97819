"""End to end on the tiny synthetic source: papermill run, strict book build, real browser.

The whole pipeline runs once into a scratch folder (and a second time to check
determinism); the book is built from the executed copies with warnings as
errors; headless Chromium renders the landing and evaluation pages and the
glued headline numbers must be visible and equal ``metrics.csv``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import config
from helpers.pipeline.book import build, prepare_root
from helpers.report.glue import read_glue
from tests.conftest import TINY, in_ci

pytestmark = pytest.mark.slow

RUN_PARAMS = {**TINY, "n_boot": 200, "n_trials": 40}


def run_pipeline(out: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "helpers.pipeline", "run", "--dataset", "synthetic", "--output-dir", str(out),
            "--no-progress", *extra] + [f"--param={k}={v}" for k, v in RUN_PARAMS.items()]
    return subprocess.run(args, cwd=config.PROJECT_ROOT, capture_output=True, text=True)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    res = run_pipeline(out)
    assert res.returncode == 0, res.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def html_dir(run_dir, tmp_path_factory):
    root = prepare_root(run_dir / "reports", tmp_path_factory.mktemp("bookroot"))
    shutil.copy(run_dir / "reports" / "run_manifest.json", root / "reports" / "run_manifest.json")  # as `make book`
    return build(root=root, strict=True)


def glued(executed: Path) -> dict:
    """Glue keys of an executed notebook -> their text/plain value."""
    return read_glue(executed)


def overall(metrics: pd.DataFrame, model: str, protocol: str, metric="ndcg", k=5) -> float:
    m = metrics[(metrics["model"] == model) & (metrics["protocol"] == protocol) & (metrics["split"] == "test")
                & (metrics["segment_type"] == "overall") & (metrics["metric"] == metric) & (metrics["k"] == k)]
    assert len(m) == 1
    return float(m["value"].iloc[0])


def test_outputs_exist(run_dir):
    for name in ("fact_transactions", "dim_customer", "dim_product", "dim_date", "dim_promotion",
                 "customer_exposure", "customer_features", "segments"):
        assert (run_dir / f"{name}.parquet").exists(), name
    tables = run_dir / "reports" / "tables"
    assert (tables / "metrics.csv").exists() and (tables / "test_predictions.parquet").exists()
    manifest = json.loads((run_dir / "reports" / "run_manifest.json").read_text())
    assert manifest["dataset"] == "synthetic" and manifest["data_fingerprint"]
    assert set(manifest["notebooks"]) >= {"00_data_model.ipynb", "07_evaluation.ipynb"}
    assert not list((run_dir / "reports").glob(".staging-*"))  # published, staging removed


def test_metrics_cover_every_model_protocol_and_segment(run_dir):
    m = pd.read_csv(run_dir / "reports" / "tables" / "metrics.csv")
    test = m[m["split"] == "test"]
    pairs = set(zip(test["model"], test["protocol"]))
    for model in ("global_popularity", "segmented_popularity", "als", "itemknn", "ease", "content", "hybrid"):
        assert (model, "all") in pairs and (model, "new") in pairs, model
    assert ("buy_again", "all") in pairs and ("buy_again", "new") not in pairs
    assert {"loyalty_tier", "age_band", "gender", "income_band", "promo_exposure", "history_length"} <= set(
        test["segment_type"])
    assert ((test["value"] >= 0) & (test["value"] <= 1)).all()


def test_glued_headline_equals_metrics_csv(run_dir):
    m = pd.read_csv(run_dir / "reports" / "tables" / "metrics.csv")
    g = glued(run_dir / "reports" / "executed" / "07_evaluation.ipynb")
    for protocol in ("all", "new"):
        assert float(g[f"hybrid_{protocol}_ndcg5"]) == pytest.approx(overall(m, "hybrid", protocol), abs=1e-12)


def _independent_metrics(pred: pd.DataFrame, fact: pd.DataFrame, split: dict, protocol: str, k: int = 5):
    """A deliberately plain re-implementation of the documented definitions."""
    test_start, end = pd.Timestamp(split["test_start"]), pd.Timestamp(split["end"])
    fit = fact[(fact["timestamp"] < test_start) & (fact["quantity"] > 0)]
    ev = fact[(fact["timestamp"] >= test_start) & (fact["timestamp"] < end) & (fact["quantity"] > 0)]
    history = fit.groupby("customer_id")["product_id"].apply(set).to_dict()
    relevant = ev.groupby("customer_id")["product_id"].apply(set).to_dict()
    top = pred.sort_values("rank").groupby("customer_id")["product_id"].apply(list).to_dict()
    rows = []
    for cust, rel in relevant.items():
        if cust not in history:
            continue
        if protocol == "new":
            rel = rel - history[cust]
        if not rel:
            continue
        recs = top.get(cust, [])[:k]
        hits = [1 if p in rel else 0 for p in recs]
        dcg = sum(h / np.log2(i + 2) for i, h in enumerate(hits))
        idcg = sum(1 / np.log2(i + 2) for i in range(min(k, len(rel))))
        rows.append({"precision": sum(hits) / k, "recall": sum(hits) / len(rel), "ndcg": dcg / idcg})
    return pd.DataFrame(rows).mean()


def test_metrics_recomputed_from_predictions_match(run_dir):
    m = pd.read_csv(run_dir / "reports" / "tables" / "metrics.csv")
    preds = pd.read_parquet(run_dir / "reports" / "tables" / "test_predictions.parquet")
    fact = pd.read_parquet(run_dir / "fact_transactions.parquet")
    split = json.loads((run_dir / "split.json").read_text())
    for model in ("hybrid", "als", "buy_again"):
        for protocol in ("all", "new"):
            p = preds[(preds["model"] == model) & (preds["protocol"] == protocol)]
            if p.empty:
                continue
            ref = _independent_metrics(p, fact, split, protocol)
            for metric in ("precision", "recall", "ndcg"):
                assert overall(m, model, protocol, metric) == pytest.approx(ref[metric], abs=1e-9), (model, metric)


def test_same_command_twice_gives_identical_metrics(run_dir, tmp_path):
    """The second run executes one notebook at a time (the first, by default, two at once)."""
    again = tmp_path / "again"
    res = run_pipeline(again, "--jobs", "1")
    assert res.returncode == 0, res.stderr[-4000:]
    first = json.loads((run_dir / "reports" / "run_manifest.json").read_text())
    assert first["jobs"] == 2 and json.loads((again / "reports" / "run_manifest.json").read_text())["jobs"] == 1
    a = pd.read_csv(run_dir / "reports" / "tables" / "metrics.csv")
    b = pd.read_csv(again / "reports" / "tables" / "metrics.csv")
    pd.testing.assert_frame_equal(a, b)
    tables_a, tables_b = run_dir / "reports" / "tables", again / "reports" / "tables"
    assert sorted(p.name for p in tables_a.iterdir()) == sorted(p.name for p in tables_b.iterdir())
    for path in sorted(tables_a.glob("metrics_*.csv")):
        pd.testing.assert_frame_equal(pd.read_csv(path), pd.read_csv(tables_b / path.name), obj=path.name)
    files = sorted(p.name for p in (tables_a / "tuning").glob("*.json"))
    assert files and files == sorted(p.name for p in (tables_b / "tuning").glob("*.json"))
    for name in files:
        assert (tables_a / "tuning" / name).read_bytes() == (tables_b / "tuning" / name).read_bytes(), name


def test_hybrid_serves_every_customer(run_dir):
    """Every dim_customer customer, with or without history, gets K recommendations."""
    from helpers.data.star import load_tables
    from helpers.evaluation.metrics import Split
    from helpers.models.base import make_fit_data
    from helpers.models.hybrid import Hybrid, Rules
    from helpers.tuning.workflow import fit_components, load_tuning

    tables = load_tables(run_dir)
    split = Split.from_dict(json.loads((run_dir / "split.json").read_text()))
    tuning = load_tuning(run_dir / "reports" / "tables")
    fit = make_fit_data(tables["fact_transactions"], tables["dim_customer"], tables["dim_product"],
                        split.test_start, promotions=tables["dim_promotion"])
    cfg = tuning["hybrid"]["all"]
    h = Hybrid(fit_components(tuning, fit, "all"), cfg["weights"], Rules(**cfg["rules"]),
               cfg["light_max_baskets"]).fit(fit)
    ids, scores = h.recommend(tables["dim_customer"]["customer_id"].to_numpy(), k=10)
    assert ids.shape == (len(tables["dim_customer"]), 10) and np.isfinite(scores).all()
    cold = np.diff(fit.user_items.indptr) == 0
    assert cold.any(), "the tiny data should have customers without history"


# ------------------------------------------------------------------ browser
def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # the test set-up installs Debian's chromium when missing
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], capture_output=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        return shutil.which("chromium")
    return None


@pytest.fixture(scope="module")
def browser():
    exe = chromium()
    if exe is None:
        if in_ci():
            pytest.fail("headless Chromium is required in CI and could not be installed")
        pytest.skip("no Chromium on this machine")
    return exe


BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--allow-file-access-from-files", "--window-size=1280,2200", "--hide-scrollbars"]

# Runs at the end of the page's body: what the assertions need, written into the DOM as JSON.
MEASURE_JS = """
<script>
var recbookDone = false;
function recbookMeasure() {
  if (recbookDone) { return; } recbookDone = true;
  var scroll = '.recbook-scroll, .pst-scrollable-table-container';
  var tables = Array.from(document.querySelectorAll('article table, main table')).map(function (t) {
    var w = t.closest(scroll), c = w || t.parentElement, ox = getComputedStyle(c).overflowX;
    return {wrapped: !!w && (ox === 'auto' || ox === 'scroll'), scrollWidth: c.scrollWidth,
            clientWidth: c.clientWidth, head: (t.innerText || '').slice(0, 60)};
  });
  var imgs = Array.from(document.querySelectorAll('article img, main img')).map(function (i) {
    return {src: i.getAttribute('src'), width: i.naturalWidth}; });
  var params = document.querySelectorAll('.tag_parameters, .tag_injected-parameters').length;
  var pre = document.createElement('pre'); pre.id = 'recbook-measure';
  pre.textContent = JSON.stringify({tables: tables, images: imgs, parameter_cells: params,
                                    text: (document.querySelector('main') || document.body).innerText});
  document.body.appendChild(pre);
}
recbookMeasure();  // at the end of the body: the DOM is parsed and the style sheets applied
</script>
"""


def render(exe: str, page: Path, profile: Path, screenshot: Path | None = None) -> dict:
    """The page as Chromium renders it: visible text, tables' widths, images, parameter cells."""
    probe = page.with_name(f"_probe_{page.name}")  # beside the page, so relative links resolve
    probe.write_text(page.read_text().replace("</body>", MEASURE_JS + "</body>"))
    base = [exe, *BROWSER_FLAGS, f"--user-data-dir={profile}"]
    for _ in range(3):  # a loaded machine may end the virtual time before the page's scripts
        dom = subprocess.run([*base, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                             capture_output=True, text=True, timeout=180).stdout
        if 'id="recbook-measure"' in dom:
            break
    probe.unlink()
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([*base, f"--screenshot={screenshot}", "--virtual-time-budget=5000", page.as_uri()],
                       capture_output=True, timeout=180)
    found = re.search(r'<pre id="recbook-measure"[^>]*>(.*?)</pre>', dom, flags=re.S)
    assert found, f"the probe did not run on {page.name}"
    import html

    return json.loads(html.unescape(found.group(1)))


def book_pages(html_dir: Path) -> list[Path]:
    skip = {"genindex.html", "search.html"}
    pages = (p for p in html_dir.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts
             and p.name not in skip and not p.name.startswith("_probe_"))
    return sorted(p for p in pages if 'http-equiv="refresh"' not in p.read_text()[:2000].lower())  # not the redirect


#: A Python repr of a string printed as an output: a line that is nothing but a quoted string.
STRING_REPR = re.compile(r"^[ \t]*(['\"])[^'\"\n]*\1[ \t]*$", re.M)
LEAKS = ("PosixPath", "staging", "NaN", "Traceback", "Parameters (papermill", "# Parameters", "processed_dir =")


def screenshot_dir(tmp_path: Path) -> Path:
    return tmp_path / "screenshots"


def test_browser_landing_page_and_evaluation_chapter(run_dir, html_dir, browser, tmp_path):
    m = pd.read_csv(run_dir / "reports" / "tables" / "metrics.csv")
    shots = screenshot_dir(tmp_path)  # never the checkout's reports/
    landing = render(browser, html_dir / "book" / "index.html", tmp_path / "p1", shots / "landing.png")
    evaluation = render(browser, html_dir / "reports" / "executed" / "07_evaluation.html", tmp_path / "p2",
                        shots / "evaluation.png")
    if os.environ.get("RECBOOK_SCREENSHOTS"):
        target = Path(os.environ["RECBOOK_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        for png in shots.glob("*.png"):
            shutil.copy(png, target / png.name)
    text = re.sub(r"\s+", " ", landing["text"])
    assert "Executive summary" in text
    assert any(i["width"] > 100 for i in landing["images"]), f"no chart image on the landing page: {landing['images']}"
    for protocol in ("all", "new"):
        ndcg, hit = f"{overall(m, 'hybrid', protocol):.4f}", f"{overall(m, 'hybrid', protocol, 'hit_rate'):.1%}"
        assert ndcg in text, f"hybrid {protocol} NDCG@5 {ndcg} not visible on the landing page"
        assert hit in text, f"hybrid {protocol} hit rate@5 {hit} not visible on the landing page"
        assert ndcg in evaluation["text"]
    assert "Caveats" in text and "re-ranker" in text and "Three actions" in text
    for name in ("landing.png", "evaluation.png"):
        assert (shots / name).stat().st_size > 10_000


def glued_strings(run_dir: Path) -> set[str]:
    """Every string glued by an executed notebook, as its Python repr (``'Item-kNN'``)."""
    out = set()
    for nb in (run_dir / "reports" / "executed").glob("*.ipynb"):
        out |= {v for v in glued(nb).values() if len(v) > 2 and v[0] == v[-1] == "'"}
    return out


def test_browser_no_page_leaks_or_cuts_off_a_table(run_dir, html_dir, browser, tmp_path):
    reprs = glued_strings(run_dir)
    assert reprs  # the check below has something to look for
    problems = []
    pages = book_pages(html_dir)
    assert len(pages) >= 12
    for i, page in enumerate(pages):
        r = render(browser, page, tmp_path / f"q{i}")
        name = page.relative_to(html_dir).as_posix()
        problems += [f"{name}: {w!r}" for w in LEAKS if w in r["text"]]
        problems += [f"{name}: string repr {s.group(0).strip()!r}" for s in STRING_REPR.finditer(r["text"])]
        problems += [f"{name}: glued string shown as {v}" for v in reprs if v in r["text"]]
        if r["parameter_cells"]:
            problems.append(f"{name}: {r['parameter_cells']} parameters cell(s)")
        problems += [f"{name}: table {t['head']!r} is {t['scrollWidth']} px in {t['clientWidth']} px"
                     for t in r["tables"] if not t["wrapped"] and t["scrollWidth"] > t["clientWidth"] + 1]
        if "Traceback" in r["text"] or "Error" in r["text"].replace("Errors", "").replace("DataValidationError", ""):
            problems.append(f"{name}: an error is shown")
    assert not problems, "\n".join(problems)


def test_browser_performance_page_shows_the_run(run_dir, html_dir, browser, tmp_path):
    r = render(browser, html_dir / "book" / "performance.html", tmp_path / "p3")
    manifest = json.loads((run_dir / "reports" / "run_manifest.json").read_text())
    for nb, seconds in manifest["notebooks"].items():
        assert nb in r["text"] and f"{seconds:,.1f} s" in r["text"]
    assert any("run_schedule" in (i["src"] or "") and i["width"] > 100 for i in r["images"])
