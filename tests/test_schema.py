"""The results schema: guide-free estimates stored once per problem and referred to by its cells, the
long estimates table with its declared columns, fitted parameters that redo an evaluation, and no
column name spelled outside ``ppl_suite.schema``."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pandas as pd
import pytest

from ppl_suite import cli, matrix, results, schema
from ppl_suite.cell import Cell, ProblemUnit
from ppl_suite.cell_columns import EVALUATION, evaluation_columns
from ppl_suite.executors.worker import lost_record, timeout_record

ROOT = Path(__file__).resolve().parent.parent
SMALL = """
models = ["normal_normal"]
backends = ["numpyro", "handrolled"]
seeds = [0]
[svi]
steps = 200
eval_particles = 200
[evaluation]
samples = 1000
"""
SAMPLES = 1000  # the config's evaluation samples


def run(config: Path, out: Path) -> int:
    """2 guides (the model's first two) x 2 backends x 1 seed, with Laplace, a guide-free estimator."""
    argv = ["run", "--config", str(config), "--estimators", "laplace", "--out", str(out), "--jobs", "1"]
    return cli.main([*argv, "--no-report"])


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A results folder of 4 normal_normal cells and Laplace's estimate; the config beside it."""
    root = tmp_path_factory.mktemp("schema")
    (root / "small.toml").write_text(SMALL)
    assert run(root / "small.toml", root / "results") == 0
    return root / "results"


def test_guide_free_results_appear_once_in_the_store_and_the_cells_refer_to_them(finished):
    cells, estimates, problems = (
        results.load(finished),
        results.estimates(finished),
        results.problems(finished),
    )
    (problem,) = problems.to_dict("records")
    laplace = estimates[estimates[schema.ESTIMATOR] == "laplace"]
    assert len(laplace) == 1 and (estimates[schema.SCOPE] == schema.SCOPE_PROBLEM).sum() == 1
    (row,) = laplace.to_dict("records")
    assert row[schema.KEY] == problem[schema.KEY] == "normal_normal/data0"
    assert row[schema.SCOPE] == schema.SCOPE_PROBLEM and row[schema.STATUS] == schema.ESTIMATE_OK
    assert 0 < row[schema.SECONDS] <= problem[schema.WALL_SECONDS] and row[schema.N_EVALS] > 0
    assert len(cells) == 4 and set(cells[schema.PROBLEM_KEY]) == {problem[schema.KEY]}
    assert len(list((finished / "problems").glob("*.json"))) == 1


def test_a_rerun_reuses_the_problem_unit(finished, capsys):
    before = {path: path.stat().st_mtime_ns for path in (finished / "problems").iterdir()}
    seconds = results.estimates(finished)[schema.SECONDS]  # NaN for skipped estimators
    assert run(finished.parent / "small.toml", finished) == 0
    assert (
        f"reusing 4 finished cells and 1 problem unit stored in {finished}; running 0"
        in capsys.readouterr().out
    )
    assert {path: path.stat().st_mtime_ns for path in (finished / "problems").iterdir()} == before
    assert results.estimates(finished)[schema.SECONDS].equals(seconds)


def test_tables_have_exactly_the_declared_columns(finished):
    declared = list(schema.ESTIMATE_COLUMNS)
    assert list(results.estimates(finished).columns) == declared
    assert list(pd.read_parquet(finished / "estimates.parquet").columns) == declared
    cells = set(pd.read_parquet(finished / "rows.parquet").columns)
    svi = {name for name in cells if name.startswith(schema.SVI_PREFIX)}
    assert svi and cells - svi == set(schema.CELL_COLUMNS)
    assert set(pd.read_parquet(finished / "problems.parquet").columns) == set(schema.PROBLEM_COLUMNS)


def test_cell_rows_hold_no_evaluation_column_and_the_table_derives_them_from_the_estimates(finished):
    """Schema 4: a cell's stored row leaves its ELBO, KL... to its rows of the estimates table; the cell
    table (``results.load``, rows.parquet) has them, derived from those rows (``cell_columns``)."""
    cells, estimates = results.load(finished), results.estimates(finished)
    stored = [json.loads(path.read_text()) for path in sorted((finished / "cells").glob("*.json"))]
    assert len(stored) == 4
    for row in stored:
        assert row[schema.VERSION] == schema.SCHEMA_VERSION == 4
        assert not set(schema.EVALUATION_COLUMNS) & set(row)
        own = estimates[estimates[schema.KEY] == row[schema.KEY]]
        assert list(own[schema.ESTIMATOR])[: len(EVALUATION)] == list(EVALUATION)
        loaded = cells.set_index(schema.KEY).loc[row[schema.KEY]]
        for column, value in evaluation_columns(own.to_dict("records")).items():
            assert loaded[column] == value or (pd.isna(loaded[column]) and pd.isna(value)), column
    assert cells.equals(pd.read_parquet(finished / "rows.parquet"))


def test_stored_fitted_parameters_redo_the_evaluation_bit_for_bit(finished):
    """phi and theta from the store, the same seed and sample count: the stored ELBO again."""
    from ppl_suite.estimators.elbo import elbo
    from ppl_suite.problem import Problem
    from ppl_suite.targets.build import target_for
    from ppl_suite.targets.fitted_guide import FittedGuide

    row = results.load(finished).set_index(schema.KEY).loc["normal_normal/numpyro/mean_field/data0/seed0"]
    phi, theta = results.fitted_params(finished, row.name)
    assert set(phi) == {"mu.loc", "mu.log_scale"} and theta == {}
    problem = Problem.build(row[schema.MODEL], row[schema.DATA_SEED], json.loads(row[schema.PARAMS]))
    fitted = problem.with_params(theta)
    again = elbo(target_for(fitted), FittedGuide(fitted, row[schema.GUIDE], phi), SAMPLES, row[schema.SEED])
    assert (again.value, again.se) == (row[schema.ELBO], row[schema.ELBO_SE])
    with pytest.raises(KeyError, match="no cell"):
        results.fitted_params(finished, "normal_normal/pyro/mean_field/data0/seed0")


def test_learned_theta_keeps_guide_free_estimators_in_its_cells_and_problem_units_run_first():
    config = {"models": ["normal_normal", "ppca"], "backends": ["numpyro"], "guides_per_model": 1}
    config |= {"seeds": [0, 1], "estimators": {"laplace": {}, "importance": {"n": 100, "ks": [1, 10]}}}
    plan = matrix.expand(config)
    assert [unit.key for unit in plan.problems] == ["normal_normal/data0", "normal_normal/data1"]
    assert plan.units[: len(plan.problems)] == plan.problems
    for cell in plan.cells:
        names = [name for name, _ in cell.estimators]
        if cell.model == "ppca":  # theta is each fit's own: Laplace runs in the cell, at that theta
            assert names == ["laplace", "importance"] and cell.problem_key is None
        else:
            assert names == ["importance"] and cell.problem_key == f"normal_normal/data{cell.data_seed}"


@pytest.mark.parametrize("unit", [Cell("m", "pyro", "g", 1, 2), ProblemUnit("m", 1, (("n", 3),))])
def test_a_unit_that_did_not_finish_keeps_its_identity_columns(unit):
    for record in (timeout_record(unit, 10.0, 11.0), lost_record(unit, "killed", 3.0)):
        assert record.row.items() >= unit.identity().items()
        assert record.row[schema.STATUS] in {"timeout", "failed"} and record.row[schema.WALL_SECONDS] > 0


def _estimator_column_literals(path: Path) -> list[str]:
    """String literals (f-strings' text included) of a module that start like an estimator column of
    the wide layout, ``est_<name>``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("est_"):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    return found


def test_no_module_but_the_schema_spells_an_estimator_column():
    modules = [p for p in sorted((ROOT / "ppl_suite").rglob("*.py")) if p.name != "schema.py"]
    assert len(modules) > 20
    assert [hit for path in modules for hit in _estimator_column_literals(path)] == []
