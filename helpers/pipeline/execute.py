"""One notebook executed by papermill in a child process, and the children killed on demand.

Each notebook runs in its own process (``python -m helpers.pipeline.execute SPEC``, which calls
:func:`papermill.execute_notebook`; its kernel is that process's child), so the run can stop
every running notebook at once: on the first failure (the run is all or nothing, their results
would be thrown away) and on SIGINT/SIGTERM. :class:`Children` kills a child together with its
kernel, by process id. The kernel's working directory is the project root.

That command is not started as a new interpreter: importing papermill (nbformat's JSON-schema
checks, jupyter_client) takes about 2 s, which every notebook paid (a trivial notebook took
3.3 s, of which 1 s in papermill). The standard library's ``forkserver`` (:mod:`multiprocessing`)
imports it once per run, in a server process started before the first notebook, and forks one
single-threaded child per notebook from there: the same program with the same arguments,
environment, working directory, new session and output files as the command. Any other command
(the tests' fake notebooks) runs as a plain subprocess. As with every ``multiprocessing`` start
method but fork, a script that calls :func:`helpers.pipeline.run.run` itself must do so under
``if __name__ == "__main__":`` (the CLI, notebooks and pytest need nothing).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path

import psutil

from helpers import config

KERNEL_NAME = "python3"


class NotebookFailed(RuntimeError):
    """A notebook stopped with an error; ``cell`` is the code cell (1-based, ``None``: at start-up)."""

    def __init__(self, notebook: str, cell: int | None, error: str, executed_copy: Path | None):
        self.notebook, self.cell, self.error, self.executed_copy = notebook, cell, error, executed_copy
        where = f"cell {cell}" if cell is not None else "start-up"
        kept = f"; the partially executed copy is kept at {executed_copy}" if executed_copy else ""
        super().__init__(f"Notebook {notebook} failed at {where}: {error}{kept}")


class Stopped(RuntimeError):
    """A notebook's process was killed by the run (another notebook failed, or the run was interrupted)."""


def papermill_command(nb: Path, out: Path, parameters: dict, progress: bool) -> list[str]:
    """The child command executing ``nb`` into ``out`` (parameters passed as JSON, never through YAML)."""
    spec = json.dumps({"input": str(nb), "output": str(out), "parameters": parameters, "progress": progress})
    return [sys.executable, "-m", "helpers.pipeline.execute", spec]


class Children:
    """The notebook processes running now, by name; :meth:`kill_all` ends each with its kernel."""

    def __init__(self):
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self.stopping = False

    def run(self, name: str, cmd: list[str], env: dict, log_path: Path, progress: bool) -> int:
        """Run ``cmd`` to its end (output to ``log_path``, stderr also to the terminal with ``progress``)."""
        spec = _own_spec(cmd)
        with open(log_path, "wb") as log:
            with self._lock:
                if self.stopping:
                    raise Stopped(name)
                if spec is None:
                    proc = subprocess.Popen(cmd, env=env, cwd=config.PROJECT_ROOT, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=None if progress else log, start_new_session=True)
                else:
                    proc = _forkserver().Process(target=_forked, args=(spec, dict(env), str(log_path), progress),
                                                 name=name, daemon=False)
                    proc.start()
                self._procs[name] = proc
            try:
                if spec is None:
                    return proc.wait()
                proc.join()
                return proc.exitcode
            finally:
                with self._lock:
                    self._procs.pop(name, None)

    def kill_all(self, grace_s: float = 5.0) -> None:
        """Stop every child and its descendants (SIGTERM, SIGKILL after ``grace_s``); no new ones start."""
        with self._lock:
            self.stopping = True
            procs = list(self._procs.values())
        victims = []
        for proc in procs:
            try:
                parent = psutil.Process(proc.pid)
                victims += [parent, *parent.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        for p in victims:
            try:
                p.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(victims, timeout=grace_s)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=grace_s)


def _own_spec(cmd: list[str]) -> str | None:
    """The SPEC of a :func:`papermill_command`, or ``None`` for any other command."""
    own = [sys.executable, "-m", __name__ if __name__ != "__main__" else "helpers.pipeline.execute"]
    return cmd[3] if len(cmd) == 4 and cmd[:3] == own else None


_SERVER_LOCK = threading.Lock()
_SERVER: list = []


def _forkserver():
    """The ``forkserver`` context, papermill imported in its server (started on first use, once per process)."""
    with _SERVER_LOCK:
        if not _SERVER:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["papermill", "helpers.pipeline.execute"])
            _SERVER.append(ctx)
        return _SERVER[0]


def start_forkserver() -> None:
    """Start the server now (it imports papermill while the run prepares), not at the first notebook."""
    _forkserver()
    from multiprocessing import forkserver

    forkserver.ensure_running()


def _forked(spec: str, env: dict, log_path: str, progress: bool) -> None:
    """A forked child doing what ``python -m helpers.pipeline.execute SPEC`` does, set up as
    :class:`Children` starts that command: own session, environment, working directory, stdin
    from /dev/null, stdout (and stderr without ``progress``) to the log."""
    os.setsid()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(config.PROJECT_ROOT)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    if not progress:
        os.dup2(log, 2)
    os.close(log)
    os.close(null)
    rc = _child(json.loads(spec))
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(rc)


def failed_cell(executed: Path) -> tuple[int | None, str]:
    """Index (code cells counted from 1) and error of the failing cell of an executed copy."""
    import nbformat  # start-up: only read after a failure

    try:
        nb = nbformat.read(executed, as_version=4)
    except (OSError, ValueError):
        return None, "the notebook did not start"
    code_i = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code_i += 1
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
                return code_i, f"{out.get('ename')}: {out.get('evalue')} (code cell {code_i}: `{first[:80]}`)"
    return None, "unknown error"


def hide_parameter_cells(path: Path) -> None:
    """Collapse the parameters and injected-parameters cells in the book (tag ``hide-cell``)."""
    import nbformat  # start-up: nbformat is only needed once a notebook ran

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if ("parameters" in tags or "injected-parameters" in tags) and "hide-cell" not in tags:
            cell.metadata["tags"] = [*tags, "hide-cell"]
    nbformat.write(nb, path)


def _child(spec: dict) -> int:
    import signal

    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # KeyboardInterrupt: papermill stops its kernel
    try:
        pm.execute_notebook(spec["input"], spec["output"], parameters=spec["parameters"], kernel_name=KERNEL_NAME,
                            progress_bar=spec["progress"], log_output=False,
                            # the kernel's working directory (papermill's cwd= would chdir this process)
                            resources={"metadata": {"path": str(config.PROJECT_ROOT)}})
    except PapermillExecutionError:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_child(json.loads(sys.argv[1])))
