"""The comparison matrix: a TOML profile plus command-line overrides, validated, expanded into Cells.

A config (a shipped profile in ``ppl_suite/profiles/`` or any TOML file) has these keys:

    models = "closed_form" | "all" | ["name", ...]
    backends = ["pyro", "numpyro", "handrolled"]
    guides = ["mean_field", ...]          # optional; default: each model's first guides_per_model
    guides_per_model = 2                  # 0 = every guide family the model declares
    seeds = [0, 1]                        # each seed is a data set and an SVI seed
    [svi]        steps, lr, final_lr, particles, eval_particles
    [evaluation] samples                  # Monte Carlo samples for ELBO and KL estimates
    [estimators] <name> = {setting = value}   # extra estimators run on every fitted guide
    [params.<model>] name = value         # model size and hyperparameter overrides

Every problem found is reported at once, each naming what was wrong and what is valid; nothing runs
until the whole matrix is valid.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from ppl_suite import backends, guides, registry
from ppl_suite.backends import SVIConfig
from ppl_suite.cell import Cell
from ppl_suite.problem import Problem

TOP_KEYS = {
    "models",
    "backends",
    "guides",
    "guides_per_model",
    "seeds",
    "svi",
    "evaluation",
    "params",
    "estimators",
}
MODEL_SETS = ("closed_form", "all")


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
            return tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as error:
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
    if value == "closed_form":
        return [n for n in registry.names() if registry.get(n).oracle is not None]
    if isinstance(value, str):
        value = [value]
    return _names(value, "model", registry.names(), problems) if value is not None else []


def _int_list(value: Any, kind: str, problems: list[str]) -> list[int]:
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and v >= 0 for v in value):
        problems.append(f"{kind} must be a non-empty list of integers >= 0, got {value!r}")
        return []
    return list(dict.fromkeys(value))


def _svi(table: Any, problems: list[str]) -> SVIConfig:
    valid = [f.name for f in fields(SVIConfig)]
    table = dict(table or {})
    unknown = sorted(set(table) - set(valid))
    if unknown:
        problems.append(f"unknown svi setting {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}")
    try:
        return SVIConfig(**{k: v for k, v in table.items() if k in valid})
    except (ValueError, TypeError) as error:
        problems.append(f"svi: {error}")
        return SVIConfig()


def expand(config: dict[str, Any]) -> Matrix:
    """Validate a config and expand it into cells; raises ConfigError listing every problem."""
    problems: list[str] = []
    unknown = sorted(set(config) - TOP_KEYS)
    if unknown:
        problems.append(
            f"unknown config key {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(TOP_KEYS))}"
        )
    models = config.get("models", "closed_form")
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
    per_model = config.get("guides_per_model", 2)
    if not isinstance(per_model, int) or per_model < 0:
        problems.append(f"guides_per_model must be an integer >= 0, got {per_model!r}")
        per_model = 0
    seeds = _int_list(config.get("seeds", [0]), "seeds", problems)
    svi = _svi(config.get("svi"), problems)
    evaluation = dict(config.get("evaluation") or {})
    samples = evaluation.pop("samples", 10_000)
    if evaluation:
        problems.append(f"unknown evaluation setting {', '.join(map(repr, evaluation))}; valid: 'samples'")
    if not isinstance(samples, int) or samples < 2:
        problems.append(f"evaluation samples must be an integer >= 2, got {samples!r}")
    overrides = _overrides(config.get("params") or {}, problems)
    chosen_estimators = _estimators(config.get("estimators") or {}, problems)

    if guide_names:
        for guide in guide_names:
            if not any(guide in registry.get(m).guides for m in model_names):
                supported = "; ".join(f"{m}: {', '.join(registry.get(m).guides)}" for m in model_names)
                problems.append(f"guide {guide!r} is supported by none of the selected models ({supported})")
    if problems:
        raise ConfigError(problems)

    cells, skipped = [], []
    for model in model_names:
        spec = registry.get(model)
        chosen = [g for g in guide_names if g in spec.guides] if guide_names else list(spec.guides)
        if not guide_names and per_model:
            chosen = chosen[:per_model]
        model_overrides = tuple(sorted(overrides.get(model, {}).items()))
        problem = Problem.build(model, 0, dict(model_overrides))
        for guide in chosen:
            for backend in backend_names:
                reason = backends.get(backend).unsupported(problem, guide)
                if reason:
                    skipped.append(f"{model}/{backend}/{guide}: {reason}")
                    continue
                cells += [
                    Cell(model, backend, guide, seed, seed, model_overrides, svi, samples, chosen_estimators)
                    for seed in seeds
                ]
    if not cells:
        raise ConfigError(["no cell can run with this selection:", *skipped])
    return Matrix(cells, skipped, config)


def _overrides(table: Any, problems: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for model, values in dict(table).items():
        if model not in registry.names():
            problems.append(f"params for unknown model {model!r}; valid: {', '.join(registry.names())}")
            continue
        try:
            registry.get(model).params(values)
        except ValueError as error:
            problems.append(str(error))
            continue
        out[model] = dict(values)
    return out


def _estimators(table: Any, problems: list[str]) -> tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]:
    """(name, settings) pairs, each checked by constructing the configured estimator."""
    from ppl_suite import estimators

    chosen = []
    for name, settings in dict(table).items():
        settings = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(settings or {}).items()}
        try:
            estimators.get(name, **settings)
        except (KeyError, ValueError, TypeError) as error:
            problems.append(str(error).strip("'\""))
            continue
        chosen.append((name, tuple(sorted(settings.items()))))
    return tuple(chosen)
