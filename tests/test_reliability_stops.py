"""Timeouts and clean stops of the executors, and the numbers they give. Each situation is a test:

1. A hanging cell (``tests.plugins.hanging_models``: hung in native code, holding the GIL, SIGTERM
   ignored) is recorded as ``timeout`` with its elapsed time and the limit named; its worker is
   killed and replaced, and the run goes on: local executor (fast), and with a cell that finishes
   beside it on the local executor and on Dask (slow). Workers started ahead of a run
   (``LocalExecutor.start_ahead``) run its first cells, and are stopped when no run takes them (fast).
2. A worker killed from outside (as by the out-of-memory killer) records its cell as failed
   ("worker lost") and is replaced; the run goes on (slow; tests/test_runner.py has a fast case of a
   worker that exits). On Dask with a single worker the cell is recorded at once and the next cell
   runs on the replacement (fast: the task hangs before JAX is imported).
3. SIGINT to the run's process group (Ctrl-C at a terminal), SIGTERM and SIGKILL to a running
   ``ppl-suite run`` whose workers hang: no process of the run survives it by 10 s; SIGINT prints no
   worker traceback; the exit codes are 130, 143 and -9 (killed). Local executor with one worker:
   SIGINT and SIGKILL fast; with two workers, and on Dask: slow.
4. A run stopped by SIGINT, SIGTERM or SIGKILL after some cells finished, then run again, gives a
   table bitwise equal to an uninterrupted run's (timing columns aside), and the cells finished
   before the stop are reused exactly as stored (slow).
5. The numbers do not depend on the executor: the same cells, Pyro included, give bitwise equal
   rows in-process, on the local executor with one and two workers, and on Dask (slow).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from ppl_suite import executors
from ppl_suite.backends import SVIConfig
from ppl_suite.cell import Cell, Record
from ppl_suite.results import load
from tests.processes import below

ROOT = Path(__file__).resolve().parent.parent
HANGING = "tests.plugins.hanging_models"
SURVIVAL_SECONDS = 10  # no process of a stopped run may outlive it by more
TIMING = ("seconds", "steps_per_second", "digest")
SVI = SVIConfig(steps=200, eval_particles=200)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def cell(model: str, backend: str = "numpyro", seed: int = 0) -> Cell:
    return Cell(model, backend, "mean_field", seed, seed, (), SVI, 500)


def run_cells(cells: list[Cell], **options) -> dict[str, Record]:
    """Run cells on an executor in this process; the Records by cell key."""
    records: dict[str, Record] = {}
    executor = executors.get(options.pop("executor", "local"), plugins=[HANGING], **options)
    executor.run(cells, lambda c, record: records.setdefault(c.key, record))
    return records


def spawned(process: psutil.Process) -> list[psutil.Process]:
    """Worker processes below ``process``: interpreters started by multiprocessing's spawn."""
    return below(process)


def hung(pid: int) -> bool:
    """Whether the process ignores SIGTERM, which the hanging model does once it hangs."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    ignored = int(next(line for line in status.splitlines() if line.startswith("SigIgn:")).split()[1], 16)
    return bool(ignored >> (signal.SIGTERM - 1) & 1)


def gone(processes: list[psutil.Process]) -> bool:
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.05)


def kill_all(processes: list[psutil.Process]) -> None:
    """Clean up after a failed test: no process of it may keep running."""
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows without timing columns, sorted by key: what must be identical between two runs."""
    keep = [c for c in frame.columns if not any(part in c for part in TIMING)]
    return frame[keep].sort_values("key").reset_index(drop=True)


# 1. timeouts ----------------------------------------------------------------------------------


def test_hanging_cells_time_out_in_fresh_workers_and_the_run_goes_on():
    """Two hanging cells on one worker slot: each is stopped at the limit; the second one runs in a
    replacement worker (sent to the stopped one it would come back as "worker lost")."""
    cells = [cell("hanging", seed=0), cell("hanging", seed=1)]
    start = time.monotonic()
    records = run_cells(cells, jobs=1, cell_timeout=2.0)
    assert [records[c.key].row["status"] for c in cells] == ["timeout", "timeout"]
    for c in cells:
        row = records[c.key].row
        assert 2.0 <= row["wall_seconds"] < 10 and "cell timeout of 2 s" in row["error"]
    assert time.monotonic() - start < 30
    assert spawned(psutil.Process()) == []  # the stopped workers are gone, none left behind


def test_workers_started_ahead_run_the_cells_and_are_stopped_when_no_run_takes_them():
    """``LocalExecutor.start_ahead`` (``check`` starts its workers while it builds the reference): the
    cell runs in the worker started ahead (no other is spawned), which is stopped after the run;
    workers started and never run are stopped by ``stop_ahead``."""
    executor = executors.get("local", jobs=1, plugins=["tests.plugins.faulty_models"])
    executor.start_ahead(3)  # at most jobs
    ahead = [worker.pid for worker in spawned(psutil.Process())]
    seen: list[tuple[list[int], Record]] = []

    def on_record(c: Cell, record: Record) -> None:
        seen.append(([worker.pid for worker in spawned(psutil.Process())], record))

    try:
        executor.run([cell("faulty_raises", "pyro")], on_record)
        [(running, record)] = seen
        assert len(ahead) == 1 and running == ahead and "injected fault" in record.row["error"]
        assert spawned(psutil.Process()) == []
        executor.start_ahead(1)
        assert len(spawned(psutil.Process())) == 1
        executor.stop_ahead()
        assert spawned(psutil.Process()) == []
    finally:
        kill_all(spawned(psutil.Process()))


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "dask"])
def test_a_hanging_cell_times_out_while_the_others_finish(executor):
    """The limit must exceed a normal cell's time, worker start included: 60 s on a loaded machine."""
    cells = [cell("hanging"), cell("normal_normal"), cell("normal_normal", seed=1)]
    records = run_cells(cells, executor=executor, jobs=2, cell_timeout=60.0)
    assert records[cells[0].key].row["status"] == "timeout"
    assert "cell timeout of 60 s" in records[cells[0].key].row["error"]
    assert [records[c.key].row["status"] for c in cells[1:]] == ["ok", "ok"]


# 2. a worker killed from outside ---------------------------------------------------------------


@pytest.mark.slow
def test_a_killed_worker_fails_its_cell_and_is_replaced():
    cells = [cell("hanging", seed=0), cell("hanging", seed=1)]
    killed: list[int] = []

    def kill_each_worker() -> None:
        """SIGKILL each worker once it hangs, as the out-of-memory killer would."""
        deadline = time.monotonic() + 120
        while len(killed) < len(cells) and time.monotonic() < deadline:
            for worker in spawned(psutil.Process()):
                if worker.pid not in killed and hung(worker.pid):
                    worker.kill()
                    killed.append(worker.pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_each_worker)
    killer.start()
    records = run_cells(cells, jobs=1)
    killer.join()
    assert len(killed) == 2
    for c in cells:
        row = records[c.key].row
        assert row["status"] == "failed"
        assert row["error"] == "worker lost: its process was killed by SIGKILL"
        assert row["wall_seconds"] > 0


# 3. signals to a running `ppl-suite run` -------------------------------------------------------


def start_run(out: Path, *args: str) -> subprocess.Popen:
    """``ppl-suite run`` in its own session (so signals to its group reach nothing else)."""
    log = (out.parent / f"{out.name}.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "ppl_suite.cli", "run", "--out", str(out), "--no-report", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_hanging_run(tmp_path: Path, signum: int, executor: str, workers: int) -> tuple[int, str]:
    """Start a run of hanging cells on ``workers`` workers, wait until each hangs, send ``signum``
    (SIGINT to the whole process group, as a terminal's Ctrl-C does) and check that no process of the
    run outlives it by SURVIVAL_SECONDS. Returns the exit code and the run's output."""
    out = tmp_path / "run"
    seeds = [str(seed) for seed in range(workers)]
    run = start_run(
        out,
        *("--plugins", HANGING, "--models", "hanging", "--backends", "numpyro", "--seeds", *seeds),
        *("--steps", "200", "--jobs", str(workers), "--executor", executor),
    )
    parent = psutil.Process(run.pid)
    tree: list[psutil.Process] = []
    try:

        def hanging() -> bool:
            assert run.poll() is None, (tmp_path / "run.log").read_text()
            found = spawned(parent)
            return len(found) >= workers and all(hung(worker.pid) for worker in found)

        wait_until(hanging, 300, f"{workers} hanging workers")
        tree = parent.children(recursive=True)
        if signum == signal.SIGINT:
            os.killpg(run.pid, signum)
        else:
            run.send_signal(signum)
        code = run.wait(timeout=60)
        wait_until(lambda: gone(tree), SURVIVAL_SECONDS, "every process of the stopped run gone")
    finally:
        kill_all([parent, *tree])
        run.wait()
    return code, (tmp_path / "run.log").read_text()


EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -signal.SIGKILL}


@pytest.mark.parametrize(
    ("executor", "signum", "workers"),
    [
        ("local", signal.SIGINT, 1),
        ("local", signal.SIGKILL, 1),
        pytest.param("local", signal.SIGINT, 2, marks=pytest.mark.slow),
        pytest.param("local", signal.SIGTERM, 2, marks=pytest.mark.slow),
        pytest.param("local", signal.SIGKILL, 2, marks=pytest.mark.slow),
        pytest.param("dask", signal.SIGINT, 2, marks=pytest.mark.slow),
        pytest.param("dask", signal.SIGTERM, 2, marks=pytest.mark.slow),
        pytest.param("dask", signal.SIGKILL, 2, marks=pytest.mark.slow),
    ],
    ids=lambda value: value.name if isinstance(value, signal.Signals) else str(value),
)
def test_a_stopped_run_leaves_no_worker_alive(tmp_path, executor, signum, workers):
    code, output = stop_hanging_run(tmp_path, signum, executor, workers)
    assert code == EXIT_CODES[signum], output
    if signum == signal.SIGINT:
        assert "Traceback" not in output, output


# 4. stopped, then run again ---------------------------------------------------------------------


def normal_run(out: Path, wait: bool = True) -> subprocess.Popen:
    run = start_run(
        out,
        *("--models", "normal_normal", "--backends", "numpyro", "pyro"),
        *("--seeds", "0", "1", "--steps", "200", "--jobs", "1"),
    )
    if wait:
        assert run.wait(timeout=600) == 0, (out.parent / f"{out.name}.log").read_text()
    return run


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_a_stopped_run_completes_on_the_next_run_to_the_uninterrupted_table(tmp_path, signum):
    normal_run(tmp_path / "full")
    out = tmp_path / "stopped"
    run = normal_run(out, wait=False)
    try:
        wait_until(lambda: len(list((out / "cells").glob("*.json"))) >= 1, 600, "a finished cell")
        run.send_signal(signum)
        assert run.wait(timeout=60) == EXIT_CODES[signum]
    finally:
        run.kill()
        run.wait()
    kept = load(out).set_index("key")
    assert 1 <= len(kept) < 4
    normal_run(out)
    rows = pd.read_parquet(out / "rows.parquet")
    full = pd.read_parquet(tmp_path / "full" / "rows.parquet")
    pd.testing.assert_frame_equal(comparable(rows), comparable(full), check_exact=True)
    reused = rows.set_index("key").loc[kept.index]
    assert (reused["wall_seconds"] == kept["wall_seconds"]).all()  # returned exactly as stored


# 5. the same numbers on every executor ----------------------------------------------------------


@pytest.mark.slow
def test_pyro_and_numpyro_cells_give_bitwise_equal_rows_on_every_executor():
    from ppl_suite.execute import execute

    cells = [cell("normal_normal", backend, seed) for backend in ["pyro", "numpyro"] for seed in (0, 1)]
    in_process = {c.key: execute(c) for c in cells}
    runs = {
        "local, one worker": run_cells(cells, jobs=1),
        "local, two workers": run_cells(cells, jobs=2),
        "dask, two workers": run_cells(cells, executor="dask", jobs=2),
    }
    expected = comparable(pd.DataFrame([in_process[c.key].row for c in cells]))
    for name, records in runs.items():
        got = comparable(pd.DataFrame([records[c.key].row for c in cells]))
        pd.testing.assert_frame_equal(got, expected, check_exact=True, obj=name)
        for c in cells:
            np.testing.assert_array_equal(records[c.key].losses, in_process[c.key].losses, err_msg=name)


def kill_hung_workers(count: int, killed: list[int], seconds: float = 120) -> None:
    """SIGKILL each worker below this process once it hangs, as the out-of-memory killer would, until
    ``count`` were killed."""
    deadline = time.monotonic() + seconds
    while len(killed) < count and time.monotonic() < deadline:
        for worker in spawned(psutil.Process()):
            if worker.pid not in killed and hung(worker.pid):
                worker.kill()
                killed.append(worker.pid)
        time.sleep(0.05)


def test_dask_records_the_cell_of_its_only_worker_killed_and_runs_the_next_on_the_replacement(monkeypatch):
    """One Dask worker, killed while it runs a cell: the cell is recorded as lost at once (not at the
    cell timeout), and the next cell runs on the worker that replaces it (no task is pinned to the
    dead worker's address), where it is killed too. The task hangs before importing JAX (a stand-in
    for ``run_cell``), so the test takes seconds."""
    from ppl_suite.executors import dask as dask_executor
    from tests.plugins.hanging_models import hanging_task

    monkeypatch.setattr(dask_executor, "run_cell", hanging_task)
    cells = [cell("hanging", seed=0), cell("hanging", seed=1)]
    killed: list[int] = []
    killer = threading.Thread(target=kill_hung_workers, args=(len(cells), killed))
    killer.start()
    start = time.monotonic()
    try:
        records = run_cells(cells, executor="dask", jobs=1, cell_timeout=300.0)
    finally:
        killer.join()
    assert len(killed) == 2
    assert time.monotonic() - start < 60  # well before the cell timeout
    for c in cells:
        row = records[c.key].row
        assert row["status"] == "failed" and row["error"].startswith("worker lost: "), row["error"]
        assert 0 < row["wall_seconds"] < 60
    assert spawned(psutil.Process()) == []


@pytest.mark.slow  # about 20 s: two worker restarts
def test_dask_stops_a_timed_out_cell_on_its_only_worker_and_runs_the_next(monkeypatch):
    """One Dask worker, its cells hung: each is recorded as timed out at the limit, its worker (found
    through the scheduler, the task being pinned to none) is restarted, and the next cell runs on it."""
    from ppl_suite.executors import dask as dask_executor
    from tests.plugins.hanging_models import hanging_task

    monkeypatch.setattr(dask_executor, "run_cell", hanging_task)
    cells = [cell("hanging", seed=0), cell("hanging", seed=1)]
    records = run_cells(cells, executor="dask", jobs=1, cell_timeout=3.0)
    for c in cells:
        row = records[c.key].row
        assert row["status"] == "timeout" and "cell timeout of 3 s" in row["error"], row["error"]
        assert 3.0 <= row["wall_seconds"] < 60
    assert spawned(psutil.Process()) == []


class ClusterWithoutWorkers:
    """A client of a cluster (another's, ``--scheduler``) whose last worker left and none comes back."""

    def scheduler_info(self, n_workers: int = -1) -> dict:
        return {"workers": {}}

    def wait_for_workers(self, n_workers: int, timeout: float | None = None) -> None:
        if timeout is not None:
            raise TimeoutError(f"no worker within {timeout} s")


def test_dask_records_every_cell_left_when_a_cluster_never_gets_a_worker_back():
    from ppl_suite.executors.dask import DaskExecutor

    cells = [cell("normal_normal", seed=seed) for seed in range(3)]
    got: dict[str, Record] = {}
    DaskExecutor(scheduler="tcp://elsewhere:8786")._run(
        ClusterWithoutWorkers(),
        cells,
        lambda c, record: got.__setitem__(c.key, record),
        {},
        own_cluster=False,
    )
    assert sorted(got) == sorted(c.key for c in cells)  # each recorded once, none left waiting
    assert all(
        r.row["status"] == "failed" and "the cluster has had no worker" in r.row["error"]
        for r in got.values()
    )
