"""The comparison matrix: a TOML profile plus command-line overrides, validated, expanded into units of
work: Cells (problem x backend x guide x seed) and ProblemUnits (the guide-free estimators of one
problem, run once and referred to by its cells; none for models with learned theta, whose cells run
them at their own fitted theta).

A config (a shipped profile in ``ppl_suite/profiles/`` or any TOML file) has these keys:

    models = "closed_form" | "reference" | "all" | ["name", ...]
                                          # closed_form: models with an exact oracle; reference: the
                                          # others, compared with a NUTS reference instead
    backends = ["pyro", "numpyro", "handrolled"]
    guides = ["mean_field", ...]          # optional; default: each model's first guides_per_model
    guides_per_model = 2                  # 0 = every guide family the model declares
    seeds = [0, 1]                        # each seed is a data set and an SVI seed, in [0, 2**32)
                                          # (a model with a fixed data set has one: data seed 0)
    cell_timeout = 1800                   # seconds one cell may run before it is stopped
    [svi]        steps, lr, final_lr, hold, particles, eval_particles
    [evaluation] samples                  # Monte Carlo samples for ELBO and KL estimates
    [estimators] <name> = {setting = value}   # extra estimators: on every fitted guide, or, for a
                                          # guide-free one (AIS, BDMC, Laplace...), once per problem
    [params.<model>] name = value         # model size and hyperparameter overrides
    [<study>]    a study's settings (``ppl_suite.studies``: [vae] the VAE, [vqvae] the VQ-VAE), run
                 after the cells into the same folder; with a study's section, models default to none
                 (the study alone), and the study's backends default to the config's backends

Every problem found is reported at once, each naming what was wrong and what is valid; nothing runs
until the whole matrix is valid. Validation needs no data: model parameters are checked against their
domains (``ModelSpec.check_params``) and backends are asked about each model's latent sites only.
"""

from __future__ import annotations

import numbers
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ppl_suite import backends, guides, registry, sizes, studies
from ppl_suite.backends import SVIConfig
from ppl_suite.cell import Cell, EstimatorSettings, ProblemUnit
from ppl_suite.errors import InputProblem
from ppl_suite.spec import Domain

TOP_KEYS = {
    "models",
    "backends",
    "guides",
    "guides_per_model",
    "seeds",
    "cell_timeout",
    "svi",
    "evaluation",
    "params",
    "estimators",
}  # and each study's section (``top_keys``)
MODEL_SETS = ("closed_form", "reference", "all")
SEED = Domain.integer(0, 2**32 - 1)  # 32 bits: every generator (NumPy, JAX, torch) and int64 column takes it
GUIDES_PER_MODEL = Domain.integer(low=0)
EVAL_SAMPLES = Domain.integer(low=2)
CELL_TIMEOUT = Domain.real(0.0, low_open=True)
DEFAULT_CELL_TIMEOUT = 1800.0
DRAW = "per draw (its log p and log q)"


class ConfigError(Exception):
    """One or more problems with a matrix config; ``problems`` holds one message each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Matrix:
    cells: list[Cell]
    skipped: list[str]
    config: dict[str, Any]
    problems: list[ProblemUnit] = field(default_factory=list)
    studies: dict[str, Any] = field(default_factory=dict)  # the studies' settings, by name

    def __getattr__(self, name: str) -> Any:
        """A study's settings by its name (``matrix.vae``), None when the config has no such section."""
        if name.startswith("_") or name not in studies.names():
            raise AttributeError(name)
        return self.studies.get(name)

    @property
    def units(self) -> list[ProblemUnit | Cell]:
        """Every unit of work, each problem unit before the cells: a worker holding a problem (the
        affinity queue) runs its guide-free estimators first."""
        return [*self.problems, *self.cells]


def profiles() -> list[str]:
    return sorted(
        p.name.removesuffix(".toml")
        for p in resources.files("ppl_suite.profiles").iterdir()
        if p.name.endswith(".toml")
    )


def load(profile: str | None = None, path: str | Path | None = None) -> dict[str, Any]:
    """The config of a shipped profile (default ``quick``) or of a TOML file."""
    if path is not None:
        try:
            return tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise ConfigError([f"cannot read config {path}: {error}"]) from None
    name = profile or "quick"
    if name not in profiles():
        raise ConfigError([f"unknown profile {name!r}; valid: {', '.join(profiles())}"])
    return tomllib.loads(resources.files("ppl_suite.profiles").joinpath(f"{name}.toml").read_text())


def _names(value: Any, kind: str, valid: list[str], problems: list[str]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{kind} must be a list of names; valid: {', '.join(valid)}")
        return []
    unknown = [v for v in value if v not in valid]
    if unknown:
        problems.append(f"unknown {kind} {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}")
    return [v for v in dict.fromkeys(value) if v in valid]


def _models(value: Any, problems: list[str]) -> list[str]:
    if value == "all":
        return registry.names()
    if value in ("closed_form", "reference"):
        with_oracle = value == "closed_form"
        return [n for n in registry.names() if (registry.get(n).oracle is not None) == with_oracle]
    if isinstance(value, str):
        value = [value]
    return _names(value, "model", registry.names(), problems) if value is not None else []


def _seeds(value: Any, problems: list[str]) -> list[int]:
    if not isinstance(value, list) or not value or any(SEED.problem("seed", v) for v in value):
        problems.append(f"seeds must be a non-empty list of integers >= 0 and < 2**32, got {value!r}")
        return []
    return list(dict.fromkeys(value))


def _table(config: dict[str, Any], key: str, problems: list[str]) -> dict[str, Any]:
    """``config[key]`` when it is a table (a dict), {} when absent; otherwise a problem."""
    value = config.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{key} must be a table ([{key}] in TOML), got {value!r}")
        return {}
    return value


def _svi(table: dict[str, Any], problems: list[str]) -> SVIConfig:
    found = [f"svi: {problem}" for problem in SVIConfig.problems(table)]
    problems += found
    return SVIConfig() if found else SVIConfig(**table)


def _checked(domain: Domain, name: str, value: Any, problems: list[str]) -> Any:
    """``value``, after adding a problem to ``problems`` when it lies outside ``domain``."""
    problem = domain.problem(name, value)
    if problem:
        problems.append(problem)
    return value


def expand(config: dict[str, Any]) -> Matrix:
    """Validate a config and expand it into cells; raises ConfigError listing every problem."""
    problems: list[str] = []
    valid_keys = top_keys()
    unknown = sorted(set(config) - valid_keys)
    if unknown:
        problems.append(
            f"unknown config key {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(valid_keys))}"
        )
    chosen_studies = _studies(config, problems)
    chosen = _chosen(config, bool(set(studies.names()) & set(config)), problems)
    if problems:
        raise ConfigError(problems)
    cells, skipped, units = _cells(chosen)
    if not cells and not chosen_studies:
        raise ConfigError(["no cell can run with this selection:", *skipped])
    config = {**config, "cell_timeout": chosen.cell_timeout}
    return Matrix(cells, skipped, config, units, chosen_studies)


def top_keys() -> set[str]:
    """The keys a config may have: the matrix's and each study's section (``ppl_suite.studies``)."""
    return {*TOP_KEYS, *studies.names()}


@dataclass(frozen=True)
class _Chosen:
    """The validated selection of a config, before expansion."""

    models: list[str]
    backends: list[str]
    guides: list[str] | None
    per_model: int
    seeds: list[int]
    cell_timeout: float
    svi: SVIConfig
    samples: int
    overrides: dict[str, dict[str, Any]]
    estimators: EstimatorSettings


def _chosen(config: dict[str, Any], with_study: bool, problems: list[str]) -> _Chosen:
    """The config's selection of cells, every problem appended to ``problems`` (with a study section,
    models default to none)."""
    models = config.get("models", "closed_form" if not with_study else [])
    if isinstance(models, str) and models not in MODEL_SETS and models not in registry.names():
        problems.append(
            f"unknown model set {models!r}; valid: {', '.join(MODEL_SETS)} or a list of models "
            f"({', '.join(registry.names())})"
        )
        models = []
    model_names = _models(models, problems)
    backend_names = _names(config.get("backends", backends.names()), "backend", backends.names(), problems)
    guide_names = config.get("guides")
    if guide_names is not None:
        guide_names = _names(guide_names, "guide", guides.names(), problems)
    per_model = _checked(GUIDES_PER_MODEL, "guides_per_model", config.get("guides_per_model", 2), problems)
    seeds = _seeds(config.get("seeds", [0]), problems)
    cell_timeout = _checked(
        CELL_TIMEOUT, "cell_timeout (seconds)", config.get("cell_timeout", DEFAULT_CELL_TIMEOUT), problems
    )
    svi = _svi(_table(config, "svi", problems), problems)
    samples = _samples(_table(config, "evaluation", problems), problems)
    overrides = _overrides(_table(config, "params", problems), problems)
    chosen_estimators = _estimators(_table(config, "estimators", problems), problems)
    for model in model_names:  # the overrides kept are valid; invalid svi settings leave the defaults
        problems += _particles_problem(model, svi, overrides.get(model, {}))
    if guide_names:  # a list (a profile's, say) may name families some models lack; none may get none
        for model in model_names:
            supported = registry.get(model).guides
            if not any(guide in supported for guide in guide_names):
                problems.append(
                    f"model {model!r} supports none of the guides {', '.join(guide_names)} "
                    f"(it supports {', '.join(supported)})"
                )
    return _Chosen(
        model_names, backend_names, guide_names, per_model, seeds, cell_timeout, svi, samples, overrides,
        chosen_estimators,
    )  # fmt: skip


def _samples(evaluation: dict[str, Any], problems: list[str]) -> int:
    """The ``[evaluation]`` table's Monte Carlo samples (default 10 000)."""
    evaluation = dict(evaluation)
    samples = evaluation.pop("samples", 10_000)
    if too_many := EVAL_SAMPLES.problem("evaluation samples", samples) or sizes.over_budget(
        "evaluation samples", samples, 2, DRAW
    ):
        problems.append(too_many)
    if evaluation:
        problems.append(f"unknown evaluation setting {', '.join(map(repr, evaluation))}; valid: 'samples'")
    return samples


def _cells(chosen: _Chosen) -> tuple[list[Cell], list[str], list[ProblemUnit]]:
    """The cells of a valid selection, the combinations skipped (with why) and the problem units."""
    guide_free = _guide_free(chosen.estimators)
    cells, skipped, problems = [], [], {}
    for model in chosen.models:
        spec = registry.get(model)
        families = [g for g in chosen.guides if g in spec.guides] if chosen.guides else list(spec.guides)
        if not chosen.guides and chosen.per_model:
            families = families[: chosen.per_model]
        model_overrides = tuple(sorted(chosen.overrides.get(model, {}).items()))
        sites = spec.sites(spec.params(dict(model_overrides)))  # no data: the parameters are valid
        # with learned theta, guide-free estimates depend on each fit: the cells run them
        per_cell = (
            chosen.estimators if spec.learned else tuple(e for e in chosen.estimators if e not in guide_free)
        )
        shared = () if spec.learned else guide_free
        for guide in families:
            for backend in chosen.backends:
                reason = backends.info(backend).unsupported(spec, sites, guide)  # imports no library
                if reason:
                    skipped.append(f"{model}/{backend}/{guide}: {reason}")
                    continue
                for seed in chosen.seeds:
                    # a fixed data set is one problem whatever the seed: its cells share data seed 0
                    data_seed = 0 if spec.fixed_data else seed
                    unit = ProblemUnit(model, data_seed, model_overrides, shared) if shared else None
                    if unit is not None:
                        problems.setdefault(unit.key, unit)
                    problem_key = unit.key if unit is not None else None
                    cells.append(
                        Cell(
                            model, backend, guide, data_seed, seed, model_overrides, chosen.svi,
                            chosen.samples, per_cell, problem_key,
                        )
                    )  # fmt: skip
    return cells, skipped, list(problems.values())


def _particles_problem(model: str, svi: SVIConfig, overrides: dict[str, Any]) -> list[str]:
    """The SVI particles of a model over the memory budget: each particle of a gradient step holds a
    copy of the problem's latents and its data's log densities, ``problem_size`` numbers."""
    spec = registry.get(model)
    if spec.problem_size is None:
        return []
    per_particle = int(spec.problem_size(spec.params(overrides)))
    unit = f"per particle (model {model!r}: its data and latents)"
    too_many = sizes.over_budget("svi: particles", svi.particles, per_particle, unit)
    return [too_many] if too_many else []


def _studies(config: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """The settings of each study whose section the config has (``Study.settings``: their backends
    default to the config's), by name; their problems appended to ``problems``."""
    chosen = {}
    for name in studies.names():
        if name in config:
            try:
                chosen[name] = studies.get(name).settings(config[name], config)
            except InputProblem as error:
                problems.extend(error.problems)
    return chosen


def _guide_free(chosen: EstimatorSettings) -> EstimatorSettings:
    """The chosen estimators whose value does not depend on the fitted guide (``uses_guide`` False)."""
    from ppl_suite import estimators

    return tuple((name, settings) for name, settings in chosen if not estimators.get(name).uses_guide)


def _frozen(value: Any) -> Any:
    """TOML arrays as (nested) tuples, so that a cell stays hashable and matches tuple defaults."""
    return tuple(_frozen(v) for v in value) if isinstance(value, list | tuple) else value


def _overrides(table: dict[str, Any], problems: list[str]) -> dict[str, dict[str, Any]]:
    """Per-model parameter overrides, each checked against the model's parameter domains."""
    out = {}
    for model, values in table.items():
        if model not in registry.names():
            problems.append(f"params for unknown model {model!r}; valid: {', '.join(registry.names())}")
            continue
        if not isinstance(values, dict):
            problems.append(f"params.{model} must be a table of parameter values, got {values!r}")
            continue
        values = {name: _frozen(value) for name, value in values.items()}
        found = registry.get(model).check_params(values)
        problems += found
        if not found:
            out[model] = values
    return out


def _setting_domain(default: Any) -> Domain | None:
    """The type an estimator setting must have, read from its default: flag, integer or real."""
    if isinstance(default, bool):
        return Domain.flag()
    if isinstance(default, numbers.Integral):
        return Domain.integer()
    if isinstance(default, numbers.Real):
        return Domain.real()
    return None


def _typed(name: str, settings: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    """One problem per setting whose type differs from its default's (``true`` for a count, 2.5 for an
    integer, a number for a list...); a tuple setting's entries take the type of the default's entries."""
    problems = []
    for setting, value in settings.items():
        if setting not in defaults:
            continue  # unknown settings are named by estimators.get
        default = defaults[setting]
        if isinstance(default, tuple):
            if not isinstance(value, tuple):
                problems.append(f"estimator {name!r}: {setting} must be a list, got {value!r}")
                continue
            domain = _setting_domain(default[0]) if default else None
            entries = [(f"{setting}[{i}]", v) for i, v in enumerate(value)]
        else:
            domain, entries = _setting_domain(default), [(setting, value)]
        if domain is not None:
            problems += [
                f"estimator {name!r}: {p}"
                for key, v in entries
                if (
                    p := domain.problem(key, v)
                    or sizes.over_budget(key, v, 1, "per unit (draw, chain, step...)")
                )
            ]
    return problems


def _estimators(table: dict[str, Any], problems: list[str]) -> EstimatorSettings:
    """(name, settings) pairs, each typed against the estimator's defaults, then checked by constructing
    the configured estimator."""
    from ppl_suite import estimators

    chosen = []
    for name, settings in table.items():
        if not isinstance(settings, dict):
            problems.append(f"estimators.{name} must be a table of settings, got {settings!r}")
            continue
        settings = {k: _frozen(v) for k, v in settings.items()}
        try:
            defaults = estimators.settings_of(estimators.get(name))
        except KeyError as error:
            problems.append(str(error).strip("'\""))
            continue
        typed = _typed(name, settings, defaults)
        if typed:
            problems += typed
            continue
        try:
            estimators.get(name, **settings)  # each plug-in validates its settings on construction
        except (KeyError, ValueError, TypeError) as error:
            problems.append(str(error).strip("'\""))
            continue
        chosen.append((name, tuple(sorted(settings.items()))))
    return tuple(chosen)
