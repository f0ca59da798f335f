"""NUTS references: gates enforced, cache hits and rebuilds, the exact posterior and evidence of
normal_normal recovered within Monte Carlo error (AIS, and BDMC started at reference draws), eight
schools against posteriordb's published reference, and the ``reference`` command's output and exit
codes (its cached path imports neither JAX, NumPyro nor ArviZ)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ppl_suite import cli
from ppl_suite.problem import Problem
from ppl_suite.references import NUTSSettings, ReferenceGateError, reference_for, settings, stored_posterior
from ppl_suite.references import cache as cache_module
from ppl_suite.references import reference as reference_module
from ppl_suite.references.evidence import REFERENCE, ReferenceDraws, log_evidence
from ppl_suite.references.gates import GateResult

# Small settings: 4 x 500 draws of normal_normal's 1-d posterior (bulk ESS 702, tail ESS 790, R-hat
# 1.009 at seed 0), gates lowered to what such a run passes. SHORT is the same run (one compiled
# program) under the default gates, which it fails.
SMALL = NUTSSettings(warmup=200, draws=500, max_draws=500, rhat_max=1.05, ess_min=400.0)
SHORT = NUTSSettings(warmup=200, draws=500, max_draws=500, remedies=False)  # one attempt only

# posteriordb's reference posterior of eight_schools-eight_schools_noncentered (Stan NUTS, 10 chains x
# 1 000 draws kept of 10 000 thinned by 10: near-independent, bulk ESS 10 039 for mu and 9 605 for tau;
# also the reference of eight_schools_centered). Means and their MCSEs as published in
# posterior_database/reference_posteriors/summary_statistics/mean/mean/
# eight_schools-eight_schools_noncentered.json; the sd from the published mean squared value E[x^2]
# (summary_statistics/mean_squared_value/.../eight_schools-eight_schools_centered.json, computed from
# the same draws) as sd = sqrt((E[x^2] - mean^2) n / (n - 1)), n = 10 000, and its MCSE from the two
# published MCSEs: Var(x^2) = 4 m^2 sd^2 + 4 m mu_3 + (mu_4 - sd^4), so with the 4 m mu_3 term dropped
# (>= 0 for tau, right-skewed with m > 0; about 0 for the near-symmetric mu: conservative)
# Var(s^2) = (mu_4 - sd^4) / n <= mcse(E[x^2])^2 - 4 m^2 mcse(E[x])^2 and mcse(sd) = mcse(s^2) / (2 sd).
PUBLISHED_DRAWS = 10_000
PUBLISHED = {  # name: (mean, mcse of the mean, E[x^2], mcse of E[x^2])
    "mu": (4.41051833695493, 0.0330374705950917, 30.40302, 0.3351356),
    "tau": (3.60205952364059, 0.0318615135640706, 23.20407, 0.4848872),
}


def published(name: str) -> dict[str, float]:
    """{"mean", "mcse_mean", "sd", "mcse_sd"} of ``name`` from PUBLISHED (formulas above)."""
    mean, mcse_mean, square, mcse_square = PUBLISHED[name]
    n = PUBLISHED_DRAWS
    sd = math.sqrt((square - mean**2) * n / (n - 1))
    mcse_variance = math.sqrt(mcse_square**2 - 4 * mean**2 * mcse_mean**2)
    return {"mean": mean, "mcse_mean": mcse_mean, "sd": sd, "mcse_sd": mcse_variance / (2 * sd)}


def assert_agrees_with_posteriordb(summary: dict) -> None:
    """|ours - published| <= 4 sqrt(mcse_ours^2 + mcse_published^2) for the mean and sd of mu and tau."""
    for name in PUBLISHED:
        truth, ours = published(name), summary[name]
        for stat in ("mean", "sd"):
            tolerance = 4 * math.hypot(ours[f"mcse_{stat}"], truth[f"mcse_{stat}"])
            assert abs(ours[stat] - truth[stat]) <= tolerance, (name, stat, ours[stat], truth[stat])


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("references")


@pytest.fixture(scope="module")
def built(cache):
    return reference_for(Problem.build("normal_normal", 0), SMALL, cache_dir=cache)


def test_reference_passes_its_gates_and_is_stored(built, cache):
    from ppl_suite.references import stored_reference

    assert not built.cached and built.path.exists()
    stored = stored_reference(Problem.build("normal_normal", 0), SMALL, cache_dir=cache)
    assert stored is not None and stored.path == built.path and stored.cached
    before = sorted(cache.rglob("*"))
    assert stored_reference(Problem.build("normal_normal", 1), SMALL, cache_dir=cache) is None
    assert sorted(cache.rglob("*")) == before  # nothing built for the other data set
    assert built.gates.passed and built.gates.ess_threshold == SMALL.ess_min
    assert built.draws["mu"].shape == (SMALL.chains * built.summary["draws_per_chain"],)


def test_posterior_mean_and_sd_within_4_mcse_of_exact(built):
    exact = Problem.build("normal_normal", 0).exact()
    summary = built.summary["mu"]
    assert abs(summary["mean"] - float(exact.mean()["mu"])) < 4 * summary["mcse_mean"]
    assert abs(summary["sd"] - math.sqrt(float(exact.covariance()[0, 0]))) < 4 * summary["mcse_sd"]


def test_ais_evidence_within_4_se_of_exact(built):
    exact = Problem.build("normal_normal", 0).exact().log_evidence
    assert built.evidence["reliability"] == "reliable"
    assert abs(built.log_evidence - exact) < 4 * built.log_evidence_se


def test_bdmc_from_reference_draws_brackets_the_exact_evidence(built):
    """Without its oracle, normal_normal's BDMC starts its reverse chains at the reference draws; its
    bounds bracket the exact log p(x) within 4 SE."""
    problem = Problem.build("normal_normal", 0)
    exact = problem.exact().log_evidence
    no_oracle = Problem(dataclasses.replace(problem.spec, oracle=None), problem.params, problem.data, 0)
    bdmc = log_evidence(no_oracle, 0, built.draws)["bdmc"]
    assert bdmc["reverse_from"] == REFERENCE and bdmc["reliability"] == "reliable"
    assert bdmc["extras"]["lower"] - 4 * bdmc["extras"]["lower_se"] <= exact <= bdmc["value"] + 4 * bdmc["se"]


def test_reference_draws_are_picked_without_replacement():
    draws = ReferenceDraws({"mu": np.arange(10.0), "w": np.arange(20.0).reshape(10, 2)})
    picked = draws.sample(np.random.default_rng(0), 10)
    assert sorted(picked["mu"]) == list(range(10))
    np.testing.assert_array_equal(picked["w"][:, 0], 2 * picked["mu"])


def test_a_cell_reads_the_stored_reference_without_arviz(built, cache, monkeypatch):
    """``execute.reference_of`` (a worker's route) reads the stored reference's draws and summary
    without importing ArviZ, and gives the draws, evidence and line that the whole reference gives."""
    from ppl_suite.targets.reference_posterior import ReferencePosterior

    problem = Problem.build("normal_normal", 0)
    stored = stored_posterior(problem, SMALL, cache_dir=cache)
    assert stored.path == built.path and stored.summary == built.summary
    np.testing.assert_array_equal(stored.draws["mu"], built.draws["mu"])
    assert ReferencePosterior.describe(stored) == ReferencePosterior.describe(built)
    assert stored_posterior(Problem.build("normal_normal", 1), SMALL, cache_dir=cache) is None

    monkeypatch.setenv("PPL_SUITE_REFERENCE_CACHE", str(cache))
    script = (
        "import dataclasses, hashlib, json, sys\n"
        "from ppl_suite.references import settings\n"
        f"settings.DEFAULT = settings.{SMALL!r}\n"
        "from ppl_suite.execute import reference_of\n"
        "from ppl_suite.problem import Problem\n"
        "problem = Problem.build('normal_normal', 0)\n"
        "spec = dataclasses.replace(problem.spec, oracle=None)\n"
        "reference, line = reference_of(Problem(spec, problem.params, problem.data, 0))\n"
        "draws = hashlib.sha256(reference.draws['mu'].tobytes()).hexdigest()\n"
        "print(json.dumps([draws, reference.log_evidence, reference.log_evidence_se, reference.ess, line,\n"
        "                  'arviz' in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    expected = ReferencePosterior.of(built)
    assert json.loads(out.splitlines()[-1]) == [
        hashlib.sha256(built.draws["mu"].tobytes()).hexdigest(),
        expected.log_evidence,
        expected.log_evidence_se,
        expected.ess,
        ReferencePosterior.describe(built),
        False,
    ]


def test_second_call_loads_the_stored_reference_without_sampling(built, cache, monkeypatch):
    def no_build(*args, **kwargs):
        raise AssertionError("a stored reference was rebuilt")

    monkeypatch.setattr(reference_module, "build", no_build)
    again = reference_for(Problem.build("normal_normal", 0), SMALL, cache_dir=cache)
    assert again.cached and again.path == built.path
    np.testing.assert_array_equal(again.draws["mu"], built.draws["mu"])
    assert again.summary == built.summary


def test_other_data_rebuilds(built, cache, monkeypatch):
    class Built(Exception):
        pass

    def record(problem, settings, key, command, on_progress):
        raise Built(problem.data_seed, key)

    monkeypatch.setattr(reference_module, "build", record)
    with pytest.raises(Built) as raised:
        reference_for(Problem.build("normal_normal", 1), SMALL, cache_dir=cache)
    assert raised.value.args[0] == 1 and raised.value.args[1] != built.summary["key"]


def _damaged_copy(built, tmp_path: Path, suffix: str) -> Path:
    """A copy of the built reference's cache with its ``suffix`` file (.nc or .json) cut in half."""
    copy = tmp_path / "cache"
    shutil.copytree(built.path.parent, copy)
    damaged = copy / built.path.with_suffix(suffix).name
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    return copy


def test_a_damaged_summary_copy_is_named_and_rewritten_from_the_reference(
    built, tmp_path, monkeypatch, capsys
):
    copy = _damaged_copy(built, tmp_path, ".json")
    # the cell's reader gives None; reference_for names the copy and rewrites it
    assert stored_posterior(Problem.build("normal_normal", 0), SMALL, cache_dir=copy) is None
    monkeypatch.setattr(
        reference_module, "build", lambda *a, **k: pytest.fail("a whole reference was rebuilt")
    )
    monkeypatch.setenv("PPL_SUITE_REFERENCE_CACHE", str(copy))
    monkeypatch.setattr(settings, "DEFAULT", SMALL)
    with pytest.warns(UserWarning, match=r"\.json is damaged .*rewritten from"):
        assert cli.main(["reference", "normal_normal"]) == 0
    assert f"cached: {copy / built.path.name}" in capsys.readouterr().out
    assert json.loads((copy / built.path.with_suffix(".json").name).read_text()) == built.summary


def test_a_truncated_reference_is_not_cached_but_named_and_rebuilt(built, tmp_path, monkeypatch):
    copy = _damaged_copy(built, tmp_path, ".nc")

    class Rebuilt(Exception):
        pass

    def rebuild(*args, **kwargs):
        raise Rebuilt

    assert cache_module.stored_summary(copy / built.path.name) is None  # not shown as "cached"
    assert stored_posterior(Problem.build("normal_normal", 0), SMALL, cache_dir=copy) is None
    monkeypatch.setattr(reference_module, "build", rebuild)
    with pytest.warns(UserWarning, match=r"\.nc is damaged .*rebuilding"), pytest.raises(Rebuilt):
        reference_for(Problem.build("normal_normal", 0), SMALL, cache_dir=copy)


def test_a_summary_lacking_a_field_is_not_read_but_named_and_rebuilt(built, tmp_path, monkeypatch):
    """A reference file that opens whole but whose summary attribute lacks its gates: the cell's
    reader gives None, and ``reference_for`` says the file is damaged and rebuilds it."""
    import h5py

    copy = tmp_path / "cache"
    shutil.copytree(built.path.parent, copy)
    with h5py.File(copy / built.path.name, "r+") as file:
        summary = {k: v for k, v in built.summary.items() if k != "gates"}
        file["posterior"].attrs[reference_module.ATTRIBUTE] = json.dumps(summary)

    class Rebuilt(Exception):
        pass

    def rebuild(*args, **kwargs):
        raise Rebuilt

    assert stored_posterior(Problem.build("normal_normal", 0), SMALL, cache_dir=copy) is None
    monkeypatch.setattr(reference_module, "build", rebuild)
    with pytest.warns(UserWarning, match=r"\.nc is damaged \(KeyError: 'gates'\)"), pytest.raises(Rebuilt):
        reference_for(Problem.build("normal_normal", 0), SMALL, cache_dir=copy)


def test_default_gates_are_posteriordbs():
    default = settings.DEFAULT
    assert (default.rhat_max, default.ess_min, default.chains >= 4) == (1.01, 1000.0, True)


@pytest.mark.parametrize(
    ("change", "failure"),
    [
        ({"r_hat": 1.01}, "R-hat 1.0100 of b >= 1.01"),  # the R-hat gate is strict
        ({"ess_bulk": 999.0}, "bulk ESS 999 of b < 1000"),
        ({"ess_tail": float("nan")}, "tail ESS nan of b < 1000"),  # a NaN fails
    ],
)
def test_gates_fail_at_their_thresholds(change, failure):
    passing = {"r_hat": 1.0099, "ess_bulk": 1000.0, "ess_tail": 1000.0}
    gates = GateResult.of({"a": passing, "b": {**passing, **change}}, 0, settings.DEFAULT)
    assert gates.failures() == [failure]
    assert GateResult.of({"a": passing}, 0, settings.DEFAULT).passed
    assert GateResult.of({"a": passing}, 1, settings.DEFAULT).failures() == ["1 divergent transitions > 0"]


def test_short_run_fails_the_default_gates_and_stores_nothing(tmp_path):
    with pytest.raises(ReferenceGateError, match=r"bulk ESS \d+ of mu < 1000.*nothing was stored"):
        reference_for(Problem.build("normal_normal", 0), SHORT, cache_dir=tmp_path)
    assert not list(tmp_path.glob("*.nc")) and not list(tmp_path.glob("*.json"))


def test_cli_json_is_keyed_by_coordinate(built, cache, monkeypatch, capsys):
    monkeypatch.setenv("PPL_SUITE_REFERENCE_CACHE", str(cache))
    monkeypatch.setattr(settings, "DEFAULT", SMALL)
    assert cli.main(["reference", "normal_normal", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == built.summary and summary["latents"] == ["mu"]
    assert set(summary["mu"]) == {"mean", "sd", "mcse_mean", "mcse_sd", "r_hat", "ess_bulk", "ess_tail"}
    assert cli.main(["reference", "normal_normal"]) == 0
    assert f"cached: {built.path}" in capsys.readouterr().out


def test_cli_cached_call_imports_no_jax_numpyro_or_arviz(built, cache, monkeypatch):
    monkeypatch.setenv("PPL_SUITE_REFERENCE_CACHE", str(cache))
    script = (
        "import sys\n"
        "from ppl_suite import cli\n"
        "from ppl_suite.references import settings\n"
        f"settings.DEFAULT = settings.{SMALL!r}\n"
        "assert cli.main(['reference', 'normal_normal', '--json']) == 0\n"
        "print(sorted({'jax', 'numpyro', 'arviz', 'torch'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "[]"


def test_cli_bad_input_exits_2(capsys):
    assert cli.main(["reference", "no_such_model"]) == 2
    assert cli.main(["reference", "normal_normal", "--set", "n=-1", "prior_scale=0", "bogus"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'no_such_model'" in err and "NAME=VALUE" in err


def test_cli_failed_gate_exits_3(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PPL_SUITE_REFERENCE_CACHE", str(tmp_path))
    monkeypatch.setattr(settings, "DEFAULT", SHORT)
    assert cli.main(["reference", "normal_normal"]) == 3
    assert "bulk ESS" in capsys.readouterr().err and not list(tmp_path.glob("*.nc"))


def test_committed_eight_schools_summary_agrees_with_posteriordb():
    path = Path(__file__).parents[1] / "models" / "eight_schools_noncentered" / "reference.json"
    assert_agrees_with_posteriordb(json.loads(path.read_text()))


@pytest.mark.slow
def test_eight_schools_nuts_reference_agrees_with_posteriordb(tmp_path):
    """The full reference (default settings, about a minute on 2 cores) against posteriordb's."""
    built = reference_for(Problem.build("eight_schools_noncentered", 0), cache_dir=tmp_path)
    assert built.gates.passed
    assert_agrees_with_posteriordb(built.summary)
