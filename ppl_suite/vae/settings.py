"""The VAE study's settings: one table (``[vae]`` in a profile, or the ``ppl-suite vae`` flags), checked
with one message per problem. Light to import: the runner validates it before anything runs.

    [vae]
    backends = ["pyro", "numpyro", "handrolled"]
    n_test = 500               # test images evaluated (the first n of the fixed test split)
    iwae_k = 5000              # encoder draws per image: IWAE-K, the encoder's ELBO and k-hat
    checkpoint_images = 100    # the fixed subset (the first images) evaluated at training checkpoints
    bdmc_images = 100          # images simulated from each trained decoder for BDMC
    bdmc_lengths = [0.5, 1.0, 2.0]   # BDMC schedule lengths, as multiples of the tuned AIS schedule's
    seed = 0                   # the evaluation's random streams
    training_runs = 5          # training runs per backend, differing only in their noise seed (0, 1, ...):
                               # run 0 is evaluated in full, the others give the encoder's ELBO and
                               # IWAE-K, whose spread says whether the backends differ as procedures
    [vae.training]             # ppl_suite.vae.training.TrainingSettings fields (its defaults otherwise)
    [vae.ais]                  # temperatures (the adaptive schedule's cap), chains, leapfrog_steps,
                               # pilot_images (images the schedule is tuned on)
    [vae.qstar]                # lr, draws, window, max_steps of the per-image q* fit (best_guide.FitSettings)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from ppl_suite import sizes
from ppl_suite.estimators.ais import AISConfig
from ppl_suite.vae.best_guide import FitSettings
from ppl_suite.vae.training import BACKENDS

TEST_IMAGES = 500


class SettingsError(ValueError):
    """One or more problems with the VAE study's settings; ``problems`` holds one message each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class CheckedSettings:
    """A study's settings, checked by their ``problems()`` (one message per problem)."""

    def problems(self) -> list[str]:
        raise NotImplementedError

    def checked(self) -> Self:
        """These settings, or SettingsError listing every problem."""
        found = self.problems()
        if found:
            raise SettingsError(found)
        return self


def integer_problem(study: str, name: str, value: Any, low: int, high: int | None) -> str | None:
    """The message for a setting ``name`` not an integer in [low, high] (high None: no upper bound)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high and value > high):
        bound = f"between {low} and {high}" if high else f">= {low}"
        return f"{study}: {name} must be an integer {bound}, got {value!r}"
    return None


def training_problems(training_settings: Callable[[], Any], study: str) -> list[str]:
    """The problems of a study's ``training`` overrides, as ``training_settings()`` raises them."""
    try:
        training_settings()
    except (TypeError, ValueError) as error:
        return [f"{study}.training: {part}" for part in str(error).split("; ")]
    return []


@dataclass(frozen=True)
class VAEAISSettings(AISConfig):
    """The suite's AIS settings, and how many images its pilot tunes the shared schedule on."""

    temperatures: int = 4000
    chains: int = 64
    leapfrog_steps: int = 5
    pilot_images: int = 2


@dataclass(frozen=True)
class VAEStudySettings(CheckedSettings):
    """Everything the study runs (module docstring); ``training`` holds TrainingSettings overrides."""

    backends: tuple[str, ...] = BACKENDS
    n_test: int = TEST_IMAGES
    iwae_k: int = 5000
    checkpoint_images: int = 100
    bdmc_images: int = 100
    bdmc_lengths: tuple[float, ...] = (0.5, 1.0, 2.0)
    seed: int = 0
    training_runs: int = 1
    training: dict[str, Any] = field(default_factory=dict)
    ais: VAEAISSettings = field(default_factory=VAEAISSettings)
    qstar: FitSettings = field(default_factory=FitSettings)

    def problems(self) -> list[str]:
        """One message per problem (empty when the settings are valid)."""
        found = []
        if not self.backends:
            found.append(f"vae: backends must name at least one of {', '.join(BACKENDS)}")
        unknown = [b for b in self.backends if b not in BACKENDS]
        if unknown:
            found.append(
                f"vae: unknown backends {', '.join(map(repr, unknown))}; valid: {', '.join(BACKENDS)}"
            )
        counts = {
            "n_test": (self.n_test, 2, TEST_IMAGES),
            "iwae_k": (self.iwae_k, 2, None),
            "checkpoint_images": (self.checkpoint_images, 2, None),
            "bdmc_images": (self.bdmc_images, 2, None),
            "seed": (self.seed, 0, 2**32 - 1),
            "training_runs": (self.training_runs, 1, 100),
        }
        bad = set()
        for name, (value, low, high) in counts.items():
            if problem := integer_problem("vae", name, value, low, high):
                found.append(problem)
                bad.add(name)
            elif not high and (too_many := sizes.over_budget(name, value, 1, "per image or draw")):
                found.append(f"vae: {too_many}")
                bad.add(name)
        if not bad & {"n_test", "checkpoint_images"} and self.checkpoint_images > self.n_test:
            found.append(
                f"vae: checkpoint_images ({self.checkpoint_images}) must not exceed n_test ({self.n_test})"
            )
        if not self.bdmc_lengths or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in self.bdmc_lengths
        ):
            found.append(
                f"vae: bdmc_lengths must be positive multiples of the schedule length, "
                f"got {self.bdmc_lengths!r}"
            )
        try:
            self.ais.check("vae.ais")
        except ValueError as error:
            found.append(str(error))
        if not (isinstance(self.ais.pilot_images, int) and self.ais.pilot_images >= 1):
            found.append(f"vae.ais: pilot_images must be an integer >= 1, got {self.ais.pilot_images!r}")
        found += self.qstar.problems()
        found += self.training_problems()
        return found

    def training_problems(self) -> list[str]:
        """The problems of the ``training`` overrides, as TrainingSettings reports them."""
        return training_problems(self.training_settings, "vae")

    def training_settings(self) -> Any:
        """``ppl_suite.vae.training.TrainingSettings`` with the ``training`` overrides."""
        from ppl_suite.vae.training import TrainingSettings

        return TrainingSettings(**self.training)


def _sub(cls: type, table: Any, study: str, name: str, found: list[str]) -> Any:
    """``cls(**table)``, or its default with a problem for a non-table or unknown keys."""
    if table is None:
        return cls()
    if not isinstance(table, dict):
        found.append(f"{study}.{name} must be a table, got {table!r}")
        return cls()
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - valid)
    if unknown:
        found.append(
            f"{study}.{name}: unknown settings {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(sorted(valid))}"
        )
    return cls(**{k: v for k, v in table.items() if k in valid})


def from_table(table: dict[str, Any]) -> VAEStudySettings:
    """Settings from a ``[vae]`` table (TOML), checked; SettingsError lists every problem."""
    return study_from_table(VAEStudySettings, "vae", table, {"ais": VAEAISSettings, "qstar": FitSettings})


def study_from_table(cls: type, study: str, table: Any, nested: Mapping[str, type] | None = None) -> Any:
    """``cls`` (a study's settings) from its ``[study]`` table, checked; SettingsError lists every
    problem. ``nested`` names its sub-tables of settings classes besides ``training`` (a dict of
    overrides); lists become tuples."""
    nested = nested or {}
    if not isinstance(table, dict):
        raise SettingsError([f"{study} must be a table ([{study}] in TOML), got {table!r}"])
    table = dict(table)
    found: list[str] = []
    parts = {name: _sub(kind, table.pop(name, None), study, name, found) for name, kind in nested.items()}
    training = table.pop("training", {})
    if not isinstance(training, dict):
        found.append(f"{study}.training must be a table, got {training!r}")
        training = {}
    valid = {f.name for f in dataclasses.fields(cls)} - {*nested, "training"}
    unknown = sorted(set(table) - valid)
    if unknown:
        found.append(
            f"{study}: unknown settings {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(valid))}"
        )
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items() if k in valid}
    settings = cls(**values, training=dict(training), **parts)
    found += settings.problems()
    if found:
        raise SettingsError(found)
    return settings


def quick(settings: VAEStudySettings) -> VAEStudySettings:
    """A small version of ``settings`` for a first look in a few minutes: fewer images, draws,
    temperatures and training steps (``ppl-suite vae --quick``)."""
    training = {"steps": 300, **{k: v for k, v in settings.training.items() if k != "steps"}}
    return dataclasses.replace(
        settings,
        n_test=50,
        iwae_k=1000,
        checkpoint_images=20,
        bdmc_images=20,
        bdmc_lengths=(0.5, 1.0),
        training_runs=min(settings.training_runs, 3),
        training=training,
        ais=dataclasses.replace(settings.ais, temperatures=min(settings.ais.temperatures, 400), chains=32),
        qstar=dataclasses.replace(settings.qstar, max_steps=min(settings.qstar.max_steps, 2000)),
    )
