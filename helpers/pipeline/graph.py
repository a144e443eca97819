"""The notebook dependency graph and the scheduler that runs it.

Why an own scheduler rather than a task runner (``doit``, ``make``): the graph has nine
nodes, every node is "execute one notebook in a child process", and the run needs three
things those runners do not give together: a job limit with a preference order among the
ready nodes (longest chain first), a hook that stops and kills the running children on the
first failure or on SIGINT/SIGTERM, and no files of their own (the rerun cache lives in
:mod:`helpers.pipeline.cache`, keyed on what a notebook reads). :func:`run_graph` is that
loop in about forty lines: start ready nodes up to ``jobs``, wait for the first to finish,
repeat.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

#: For each notebook (file name without ``.ipynb``), the notebooks whose outputs it
#: reads. A notebook may only depend on lower-numbered ones (so ``--jobs 1``, numeric
#: order, is one valid order), and every numbered notebook must be listed.
#:
#: * 00 writes the star schema (``processed_dir``) that every other notebook reads.
#: * 01 (EDA) writes only figures. 02 writes ``customer_features.parquet`` and
#:   ``segments.parquet`` (read by no notebook: the model notebooks compute the
#:   segments of each stage's own window) and ``segment_sizes.csv``.
#: * 03, 04 and 05 each tune their models (``tables/tuning/<model>.json``, ``metrics_<model>.csv``,
#:   ``predictions_<model>.parquet``, model cache fits); none reads another's outputs.
#: * 06 reads the tuned parameters of 03-05 and their cached fits, and writes the
#:   ``hybrid`` tuning (tuned on validation only) and the ranker.
#: * 07 scores that hybrid on the test window and collects ``metrics_*.csv`` /
#:   ``predictions_*.parquet`` of 03-07; 08 does not need them, so it runs beside 07.
#: * 08 refits the hybrid from the tuning of 03-06 and the ranker of 06.
DEPENDS_ON: dict[str, tuple[str, ...]] = {
    "00_data_model": (),
    "01_eda": ("00_data_model",),
    "02_features_segments": ("00_data_model",),
    "03_popularity": ("00_data_model",),
    "04_als": ("00_data_model",),
    "05_similarity": ("00_data_model",),
    "06_hybrid": ("00_data_model", "03_popularity", "04_als", "05_similarity"),
    "07_evaluation": ("00_data_model", "03_popularity", "04_als", "05_similarity", "06_hybrid"),
    "08_export": ("00_data_model", "03_popularity", "04_als", "05_similarity", "06_hybrid"),
}

#: Typical run time in seconds (Complete Journey cold run with two notebooks at once,
#: ``make bench``). With ``--jobs`` above 1, of the notebooks ready to start the one with the
#: longest chain of run times ahead of it (itself plus its slowest line of dependants)
#: starts first; unknown notebooks count 60 s.
TYPICAL_SECONDS = {"00_data_model": 27, "01_eda": 18, "02_features_segments": 12, "03_popularity": 27,
                   "04_als": 115, "05_similarity": 139, "06_hybrid": 76, "07_evaluation": 55, "08_export": 72}


def check_graph(names: list[str], depends_on: dict[str, tuple[str, ...]]) -> None:
    """Raise ``ValueError`` unless ``depends_on`` lists exactly ``names`` and every dependency is
    a known, lower-numbered notebook."""
    problems = []
    missing = [n for n in names if n not in depends_on]
    if missing:
        problems.append(f"no DEPENDS_ON entry for {missing}")
    unknown = sorted(set(depends_on) - set(names))
    if unknown:
        problems.append(f"DEPENDS_ON names notebooks that do not exist: {unknown}")
    for name, deps in depends_on.items():
        for dep in deps:
            if dep not in names:
                problems.append(f"{name} depends on unknown notebook {dep!r}")
            elif dep >= name:
                problems.append(f"{name} depends on {dep}, which is not an earlier notebook")
    if problems:
        raise ValueError("invalid notebook dependencies: " + "; ".join(problems))


def ancestors(name: str, depends_on: dict[str, tuple[str, ...]]) -> set[str]:
    """Every notebook ``name`` depends on, directly or through others."""
    out: set[str] = set()
    todo = list(depends_on.get(name, ()))
    while todo:
        dep = todo.pop()
        if dep not in out:
            out.add(dep)
            todo.extend(depends_on.get(dep, ()))
    return out


def start_order(names: list[str], depends_on: dict[str, tuple[str, ...]], jobs: int,
                seconds: dict[str, float] = TYPICAL_SECONDS) -> list[str]:
    """Preference among ready notebooks: numeric with one job, longest chain ahead first otherwise."""
    if jobs <= 1:
        return sorted(names)
    dependants = {n: [m for m in names if n in depends_on.get(m, ())] for n in names}
    chain: dict[str, float] = {}
    for n in sorted(names, reverse=True):  # dependants have higher numbers
        chain[n] = seconds.get(n, 60) + max((chain[m] for m in dependants[n]), default=0)
    return sorted(names, key=lambda n: (-chain[n], n))


def run_graph(order: list[str], depends_on: dict[str, tuple[str, ...]], jobs: int,
              start: Callable[[str], Callable[[], object] | None], finish: Callable[[str, object], None],
              on_other_error: Callable[[str, BaseException], None] | None = None,
              abort: Callable[[], None] | None = None) -> None:
    """Run a dependency graph with at most ``jobs`` tasks at once.

    ``order`` lists the nodes by preference; a node becomes ready when every dependency
    that is itself in ``order`` has finished (others count as done). ``start(name)`` is
    called in this thread and returns either ``None`` (the node finished at once, taking
    no slot) or a function that a worker thread calls; its return value goes to
    ``finish(name, value)``, again in this thread. The first exception (of ``start``, a
    worker or ``finish``) stops new starts and calls ``abort()``, which must make the running
    tasks return soon (kill their processes: a run is all or nothing, so their results would
    be thrown away); they are waited for (their errors go to ``on_other_error``), then the
    first exception is raised. An exception raised in this thread while it waits
    (``KeyboardInterrupt``, or a signal handler's) also calls ``abort()`` before the workers
    are joined, and is raised.
    """
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    members = set(order)
    pending = list(order)
    done: set[str] = set()
    running: dict = {}
    error: BaseException | None = None

    def next_ready():
        return next((n for n in pending if all(d in done or d not in members for d in depends_on.get(n, ()))), None)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        try:
            while True:
                while error is None and len(running) < jobs and (name := next_ready()) is not None:
                    pending.remove(name)
                    try:
                        task = start(name)
                    except Exception as exc:
                        error = exc
                        if abort is not None:
                            abort()
                        break
                    if task is None:
                        done.add(name)
                    else:
                        running[pool.submit(task)] = name
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in sorted(finished, key=lambda f: running[f]):
                    name = running.pop(fut)
                    try:
                        finish(name, fut.result())
                        done.add(name)
                    except Exception as exc:
                        if error is None:
                            error = exc
                            if abort is not None:
                                abort()
                        elif on_other_error is not None:
                            on_other_error(name, exc)
        except BaseException:
            if abort is not None:
                abort()
            raise
    if error is not None:
        raise error
    if pending:
        raise RuntimeError(f"notebooks {pending} never became ready (dependency cycle?)")
