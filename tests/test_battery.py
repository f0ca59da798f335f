"""The battery: models written as NumPyro's and Pyro's example galleries write them, each checked by a
plain script without an ``if __name__ == "__main__":`` guard (``tests/battery/``), run in a subprocess
as a user runs it. Each script exits 0, runs once (no worker re-runs it) and reports KL ± SE; where the
model has a closed-form evidence, log p(x) lies within 4 SE of it.

Each whole check takes a minute or more on 2 busy cores, so the battery is ``slow``: the GLM at small
sizes, and every script at check's default options."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
BATTERY = ROOT / "tests" / "battery"
SMALL = {"steps": 500, "guides": ["mean_field"], "nuts": {"draws": 500, "ess_min": 300}, "report": False}
SCRIPTS = sorted(path.stem for path in BATTERY.glob("*.py") if path.stem != "sizes")


def run_script(
    name: str,
    folder: Path,
    sizes: dict,
    as_code: bool = False,
    timeout: float = 900,
    environment: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run a battery script in a subprocess in ``folder``: as a file, or (``as_code``) as ``python -c``
    source, whose ``__main__`` has no file, as a notebook's has not; ``environment`` adds variables
    (e.g. the caches' folders)."""
    env = {
        **os.environ,
        **(environment or {}),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(BATTERY), os.environ.get("PYTHONPATH", "")]),
        "PPL_SUITE_BATTERY_SIZES": json.dumps(sizes),
        "OMP_NUM_THREADS": "1",
    }
    script = BATTERY / f"{name}.py"
    return subprocess.run(
        [sys.executable, "-c", script.read_text()] if as_code else [sys.executable, str(script)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def table_of(folder: Path, name: str):
    from ppl_suite import results
    from ppl_suite.checking.table import check_table

    (results_folder,) = (folder / "results").glob(f"check-{name}*")  # *_user where a zoo model has it
    return check_table(results.load(results_folder), results.estimates(results_folder))


def glm_log_evidence(name: str = "glm_positional") -> float:
    """log N(y; 0, PRIOR_SCALE^2 X X^T + NOISE^2 I) of a GLM script's data (its own arrays)."""
    from scipy.stats import multivariate_normal

    namespace: dict = {}
    lines = (BATTERY / f"{name}.py").read_text().split("\ndef model")[0].splitlines()
    source = "\n".join(line for line in lines if "sizes" not in line and "ppl_suite" not in line)
    exec(compile(source, f"{name}.py", "exec"), namespace)
    X, y = namespace["X"], namespace["y"]
    cov = namespace["PRIOR_SCALE"] ** 2 * X @ X.T + namespace["NOISE"] ** 2 * np.eye(len(y))
    return float(multivariate_normal(np.zeros(len(y)), cov).logpdf(y))


def assert_checked(name: str, folder: Path, process: subprocess.CompletedProcess) -> None:
    assert process.returncode == 0, process.stderr[-3000:]
    assert process.stdout.count("log_evidence_se") == 1, process.stdout  # the script ran once
    table = table_of(folder, name)
    assert not table.empty
    assert all(math.isfinite(row.kl) and row.kl_se > 0 for row in table.itertuples())
    if name.startswith("glm_positional"):  # the NumPyro script and its Pyro-only version
        exact = glm_log_evidence(name)
        assert all(abs(row.log_evidence - exact) <= 4 * row.log_evidence_se for row in table.itertuples())


@pytest.mark.slow
def test_a_plain_script_checks_a_conjugate_glm_once_and_its_evidence_matches_the_closed_form(tmp_path):
    assert_checked("glm_positional", tmp_path, run_script("glm_positional", tmp_path, SMALL))


@pytest.mark.slow
def test_a_pyro_only_conjugate_glm_gets_its_reference_from_the_pyro_density_and_matches_the_closed_form(
    tmp_path,
):
    assert_checked("glm_positional_pyro", tmp_path, run_script("glm_positional_pyro", tmp_path, SMALL))


@pytest.mark.slow
@pytest.mark.parametrize("name", SCRIPTS)
def test_every_battery_script_runs_at_checks_default_options(tmp_path, name):
    assert_checked(name, tmp_path, run_script(name, tmp_path, {"report": False}))


@pytest.mark.slow
def test_a_model_defined_where_main_has_no_file_as_in_a_notebook_is_checked(tmp_path):
    process = run_script("deterministic_site", tmp_path, SMALL, as_code=True)
    assert_checked("model", tmp_path, process)  # named after the function: there is no script
