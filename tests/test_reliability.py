"""The runner never loses or mixes work, and its exit code says what happened. One test each:

- a missing --out folder is created; a user's file in a results folder survives a rerun
- a non-empty folder that is not a results folder is refused with exit 2 and left untouched
- a rerun reuses finished cells: rows identical, timing columns included
- a changed package version or code hash changes the digest: the stored cell is not reused
- a second run on a busy folder exits 2 at once naming the holder's PID; a killed holder's lock is stale
- a corrupted, truncated or missing cell file is named in one warning line and its cell rerun
- failed, diverged and timed-out cells are rerun
- temporary files of killed writes are removed, a user's hidden files are not
- --fresh removes only the suite's files (a user's files survive it)
- SIGTERM keeps the finished cells, prints one line, exits 143; the next run completes the table
- a run whose cells all fail writes a report and exits 1; `ppl-suite report` on it exits 0
- a planted error (a model whose NumPy log joint is off by a constant) exits 3 naming the checks
- an internal error exits 4 with one line, its traceback in RESULTS/logs/
- every bad flag and folder is reported at once with exit 2, nothing created; --jobs is capped
- results files follow the user's umask
- `--version`; no subcommand prints help; `list` answers in under 2 s without torch or JAX

Where a test is about the results folder (reuse, damage, --fresh, a user's files, the checks' exit
codes) and not about the workers, its cells run in this process (``cells_here``: the executor that
``check`` uses, the worker's own ``run_cell``, with no cell timeout) and its command is ``cli.main``,
so that no cell worker or CLI process is started for it (a report's figure processes still are); the
workers' promises (replaced, timed out, stopped) are tested in ``test_runner`` and
``test_reliability_stops``, and SIGTERM here still stops a run of local workers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ppl_suite import checks, cli, console, executors, matrix, runner, store
from ppl_suite.checking.in_process import InProcessExecutor
from ppl_suite.results import load
from tests.plugins import FAULTY, imported_afresh

ROOT = Path(__file__).resolve().parent.parent
SMALL = """
models = ["normal_normal"]
backends = ["numpyro"]
guides = ["mean_field"]
seeds = [0, 1, 2]
[svi]
steps = 200
[evaluation]
samples = 1000
[params.normal_normal]
n = 20
"""


def run(config: Path, out: Path, *extra: str) -> int:
    return cli.main(["run", "--config", str(config), "--out", str(out), "--jobs", "1", "--no-report", *extra])


def run_cells_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs that follow run their cells in this process, one after another, whatever the executor
    asked for."""
    monkeypatch.setattr(executors, "get", lambda name, **options: InProcessExecutor())


@pytest.fixture
def cells_here(monkeypatch) -> None:
    run_cells_here(monkeypatch)


def listing(folder: Path) -> dict[str, float]:
    """Every file under a folder with its modification time."""
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """(config, results folder) of three finished normal_normal cells, written into a missing folder."""
    root = tmp_path_factory.mktemp("finished")
    config = root / "small.toml"
    config.write_text(SMALL)
    out = root / "missing" / "results"
    with pytest.MonkeyPatch.context() as monkeypatch:
        run_cells_here(monkeypatch)
        assert run(config, out) == 0
    return config, out


@pytest.fixture
def results(finished, tmp_path) -> tuple[Path, Path]:
    """A copy of the finished folder, for a test to change."""
    config, out = finished
    copy = tmp_path / "results"
    shutil.copytree(out, copy)
    return config, copy


def cell_files(out: Path) -> list[Path]:
    return sorted((out / "cells").glob("*.json"))


def test_a_users_files_in_a_results_folder_survive_a_rerun(results, cells_here):
    config, out = results
    (out / "notes.txt").write_text("mine")
    (out / "artifacts" / "keep.csv").write_text("a,b\n")
    assert run(config, out) == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "artifacts" / "keep.csv").read_text() == "a,b\n"


def test_a_non_empty_folder_that_is_not_a_results_folder_is_refused(finished, tmp_path, capsys):
    config, _ = finished
    out = tmp_path / "mine"
    (out / "artifacts").mkdir(parents=True)
    (out / "artifacts" / "keep.csv").write_text("a,b\n")
    before = listing(out)
    assert run(config, out) == 2
    assert "is not empty (artifacts) and is not a results folder" in capsys.readouterr().err
    assert listing(out) == before and sorted(p.name for p in out.iterdir()) == ["artifacts"]


def test_a_rerun_reuses_finished_cells_exactly(finished, results, capsys):
    config, out = results
    stamps = {path: path.stat().st_mtime_ns for path in cell_files(out)}
    assert run(config, out) == 0
    assert "reusing 3 finished cells stored in" in capsys.readouterr().out
    assert {path: path.stat().st_mtime_ns for path in cell_files(out)} == stamps
    again, first = load(out), load(finished[1])
    assert {"wall_seconds", "fit_seconds", "compile_seconds"} <= set(again.columns)
    pd.testing.assert_frame_equal(again, first, check_exact=True)
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "rows.parquet"), pd.read_parquet(finished[1] / "rows.parquet")
    )


@pytest.mark.parametrize(
    "change",
    [
        ("package_versions", lambda: {"numpy": "0.0"}),
        ("code_hash", lambda model, guide: "another source"),
    ],
    ids=["versions", "code"],
)
def test_a_changed_version_or_code_means_a_stored_cell_is_not_reused(results, monkeypatch, change):
    config, out = results
    cells = matrix.expand(matrix.load(path=config)).cells
    folder = store.ResultsStore(out)
    assert all(folder.stored(cell).reusable for cell in cells)
    monkeypatch.setattr(store, *change)
    assert [folder.stored(cell).status for cell in cells] == [
        None,
        None,
        None,
    ]  # nothing under the new digests


HOLD_LOCK = """
import sys, time
from ppl_suite.store import ResultsStore
with ResultsStore(sys.argv[1]).locked():
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_second_run_on_a_busy_folder_exits_2_naming_the_holder(results, capsys):
    config, out = results
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        assert run(config, out) == 2
        assert time.monotonic() - start < 10
        err = capsys.readouterr().err
        assert f"is in use by another run (PID {holder.pid} on" in err and "started 20" in err
    finally:
        holder.kill()
        holder.wait()
    assert run(config, out) == 0  # the killed holder's lock went with it: not stale


def test_damaged_cell_files_are_named_in_one_warning_and_their_cells_rerun(results, cells_here, capsys):
    config, out = results
    names = [path.stem for path in cell_files(out)]
    (out / "cells" / f"{names[0]}.json").write_text('{"status": "o')
    _truncate(out / "artifacts" / f"{names[1]}.npz")
    (out / "traces" / f"{names[2]}.npy").unlink()
    assert run(config, out) == 0
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1
    for named in (f"cells/{names[0]}.json", f"artifacts/{names[1]}.npz", f"traces/{names[2]}.npy is missing"):
        assert named in warnings[0]
    assert list(load(out)["status"]) == ["ok"] * 3
    assert all(np.load(out / "traces" / f"{name}.npy").size == 200 for name in names)


def _truncate(path: Path) -> None:
    payload = path.read_bytes()
    path.write_bytes(payload[: len(payload) // 2])


def test_cells_that_failed_diverged_or_timed_out_are_rerun(results, cells_here, capsys):
    config, out = results
    paths = cell_files(out)
    for path, status in zip(paths, ["failed", "diverged", "timeout"], strict=True):
        path.write_text(json.dumps(json.loads(path.read_text()) | {"status": status, "error": "planted"}))
    assert run(config, out) == 0
    assert "reusing" not in capsys.readouterr().out
    assert [json.loads(path.read_text())["status"] for path in paths] == ["ok"] * 3


def test_temporary_files_of_killed_writes_are_removed(results, capsys):
    config, out = results
    name = cell_files(out)[0].stem
    leftovers = [
        out / "cells" / f".{name}.json.k2j_9x0a{store.PARTIAL}",
        out / f".rows.parquet.abcd1234{store.PARTIAL}",
    ]
    kept = [
        out / ".my-settings",
        out / "cells" / f".notes.txt.abcd1234{store.PARTIAL}",
        out / ".rows.parquet.abcd1234",
    ]
    for path in leftovers + kept:
        path.write_text("x")
    assert run(config, out) == 0
    assert "removed 2 temporary files" in capsys.readouterr().out
    assert not any(p.exists() for p in leftovers) and all(p.exists() for p in kept)


def test_fresh_removes_only_the_suites_files(results, cells_here):
    config, out = results
    other = "0123456789abcdef"  # a cell of another configuration
    for folder, suffix in store.CELL_FILES.items():
        shutil.copy(next((out / folder).glob(f"*.{suffix}")), out / folder / f"{other}.{suffix}")
    (out / "logs").mkdir()
    (out / "logs" / "error-2000-01-01T00-00-00.log").write_text("old")
    users = [out / "cells" / "mine.json", out / "traces" / "notes.npy", out / "logs" / "my.log", out / "x.md"]
    for path in users:
        path.write_text("mine")
    assert run(config, out, "--fresh") == 0
    assert all(
        not (out / folder / f"{other}.{suffix}").exists() for folder, suffix in store.CELL_FILES.items()
    )
    assert not (out / "logs" / "error-2000-01-01T00-00-00.log").exists()
    assert all(path.read_text() == "mine" for path in users)
    assert len(load(out)) == 3


def test_sigterm_keeps_finished_cells_prints_one_line_and_exits_143(results, monkeypatch, capsys):
    _, out = results
    config = out.parent / "four_seeds.toml"  # the module's config stays as the other tests read it
    config.write_text(SMALL.replace("seeds = [0, 1, 2]", "seeds = [0, 1, 2, 3]"))
    write = store.ResultsStore.write

    def write_then_terminate(self, cell, record):
        write(self, cell, record)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(store.ResultsStore, "write", write_then_terminate)
    assert run(config, out) == 143
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"SIGTERM: stopped; 4 of 4 cells are kept in {out}; rerun the same command to run the others"
    ]
    assert len(pd.read_parquet(out / "rows.parquet")) == 4
    assert json.loads((out / "manifest.json").read_text())["stopped_by"] == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    monkeypatch.undo()
    assert run(config, out) == 0
    assert "reusing 4 finished cells" in capsys.readouterr().out


def test_a_run_whose_cells_all_fail_writes_a_report_and_exits_1(tmp_path, cells_here, capsys):
    out, report = tmp_path / "r", tmp_path / "report"
    argv = [
        "run",
        "--plugins",
        FAULTY,
        "--models",
        "faulty_raises",
        "--backends",
        "pyro",
    ]
    argv += ["--seeds", "0", "--steps", "200", "--out", str(out), "--jobs", "1", "--report", str(report)]
    with imported_afresh(FAULTY):
        code = cli.main(argv)
    stdout, stderr = capsys.readouterr()
    assert code == 1, stdout + stderr
    assert "1 cell: 0 ok, 1 failed" in stdout and "injected fault" in stdout
    assert (report / "report.md").exists() and (report / "report.html").exists()
    assert cli.main(["report", str(out), "--out", str(tmp_path / "again"), "--format", "md"]) == 0


OFFSET_PLUGIN = '''
"""normal_normal whose NumPy log joint is off by one nat: every correctness check must catch it."""
from dataclasses import replace

import models
from models.normal_normal import numpyro_impl, spec


def log_joint_plus_one(latents, data, params):
    return spec.SPEC.log_joint(latents, data, params) + 1.0


if "offset_log_joint" not in models.names():
    models.register(
        replace(spec.SPEC, name="offset_log_joint", module="", log_joint=log_joint_plus_one),
        numpyro_model=numpyro_impl.model,
    )
'''


def test_a_planted_log_joint_error_exits_3_naming_the_checks(tmp_path, cells_here, monkeypatch, capsys):
    (tmp_path / "offset_plugin.py").write_text(textwrap.dedent(OFFSET_PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    config = tmp_path / "offset.toml"
    config.write_text(SMALL.replace("normal_normal", "offset_log_joint"))
    argv = ["run", "--plugins", "offset_plugin", "--config", str(config), "--out", str(tmp_path / "r")]
    with imported_afresh("offset_plugin"):
        code = cli.main([*argv, "--jobs", "1", "--no-report"])
    stdout, stderr = capsys.readouterr()
    assert code == 3, stdout + stderr
    last = stdout.strip().splitlines()[-4:]
    assert last[0] == "3 correctness checks failed:"
    keys = [f"offset_log_joint[n=20]/numpyro/mean_field/data{s}/seed{s}" for s in range(3)]
    named = [line.split(": ")[:3] for line in last[1:]]
    # the estimators use the NumPyro log joint; the NumPy one is caught by the conformance check
    assert named == [
        ["log joint", key, "numpy vs numpyro differ by up to 1 nats at the same latents (beyond 1e-06)"]
        for key in keys
    ]


def test_the_checks_flag_numbers_beyond_4_se_and_pass_noise():
    ok = {"status": "ok", "model": "m", "guide": "g", "data_seed": 0, "seed": 0}
    rows = pd.DataFrame(
        [
            ok
            | {"key": "m/pyro/g/data0/seed0", "backend": "pyro", "residual_se": 3.9, "elbo": -10.0}
            | {"elbo_se": 0.1, "library_elbo": -10.5, "library_elbo_se": 0.1},
            ok
            | {"key": "m/numpyro/g/data0/seed0", "backend": "numpyro", "residual_se": -4.1, "elbo": -10.0}
            | {"elbo_se": 0.1, "library_elbo": -10.55, "library_elbo_se": 0.1},
            ok
            | {"key": "m/a/e/data0/seed0", "backend": "a", "guide": "e", "elbo": -7.0, "elbo_se": 0.0}
            | {"library_elbo": -7.0 + 1e-12, "library_elbo_se": 0.0}
            | {"log_joint_max_diff": 1e-7, "log_joint_pair": "numpy vs numpyro"},
            ok
            | {"key": "m/b/e/data0/seed0", "backend": "b", "guide": "e", "elbo": -7.0, "elbo_se": 0.0}
            | {"library_elbo": -7.001, "library_elbo_se": 0.0}
            | {"log_joint_max_diff": 2e-6, "log_joint_pair": "numpyro vs pyro"},
        ]
    )
    failed = checks.failed_checks(rows)
    # residual 3.9 passes, -4.1 fails; library differences 0.5 / sqrt(0.02) = 3.5 SE and 3.9 SE pass;
    # exact library ELBOs: a agrees to rounding, b differs by 1e-3 (SE 0); log joints: 1e-7 passes,
    # 2e-6 is beyond the 1e-6 tolerance
    assert [line.split(":")[0] for line in failed] == ["identity", "library ELBO", "log joint"]
    rows.loc[1, "library_elbo"] = -10.6  # 0.6 / sqrt(0.02) = 4.2 SE
    assert [line.split(":")[0] for line in checks.failed_checks(rows)].count("library ELBO") == 2


def test_the_summary_counts_fits_that_did_not_converge():
    rows = pd.DataFrame(
        {"status": ["ok", "ok", "ok", "failed", "timeout"], "converged": [True, False, None, None, None]}
    )
    assert console.summary(rows, 6) == (
        "6 cells: 2 ok, 1 not converged (optimization gap > 0.01 nats), 1 failed, 1 timed out, 1 missing"
    )


def test_an_internal_error_exits_4_with_one_line_and_a_log(results, monkeypatch, capsys):
    config, out = results

    def broken(rows):
        raise RuntimeError("planted internal error")

    monkeypatch.setattr(checks, "failed_checks", broken)
    assert run(config, out) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "ppl-suite: internal error: RuntimeError: planted internal error"
    )
    (log,) = (out / "logs").glob("error-*.log")
    assert str(log) in err[0] and "Traceback" in log.read_text()
    monkeypatch.undo()
    assert run(config, out) == 0  # the lock was released


def test_every_bad_flag_and_folder_is_reported_at_once(tmp_path, monkeypatch, capsys):
    (tmp_path / "exploding.py").write_text("raise ValueError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    a_file = tmp_path / "file"
    a_file.write_text("")
    monkeypatch.setenv("PPL_SUITE_XLA_CACHE", str(a_file / "xla"))
    argv = [
        "run",
        "--models",
        "nope",
        "--jobs",
        "0",
        "--scheduler",
        "tcp://localhost:1",
        "--cell-timeout",
        "0",
    ]
    argv += ["--plugins", "exploding", "--out", str(a_file), "--report", str(a_file / "report")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    for message in (
        "cannot import plugin module 'exploding': ValueError: boom at import",
        "--jobs must be >= 1, got 0",
        "--scheduler needs --executor dask",
        "cell_timeout",
        f"--out: {a_file} is a file, not a folder",
        f"--report: cannot create {a_file / 'report'}: {a_file} is a file",
        "compilation cache (PPL_SUITE_XLA_CACHE=",
        "unknown model 'nope'",
    ):
        assert message in err, message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exploding.py", "file"]


def test_jobs_above_the_cores_are_capped_with_a_warning(finished, capsys):
    config, _ = finished
    assert cli.main(["run", "--config", str(config), "--jobs", "100000", "--dry-run"]) == 0
    cores = runner.cores()
    assert f"--jobs 100000 is more than the {cores} cores; using {cores}" in capsys.readouterr().err


def test_seeds_outside_32_bits_exit_2(capsys):
    assert cli.main(["run", "--models", "normal_normal", "--seeds", str(2**32), "--dry-run"]) == 2
    assert "seeds" in capsys.readouterr().err


def test_results_files_follow_the_umask(finished):
    umask = os.umask(0)
    os.umask(umask)
    _, out = finished
    for path in [out / "manifest.json", out / "rows.parquet", *(out / "cells").iterdir()]:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == "ppl-suite 0.1.0"
    assert cli.main([]) == 0
    help_text = capsys.readouterr().out
    assert "usage: ppl-suite" in help_text and "4    internal error" in help_text


LIST_IMPORTS = """
import sys
from ppl_suite import cli
cli.main(["list"])
print(sorted({"torch", "pyro", "numpyro"} & set(sys.modules)))
"""


def test_list_imports_no_ppl_library():
    """`list` reads the registries without importing torch, Pyro or NumPyro (the estimators' modules
    import JAX; `benchmarks/bench_cli.py` times the command)."""
    result = subprocess.run(
        [sys.executable, "-c", LIST_IMPORTS],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr


def test_the_eta_counts_down_between_cells_and_is_exact_at_a_constant_rate():
    assert runner.eta_seconds(0.0, 0, 10, 5.0) is None
    assert runner.eta_seconds(20.0, 2, 10, 20.0) == 80.0  # 10 s a cell
    assert runner.eta_seconds(20.0, 2, 10, 25.0) == 75.0  # five seconds later, five seconds less


def test_an_unreachable_scheduler_is_bad_input(capsys):
    argv = ["run", "--models", "normal_normal", "--executor", "dask", "--scheduler", "tcp://127.0.0.1:1"]
    code = cli.main([*argv, "--dry-run"])
    assert code == 2
    assert "--scheduler tcp://127.0.0.1:1: cannot connect" in capsys.readouterr().err
