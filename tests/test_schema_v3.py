"""A results folder written at schema version 3 (tests/data/schema_v3: each cell row holding its own
evaluation columns) still loads and reports with the numbers it holds, and the version-4 evaluation
path (estimator rows, columns derived from them) gives those numbers again from its fitted parameters."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ppl_suite import cli, results, schema
from ppl_suite.cell import Cell
from ppl_suite.cell_columns import evaluation_columns
from ppl_suite.estimators.cache import EvaluationCache
from ppl_suite.execute import evaluate
from ppl_suite.problem import Problem
from ppl_suite.store import package_versions
from ppl_suite.targets.build import target_for
from ppl_suite.targets.fitted_guide import FittedGuide
from ppl_suite.targets.reference_posterior import ReferencePosterior

FOLDER = Path(__file__).resolve().parent / "data" / "schema_v3" / "folder"
STORED = (schema.LOG_EVIDENCE, schema.LOG_EVIDENCE_SE, *schema.EVALUATION_COLUMNS)


def _same(a: object, b: object) -> bool:
    """Equal values, NaN equal to NaN and None to None (float columns compared exactly)."""
    missing = [x is None or (isinstance(x, float) and math.isnan(x)) for x in (a, b)]
    return all(missing) if any(missing) else a == b


def test_the_fixture_is_a_version_3_folder_of_two_cells_and_two_problem_units():
    manifest = json.loads((FOLDER / "manifest.json").read_text())
    assert manifest[schema.VERSION] == 3 < schema.SCHEMA_VERSION
    rows = [json.loads(path.read_text()) for path in sorted((FOLDER / "cells").glob("*.json"))]
    assert len(rows) == 2 and all(set(STORED) <= set(row) for row in rows)
    assert {row[schema.KL_METHOD] for row in rows} == {"analytic", schema.KL_BY_REFERENCE}


def test_a_version_3_folder_loads_with_the_evaluation_columns_it_stored():
    """``results.load`` gives each v3 cell's own columns: those of its row file and of rows.parquet."""
    cells = results.load(FOLDER).set_index(schema.KEY)
    parquet = pd.read_parquet(FOLDER / "rows.parquet").set_index(schema.KEY)
    assert len(cells) == 2 and set(cells.index) == set(parquet.index)
    for path in (FOLDER / "cells").glob("*.json"):
        stored = json.loads(path.read_text())
        for column in STORED:
            loaded = cells.loc[stored[schema.KEY], column]
            assert _same(loaded, stored[column]) and _same(loaded, parquet.loc[stored[schema.KEY], column]), (
                column
            )
    assert set(results.estimates(FOLDER)[schema.ESTIMATOR]) == {"laplace", "psis", "posterior_moments"}
    assert len(results.problems(FOLDER)) == 2


def test_a_version_3_folder_reports_its_stored_numbers(tmp_path):
    """``ppl-suite report`` on a copy (the report writes nothing into the results folder, but the
    committed fixture is kept out of reach): each cell's line shows its log p(x), KL and KL route."""
    shutil.copytree(FOLDER, tmp_path / "folder")
    assert (
        cli.main(["report", str(tmp_path / "folder"), "--out", str(tmp_path / "out"), "--format", "md"]) == 0
    )
    lines = (tmp_path / "out" / "report.md").read_text(encoding="utf-8").splitlines()
    cells = [[part.strip() for part in line.split(" | ")] for line in lines if line.startswith("| ")]
    for _, cell in results.load(FOLDER).iterrows():
        model = cell[schema.KEY].split("/")[0].replace("[", "\\[").replace("]", "\\]")
        numbers = {f"{cell[schema.LOG_EVIDENCE]:.6f}", f"{cell[schema.KL]:.3g}", cell[schema.KL_METHOD]}
        assert any(shown[0] == f"| {model}" and numbers <= set(shown) for shown in cells), model


def _rounding_tolerance(rows: list[dict], column: str) -> float:
    """4 float64 rounding floors of the cell's ELBO terms (the ``elbo`` row's eps * magnitude): the
    most a recompiled log joint's rounding moves a mean, an SE or a difference of them; over the
    identity's noise for its z."""
    own = {row[schema.ESTIMATOR]: row for row in rows if row[schema.STATUS] == schema.ESTIMATE_OK}
    floor = 4 * schema.extras(own["elbo"][schema.EXTRAS])["rounding_floor"]
    return floor / own["identity"][schema.SE] if column == schema.RESIDUAL_SE else floor


def test_the_version_4_evaluation_gives_the_version_3_columns_again():
    """From each cell's stored fitted parameters, the same seed and sample count: the estimator rows
    of today's evaluation, through ``evaluation_columns``, give the v3 row's numbers (the
    robust_regression cell against a reference carrying its stored evidence): text exactly, numbers
    within the float64 rounding of the log densities, which XLA may round differently from one
    compilation of a log joint to the next. Draws are the same only under the folder's package versions."""
    manifest = json.loads((FOLDER / "manifest.json").read_text())
    if any(manifest["versions"].get(name) != version for name, version in package_versions().items()):
        pytest.skip("the folder's package versions are not these: its draws are not these")
    samples = manifest["config"]["evaluation"]["samples"]
    for _, row in results.load(FOLDER).iterrows():
        phi, theta = results.fitted_params(FOLDER, row[schema.KEY])
        problem = Problem.build(row[schema.MODEL], row[schema.DATA_SEED], json.loads(row[schema.PARAMS]))
        fitted = problem.with_params(theta)
        evidence = (row[schema.LOG_EVIDENCE], row[schema.LOG_EVIDENCE_SE])
        reference = None if problem.spec.oracle else ReferencePosterior({}, math.nan, *evidence, "")
        target, guide = target_for(fitted, reference), FittedGuide(fitted, row[schema.GUIDE], phi)
        cell = Cell(row[schema.MODEL], row[schema.BACKEND], row[schema.GUIDE], seed=row[schema.SEED],
                    eval_samples=samples)  # fmt: skip
        rows = evaluate(cell, target, guide, EvaluationCache())
        for column, value in evaluation_columns(rows).items():
            stored, where = row[column], (row[schema.KEY], column, value, row[column])
            if isinstance(value, float) and column != schema.ELBO_SECONDS and not math.isnan(value):
                assert abs(value - stored) <= _rounding_tolerance(rows, column), where
            elif column != schema.ELBO_SECONDS:
                assert _same(value, stored), where
