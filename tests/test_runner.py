"""The matrix runner end to end: validation, determinism across executors, kill and rerun, faults."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ppl_suite import cli, console, matrix, schema
from ppl_suite.results import load
from tests.plugins import FAULTY, imported_afresh

ROOT = Path(__file__).resolve().parent.parent
TIMING = ("seconds", "steps_per_second", "digest")

SMALL = """
models = ["normal_normal"]
backends = ["numpyro", "handrolled"]
guides = ["mean_field"]
seeds = [0, 1, 2]
[svi]
steps = 300
eval_particles = 200
[evaluation]
samples = 500
[params.normal_normal]
n = 20
"""


@pytest.fixture
def small_config(tmp_path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    return path


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, Path]:
    """(config, results folder) of SMALL run to its end on the local executor, one worker, no report:
    the table that a run on Dask and a killed and rerun run must both give."""
    root = tmp_path_factory.mktemp("uninterrupted")
    config = root / "small.toml"
    config.write_text(SMALL)
    argv = ["run", "--config", str(config), "--out", str(root / "local"), "--jobs", "1", "--no-report"]
    assert cli.main(argv) == 0
    return config, root / "local"


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows without timing columns, sorted by key: what must be identical between two runs."""
    keep = [c for c in frame.columns if not any(part in c for part in TIMING)]
    return frame[keep].sort_values("key").reset_index(drop=True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--models", "nope"], "unknown model 'nope'; valid: .*normal_normal"),
        (["--backends", "stan"], "unknown backend 'stan'; valid: pyro, numpyro, handrolled"),
        (["--guides", "flow"], "unknown guide 'flow'; valid: .*mean_field"),
        (["--models", "normal_normal", "--guides", "amortized"], "model 'normal_normal' supports none of"),
        (["--steps", "-5"], "steps must be an integer >= 1, got -5"),
        (["--seeds", "-1"], "seeds must be a non-empty list of integers >= 0"),
        (["--profile", "huge"], "unknown profile 'huge'; valid: full, quick"),
        (["--jobs", "0"], "--jobs must be >= 1"),
        (["--plugins", "no.such.module"], "cannot import plugin module"),
    ],
)
def test_bad_input_names_the_problem_and_exits_2(argv, message, capsys, tmp_path):
    code = cli.main(["run", "--out", str(tmp_path / "r"), *argv])
    assert code == 2
    assert re.search(message, capsys.readouterr().err), message
    assert not (tmp_path / "r").exists()


def test_every_problem_is_reported_at_once():
    with pytest.raises(matrix.ConfigError) as error:
        matrix.expand(
            {
                "models": ["nope"],
                "backends": ["stan"],
                "seeds": [-1],
                "svi": {"steps": 0},
                "evaluation": {"samples": 1},
                "colour": "red",
            }
        )
    assert len(error.value.problems) == 6


def test_estimator_sample_count_below_two_is_rejected():
    with pytest.raises(matrix.ConfigError, match="samples must be an integer >= 2"):
        matrix.expand({"models": ["normal_normal"], "evaluation": {"samples": 1}})


def test_dry_run_lists_cells_and_runs_nothing(small_config, tmp_path, capsys):
    assert cli.main(["run", "--config", str(small_config), "--out", str(tmp_path / "r"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "normal_normal[n=20]/numpyro/mean_field/data2/seed2" in out and "6 cells would run" in out
    assert not (tmp_path / "r").exists()


def test_same_config_gives_bitwise_equal_rows_locally_and_on_dask(uninterrupted, tmp_path):
    """Same backend, same machine: every non-timing column is identical (floats bitwise)."""
    config, local_folder = uninterrupted
    argv = ["run", "--config", str(config), "--no-report", "--out", str(tmp_path / "dask")]
    assert cli.main([*argv, "--executor", "dask", "--jobs", "2"]) == 0
    manifest = json.loads((local_folder / "manifest.json").read_text())
    assert {"config", "versions", "git_commit", "host", "started", "finished"} <= manifest.keys()
    assert {"torch", "pyro-ppl", "jax", "numpyro", "arviz", "python"} <= manifest["versions"].keys()
    assert (local_folder / "rows.parquet").stat().st_size > 0
    local, dask = comparable(load(local_folder)), comparable(load(tmp_path / "dask"))
    assert len(local) == 6
    pd.testing.assert_frame_equal(local, dask, check_exact=True)


def test_a_killed_run_reruns_to_the_uninterrupted_table(uninterrupted, tmp_path, capsys):
    small_config, full = uninterrupted
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ppl_suite.cli",
            "run",
            "--config",
            str(small_config),
            "--out",
            str(out),
            "--jobs",
            "1",
            "--no-report",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while len(list((out / "cells").glob("*.json"))) < 2 and time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = len(list((out / "cells").glob("*.json")))
    assert 2 <= finished < 6
    resumed = cli.main(
        ["run", "--config", str(small_config), "--out", str(out), "--jobs", "1", "--no-report"]
    )
    stdout, stderr = capsys.readouterr()
    assert resumed == 0, stderr
    assert f"reusing {finished} finished cells stored in {out}; running {6 - finished}" in stdout
    pd.testing.assert_frame_equal(comparable(load(out)), comparable(load(full)), check_exact=True)


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, pd.DataFrame]:
    """(the finished command: exit code and printed text, the rows indexed by key) of one run of the
    three faulty plug-in models (``tests/plugins/faulty_models.py``: one raises, one's data are NaN, one
    ends its worker) on Pyro and NumPyro, two seeds, two local workers (a worker dies while the other
    holds a cell), called here (``cli.main``); the plug-in is imported afresh, so that its models are
    registered in this module's registries."""
    out = tmp_path_factory.mktemp("faulty") / "r"
    argv = ["run", "--plugins", FAULTY, "--models", "faulty_raises", "faulty_nan", "faulty_exits"]
    argv += ["--backends", "pyro", "numpyro", "--seeds", "0", "1", "--steps", "200", "--out", str(out)]
    argv += ["--jobs", "2", "--no-report"]
    stdout, stderr = io.StringIO(), io.StringIO()
    with imported_afresh(FAULTY), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(argv)
    finished = subprocess.CompletedProcess(argv, code, stdout.getvalue(), stderr.getvalue())
    return finished, load(out).set_index("key")


def test_faulty_cells_are_recorded_and_the_rest_run(faulty_run):
    result, rows = faulty_run
    assert result.returncode == 1, result.stdout + result.stderr
    assert set(rows.loc[[k for k in rows.index if "faulty_raises/pyro" in k], "status"]) == {"failed"}
    assert "injected fault" in rows.loc["faulty_raises/pyro/mean_field/data0/seed0", "error"]
    assert set(rows.loc[[k for k in rows.index if "faulty_raises/numpyro" in k], "status"]) == {"ok"}
    assert rows.loc["faulty_nan/numpyro/mean_field/data1/seed1", "status"] in {"diverged", "failed"}
    assert rows.loc["faulty_nan/numpyro/mean_field/data0/seed0", "status"] == "ok"
    assert "cells did not finish" in result.stdout


def test_list_shows_every_model_with_its_guides_and_oracle(capsys):
    import models

    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for name in models.names():
        spec = models.get(name)
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(name + " "))
        assert ("exact oracle" if spec.oracle else "no oracle") in lines[at]
        assert lines[at + 1].strip() == f"guides: {', '.join(spec.guides)}"  # the line below it
    assert "quick" in out and "handrolled" in out


def test_a_worker_that_dies_fails_its_cell_and_is_replaced(faulty_run):
    result, rows = faulty_run
    assert result.returncode == 1, result.stdout + result.stderr
    pyro_rows = rows.loc[[k for k in rows.index if k.startswith("faulty_exits/pyro/")]]
    assert len(pyro_rows) == 2 and set(pyro_rows["status"]) == {"failed"}
    assert all(error.startswith("worker lost") for error in pyro_rows["error"])
    numpyro_rows = rows.loc[[k for k in rows.index if k.startswith("faulty_exits/numpyro/")]]
    assert len(numpyro_rows) == 2 and set(numpyro_rows["status"]) == {"ok"}


def test_progress_line_of_a_cell_without_an_oracle_gives_its_reference_kl():
    from ppl_suite.cell import Record

    row = {
        schema.STATUS: schema.OK,
        schema.ELBO: -31.6,
        schema.ELBO_SE: 0.007,
        schema.RESIDUAL_SE: float("nan"),
        schema.KL_METHOD: "reference",
        schema.KL: 0.29,
        schema.KL_SE: 0.067,
    }
    line = console.unit_detail(Record(row, np.empty(0), {}, []))
    assert line == "ELBO -31.6000 ± 7.0e-03, KL 0.290 ± 6.7e-02 (vs NUTS/AIS reference)"
