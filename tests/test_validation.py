"""Validation before anything runs: every bad value is refused with a message naming the parameter, the
value and its domain; every problem of a config is reported at once; checking builds no data."""

from __future__ import annotations

import math
import re
import reprlib
import tracemalloc
from dataclasses import replace

import pytest

from ppl_suite import backends, cli, matrix, registry
from ppl_suite.plugin_registry import Registry
from ppl_suite.spec import MAX_PROBLEM_SIZE, Domain

SMALL = {"models": ["normal_normal"], "backends": ["numpyro"], "seeds": [0]}


def problems_of(config: dict) -> list[str]:
    """The problems ``matrix.expand`` reports for ``config`` (none: the test fails)."""
    with pytest.raises(matrix.ConfigError) as error:
        matrix.expand(config)
    return error.value.problems


def with_params(**params) -> dict:
    return {**SMALL, "params": {"normal_normal": params}}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n": True}, r"n must be an integer >= 1, got True \(a boolean is not a number\)"),
        ({"n": 2.5}, r"n must be an integer >= 1, got 2\.5"),
        ({"n": math.nan}, r"n must be an integer >= 1, got nan"),
        ({"n": -5}, r"n must be an integer >= 1, got -5"),
        ({"n": 0}, r"n must be an integer >= 1, got 0"),
        ({"n": "abc"}, r"n must be an integer >= 1, got 'abc'"),
        ({"prior_scale": -1}, r"prior_scale must be a finite real number > 0, got -1"),
        ({"prior_scale": 0.0}, r"prior_scale must be a finite real number > 0, got 0\.0"),
        ({"noise_scale": math.inf}, r"noise_scale must be a finite real number > 0, got inf"),
        ({"prior_loc": math.nan}, r"prior_loc must be a finite real number, got nan"),
        ({"prior_loc": False}, r"prior_loc must be a finite real number, got False \(a boolean"),
        ({"n": 10**9}, r"n = 1000000000: 1,000,000,001 numbers of data and latents, more than the limit"),
    ],
)
def test_bad_model_parameter_is_refused_naming_parameter_value_and_domain(params, message):
    (problem,) = problems_of(with_params(**params))
    assert problem.startswith("model 'normal_normal': ")
    assert re.search(message, problem), problem


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"seeds": [True]}, r"seeds must be a non-empty list of integers >= 0 and < 2\*\*32, got \[True\]"),
        ({"seeds": [2**32]}, r"seeds must be .* got \[4294967296\]"),
        ({"seeds": [99999999999999999999]}, r"seeds must be .* got \[99999999999999999999\]"),
        ({"seeds": [-1]}, r"seeds must be .* got \[-1\]"),
        ({"seeds": []}, r"seeds must be a non-empty list"),
        ({"svi": {"steps": True}}, r"svi: steps must be an integer >= 1, got True \(a boolean"),
        ({"svi": {"particles": 2.5}}, r"svi: particles must be an integer >= 1, got 2\.5"),
        ({"svi": {"eval_particles": 1}}, r"svi: eval_particles must be an integer >= 2, got 1"),
        ({"svi": {"lr": math.nan}}, r"svi: lr must be a finite real number > 0, got nan"),
        ({"svi": {"hold": 1.0}}, r"svi: hold must be a finite real number in \[0, 1\), got 1\.0"),
        ({"svi": {"speed": 1}}, r"unknown svi setting 'speed'; valid: steps, lr"),
        ({"svi": 3}, r"svi must be a table \(\[svi\] in TOML\), got 3"),
        ({"evaluation": {"samples": True}}, r"evaluation samples must be an integer >= 2, got True"),
        ({"guides_per_model": True}, r"guides_per_model must be an integer >= 0, got True"),
        ({"cell_timeout": 0}, r"cell_timeout \(seconds\) must be a finite real number > 0, got 0"),
        ({"cell_timeout": True}, r"cell_timeout \(seconds\) must be a finite real number > 0, got True"),
        ({"cell_timeout": math.inf}, r"cell_timeout \(seconds\) must be a finite real number > 0, got inf"),
        ({"params": {"normal_normal": 5}}, r"params.normal_normal must be a table of parameter values"),
        (
            {"estimators": {"importance": {"n": True}}},
            r"estimator 'importance': n must be an integer, got True",
        ),
        (
            {"estimators": {"importance": {"ks": [1, True]}}},
            r"'importance': ks\[1\] must be an integer, got True",
        ),
        ({"estimators": {"importance": {"ks": 10}}}, r"estimator 'importance': ks must be a list, got 10"),
        ({"estimators": {"iwae": {"k": 2.5}}}, r"estimator 'iwae': k must be an integer, got 2\.5"),
        ({"estimators": {"psis": 3}}, r"estimators.psis must be a table of settings, got 3"),
        (
            {"estimators": {"importance": {"n": 10_000, "ks": [1, 1000, 10_000]}}},
            r"IWAE curve up to K = 10000 needs n >= 2K = 20000 weights, got n = 10000",
        ),
    ],
)
def test_bad_run_setting_is_refused_naming_setting_value_and_domain(config, message):
    (problem,) = problems_of({**SMALL, **config})
    assert re.search(message, problem), problem


def test_valid_settings_pass_and_cell_timeout_defaults_to_1800_seconds():
    plan = matrix.expand({**SMALL, "seeds": [0, 2**32 - 1]})
    assert plan.config["cell_timeout"] == 1800 and {c.seed for c in plan.cells} == {0, 2**32 - 1}
    plan = matrix.expand(
        {
            **SMALL,
            "cell_timeout": 2.5,
            "estimators": {"importance": {"n": 2000, "ks": [1, 1000]}},
            "params": {"normal_normal": {"n": 7, "prior_scale": 1}},
        }
    )
    assert plan.config["cell_timeout"] == 2.5
    assert plan.cells[0].estimators == (("importance", (("ks", (1, 1000)), ("n", 2000))),)
    assert plan.cells[0].overrides == (("n", 7), ("prior_scale", 1))


def test_every_problem_of_a_config_is_reported_at_once():
    config = {
        **SMALL,
        "seeds": [True],
        "cell_timeout": -1,
        "svi": {"steps": True, "lr": -1.0},
        "evaluation": {"samples": 1},
        "params": {"normal_normal": {"n": 0, "prior_scale": math.nan, "noise": 1}},
        "estimators": {"iwae": {"k": True}, "importance": {"n": 100, "ks": [1, 100]}},
    }
    problems = problems_of(config)
    named = [
        "seeds",
        "cell_timeout",
        "steps",
        "lr",
        "samples",
        "'noise'",
        "n must",
        "prior_scale",
        "k must",
        "K =",
    ]
    assert len(problems) == len(named), problems
    for name, problem in zip(named, problems, strict=True):
        assert name in problem, (name, problem)


def test_array_parameters_are_checked_for_entries_and_for_shapes_set_by_other_parameters():
    ppca, mixture = registry.get("ppca"), registry.get("gaussian_mixture")
    assert ppca.check_params({"mu": (0.0, 0.0)}) == [
        "model 'ppca': mu must have shape (d,), d = the rows of W, here (5,); got shape (2,)"
    ]
    assert ppca.check_params({"W": ((1.0, 0.0),), "mu": (0.0,)}) == []  # d = 1, k = 2
    (ragged,) = ppca.check_params({"W": ((1.0, 0.0), (1.0,))})
    assert ragged.startswith("model 'ppca': W must be an array of finite real numbers of shape (d, k)")
    (flag,) = ppca.check_params({"W": ((True, 0.0), (0.0, 1.0))})
    assert "W must be an array of finite real numbers" in flag
    (infinite,) = ppca.check_params({"log_sigma": -math.inf})
    assert "log_sigma must be a finite real number, got -inf" in infinite
    (weights,) = mixture.check_params({"data_weights": (0.5, 0.5, 0.0)})
    assert "data_weights must be an array of finite real numbers > 0 of shape (K,)" in weights
    (logits,) = mixture.check_params({"logits": (0.0, 0.0)})
    assert logits.endswith("logits must have shape (K,), K = the length of means, here (3,); got shape (2,)")


def test_toml_arrays_become_tuples_so_that_cells_stay_hashable():
    config = {
        "models": ["gaussian_mixture"],
        "backends": ["numpyro"],
        "params": {"gaussian_mixture": {"means": [-1, 1], "data_weights": [1, 1], "logits": [0.0, 0.0]}},
    }
    cells = matrix.expand(config).cells
    assert dict(cells[0].overrides)["means"] == (-1, 1)
    assert len({hash(c) for c in cells}) == len(cells)


@pytest.mark.parametrize(
    ("domain", "good", "bad", "text"),
    [
        (Domain.integer(0, 10), [0, 10], [-1, 11, True, 1.0], "an integer in [0, 10]"),
        (Domain.real(0.0, 1.0, low_open=True), [1e-300, 1, 1.0], [0.0, 1.5, math.nan, True], "in (0, 1]"),
        (Domain.real(high=2.0, high_open=True), [-1e300, 1.9], [2.0, math.inf], "a finite real number < 2"),
        (Domain.positive(), [1e-300, 10**300], [10**400, -0.0, 0], "a finite real number > 0"),
        (Domain.flag(), [True, False], [1, 0, "true"], "true or false"),
        (Domain.choice("a", "b"), ["a", "b"], ["c", 1, True], "one of 'a', 'b'"),
    ],
)
def test_domain_bounds_are_open_or_closed_as_declared_and_types_are_strict(domain, good, bad, text):
    assert text in str(domain)
    assert all(domain.problem("x", v) is None for v in good)
    for value in bad:
        boolean = isinstance(value, bool) and domain.kind in ("int", "real")
        note = " (a boolean is not a number)" if boolean else ""
        assert domain.problem("x", value) == f"x must be {domain}, got {reprlib.repr(value)}{note}"


def test_model_with_invalid_defaults_or_undeclared_domains_is_refused():
    spec = registry.get("normal_normal")
    with pytest.raises(
        ValueError, match=r"invalid defaults: model 'normal_normal': n must be an integer >= 1, got 0"
    ):
        replace(spec, defaults={**spec.defaults, "n": 0})
    with pytest.raises(ValueError, match=r"parameter extra has no domain"):
        replace(spec, defaults={**spec.defaults, "extra": 1.0})
    with pytest.raises(ValueError, match=r"domains name typo, which are not parameters"):
        replace(spec, domains={**spec.domains, "typo": Domain.real()})
    with pytest.raises(ValueError, match=r"no problem_size"):
        replace(spec, problem_size=None)


def test_oversized_problem_is_refused_without_allocating_it():
    spec = registry.get("bayes_linreg")
    tracemalloc.start()
    problems = spec.check_params({"n": 10**9, "d": 10**6})
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert problems == [
        f"model 'bayes_linreg': n = 1000000000, d = 1000000: {10**9 * (10**6 + 1) + 10**6:,} numbers of "
        f"data and latents, more than the limit of {MAX_PROBLEM_SIZE:,} (80 MB of float64)"
    ]
    assert peak < 1_000_000
    with pytest.raises(ValueError, match="more than the limit"):
        spec.params({"n": 10**9})


def _no_data(rng, params):
    raise AssertionError("validation built a data set")


@pytest.fixture
def models_without_data(monkeypatch):
    """Every registered model, with a data generator that fails the test when called."""
    models = Registry("model")
    for name in registry.names():
        models.register(replace(registry.get(name), generate_data=_no_data))
    monkeypatch.setattr(registry, "MODELS", models)


def test_expanding_a_matrix_builds_no_data_even_at_the_largest_valid_size(models_without_data):
    size = {"normal_normal": {"n": MAX_PROBLEM_SIZE - 1}, "ppca": {"n": MAX_PROBLEM_SIZE // 7}}
    plan = matrix.expand({"models": "all", "seeds": [0, 1], "params": size})
    assert {"normal_normal", "ppca", "gaussian_mixture", "bayes_linreg"} <= {c.model for c in plan.cells}
    assert any("handrolled" in s and "gaussian_mixture" in s for s in plan.skipped)
    (problem,) = problems_of({**SMALL, "params": {"normal_normal": {"n": MAX_PROBLEM_SIZE}}})
    assert "more than the limit" in problem


def test_backends_decide_support_from_sites_alone():
    spec = registry.get("gaussian_mixture")
    sites = spec.sites(spec.params())
    assert "discrete latents" in backends.get("handrolled").unsupported(spec, sites, "categorical")
    assert backends.get("numpyro").unsupported(spec, sites, "categorical") is None
    assert "does not declare guide 'full_rank'" in backends.get("pyro").unsupported(spec, sites, "full_rank")


def test_cli_dry_run_exits_2_listing_every_bad_value(tmp_path, capsys, models_without_data):
    config = tmp_path / "bad.toml"
    config.write_text(
        'models = ["normal_normal"]\nbackends = ["numpyro"]\nseeds = [0]\ncell_timeout = -1\n'
        "[svi]\nsteps = true\n[params.normal_normal]\nn = true\nprior_scale = nan\n"
    )
    assert cli.main(["run", "--dry-run", "--config", str(config), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    for message in (
        "cell_timeout (seconds) must be a finite real number > 0, got -1",
        "svi: steps must be an integer >= 1, got True (a boolean is not a number)",
        "model 'normal_normal': n must be an integer >= 1, got True (a boolean is not a number)",
        "model 'normal_normal': prior_scale must be a finite real number > 0, got nan",
    ):
        assert message in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\xff\xfe models", "codec can't decode"), (b"models = [", "cannot read config")],
)
def test_unreadable_config_is_a_config_error(tmp_path, content, message):
    path = tmp_path / "config.toml"
    path.write_bytes(content)
    with pytest.raises(matrix.ConfigError, match=re.escape(message)):
        matrix.load(path=path)


@pytest.mark.parametrize("profile", matrix.profiles())
def test_shipped_profiles_validate(profile):
    plan = matrix.expand(matrix.load(profile))
    assert plan.cells or plan.vae is not None or plan.vqvae is not None


HUGE = 10**12  # ~7 TiB of float64 at one number per unit


@pytest.mark.parametrize(
    ("config", "setting", "per_unit"),
    [
        ({"svi": {"steps": HUGE}}, "svi: steps", 1),
        ({"svi": {"eval_particles": HUGE}}, "svi: eval_particles", 1),
        ({"evaluation": {"samples": HUGE}}, "evaluation samples", 2),
        ({"estimators": {"iwae": {"k": HUGE}}}, "estimator 'iwae': k", 1),
        ({"estimators": {"ais": {"chains": HUGE}}}, "estimator 'ais': chains", 1),
        ({"estimators": {"importance": {"ks": [1, HUGE]}}}, "estimator 'importance': ks[1]", 1),
        (
            {"svi": {"particles": 1000}, "params": {"normal_normal": {"n": 10**6}}},
            "svi: particles",
            10**6 + 1,  # numbers per particle: n data points and the mean
        ),
    ],
)
def test_every_size_is_bounded_by_the_memory_budget(config, setting, per_unit):
    from ppl_suite import sizes

    (problem,) = problems_of({**SMALL, **config})
    assert problem.startswith(f"{setting} = ") and "more than the memory budget of 2 GiB" in problem, problem
    assert f"(at most {sizes.MAX_NUMBERS // per_unit:,})" in problem


def test_sizes_at_the_memory_budget_pass():
    from ppl_suite import sizes

    largest = sizes.MAX_NUMBERS
    matrix.expand({**SMALL, "svi": {"steps": largest, "eval_particles": largest}})
    matrix.expand({**SMALL, "evaluation": {"samples": largest // 2}, "estimators": {"iwae": {"k": largest}}})
    matrix.expand({**SMALL, "svi": {"particles": largest // 1001}, "params": {"normal_normal": {"n": 1000}}})


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--models", "normal_normal", "--steps", str(HUGE), "--dry-run"],
        ["run", "--models", "normal_normal", "--steps", str(HUGE)],
        ["vae", "--steps", str(HUGE)],
        ["vae", "--model", "vqvae_digits", "--steps", str(HUGE)],
        ["calibrate", "--replicates", str(HUGE)],
    ],
)
def test_a_size_beyond_the_budget_exits_2_with_one_line_and_runs_nothing(argv, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main([*argv, "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"= {HUGE:,} is too large" in line and "memory budget" in line
    assert not out.exists()
