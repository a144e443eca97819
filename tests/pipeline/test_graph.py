"""The notebook dependency graph: declaration checks and the scheduler (helpers.pipeline.graph)."""

from __future__ import annotations

import threading
import time

import pytest

from helpers.pipeline.graph import DEPENDS_ON, check_graph, run_graph, start_order
from helpers.pipeline.run import numbered_notebooks


def test_declared_graph_matches_the_notebooks():
    names = [p.stem for p in numbered_notebooks()]
    check_graph(names, DEPENDS_ON)
    assert set(DEPENDS_ON["06_hybrid"]) >= {"03_popularity", "04_als", "05_similarity"}
    assert "06_hybrid" in DEPENDS_ON["08_export"] and "06_hybrid" in DEPENDS_ON["07_evaluation"]
    for name in names[1:]:
        assert "00_data_model" in DEPENDS_ON[name]


@pytest.mark.parametrize("graph, message", [
    ({"00_a": (), "01_b": ("00_a",)}, "no DEPENDS_ON entry for ['02_c']"),
    ({"00_a": (), "01_b": ("00_a",), "02_c": ("00_x",)}, "unknown notebook '00_x'"),
    ({"00_a": (), "01_b": ("02_c",), "02_c": ()}, "01_b depends on 02_c, which is not an earlier notebook"),
    ({"00_a": ("00_a",), "01_b": (), "02_c": ()}, "00_a depends on 00_a"),
    ({"00_a": (), "01_b": (), "02_c": (), "03_gone": ()}, "do not exist: ['03_gone']"),
])
def test_invalid_graphs_are_refused(graph, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_graph(["00_a", "01_b", "02_c"], graph)


def test_start_order_numeric_with_one_job_longest_chain_first_otherwise():
    names = sorted(DEPENDS_ON)
    assert start_order(names, DEPENDS_ON, 1) == names
    order = start_order(names, DEPENDS_ON, 2)
    # the two longest model notebooks first (each heads a chain through 06 and 08), then 03
    assert order[0] == "00_data_model" and set(order[1:3]) == {"04_als", "05_similarity"}
    assert order[3] == "03_popularity"
    assert order.index("03_popularity") < order.index("01_eda")


class FakeTasks:
    """Tasks that sleep, recording start/end order and the number running at once."""

    def __init__(self, seconds: dict[str, float], fail: str | None = None):
        self.seconds, self.fail = seconds, fail
        self.started, self.finished = [], []
        self.now = self.peak = 0
        self.lock = threading.Lock()
        self.aborted = threading.Event()

    def start(self, name):
        self.started.append(name)

        def task():
            with self.lock:
                self.now += 1
                self.peak = max(self.peak, self.now)
            self.aborted.wait(self.seconds.get(name, 0.02))  # abort() cuts the sleep short, like a kill
            with self.lock:
                self.now -= 1
            if name == self.fail:
                raise RuntimeError(f"{name} broke")
            if self.aborted.is_set():
                raise RuntimeError(f"{name} stopped")
            return name

        return task

    def finish(self, name, value):
        assert value == name
        self.finished.append(name)


GRAPH = {"00_a": (), "01_b": ("00_a",), "02_c": ("00_a",), "03_d": ("00_a",), "04_e": ("01_b", "02_c"),
         "05_f": ("04_e",)}


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_run_graph_respects_dependencies_and_the_job_limit(jobs):
    t = FakeTasks({"01_b": 0.15, "02_c": 0.1, "03_d": 0.1})
    run_graph(start_order(list(GRAPH), GRAPH, jobs), GRAPH, jobs, t.start, t.finish)
    assert sorted(t.finished) == sorted(GRAPH)
    for n in GRAPH:  # finished only after all its dependencies finished
        assert all(t.finished.index(d) < t.finished.index(n) for d in GRAPH[n])
    assert t.peak == min(jobs, 3)  # 01, 02, 03 can overlap
    if jobs == 1:
        assert t.started == sorted(GRAPH)


def test_run_graph_tasks_done_at_start_take_no_slot():
    t = FakeTasks({"01_b": 0.1, "02_c": 0.1})
    instant = {"00_a", "03_d"}
    started = []

    def start(name):
        started.append(name)
        return None if name in instant else t.start(name)

    run_graph(sorted(GRAPH), GRAPH, 2, start, t.finish)
    assert t.peak == 2 and sorted(t.finished) == ["01_b", "02_c", "04_e", "05_f"]
    assert started.index("03_d") < started.index("04_e")


def test_run_graph_first_failure_aborts_the_running_ones_and_is_raised():
    t = FakeTasks({"01_b": 0.01, "02_c": 30, "03_d": 0.01}, fail="01_b")
    others = []
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match="01_b broke"):
        run_graph(["00_a", "01_b", "02_c", "03_d", "04_e", "05_f"], GRAPH, 2, t.start, t.finish,
                  on_other_error=lambda n, e: others.append((n, str(e))), abort=t.aborted.set)
    assert time.perf_counter() - t0 < 10  # 02_c was cut short, not waited for
    assert t.started == ["00_a", "01_b", "02_c"]  # 03_d, ready, never started after the failure
    assert others == [("02_c", "02_c stopped")] and t.now == 0


def test_run_graph_an_interrupt_while_waiting_aborts_and_propagates():
    t = FakeTasks({"01_b": 30})

    def finish(name, value):
        t.finish(name, value)
        if name == "00_a":  # stands for a signal handler raising while the loop waits
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_graph(sorted(GRAPH), GRAPH, 2, t.start, finish, abort=t.aborted.set)
    assert t.aborted.is_set() and t.now == 0


def test_run_graph_rejects_zero_jobs():
    with pytest.raises(ValueError):
        run_graph(["00_a"], {"00_a": ()}, 0, lambda n: None, lambda n, v: None)


def test_toc_without_drops_one_entry_only(tmp_path):
    from helpers import config
    from helpers.pipeline.book import toc_without

    out = toc_without(config.PROJECT_ROOT / "_toc.yml", tmp_path / "toc.yml", "book/performance")
    kept = out.read_text()
    assert "book/performance" not in kept and "book/methods" in kept and "reports/executed/07_evaluation" in kept
    original = (config.PROJECT_ROOT / "_toc.yml").read_text()
    assert len(original.splitlines()) == len(kept.splitlines()) + 1
