"""The VQ-VAE study's settings: one table (``[vqvae]`` in the ``vqvae`` profile, or the ``ppl-suite vae
--model vqvae_digits`` flags), checked with one message per problem.

    [vqvae]
    backends = ["pyro", "numpyro", "handrolled"]
    objectives = ["enumerated", "score_function", "vq"]   # ppl_suite.vqvae.training
    n_test = 500            # test images evaluated exactly at every checkpoint (the first n of the split)
    draws = 2000            # encoder draws per test image for importance sampling and IWAE-K
    iwae_ks = [1, 10, 100]  # the IWAE bounds compared with the exact log p(x); each needs 2K <= draws
    gradient_draws = 1000   # score-function gradients drawn per backend and point
    seed = 0                # the estimators' and the gradients' draws
    [vqvae.training]        # ppl_suite.vqvae.training.VQTrainingSettings fields (its defaults otherwise)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from models.vqvae_digits import network
from ppl_suite import sizes
from ppl_suite.vae.settings import CheckedSettings, integer_problem, study_from_table, training_problems
from ppl_suite.vqvae.evaluation import IMAGE_CHUNK
from ppl_suite.vqvae.training import BACKENDS, OBJECTIVES, VQTrainingSettings

TEST_IMAGES = 500


@dataclass(frozen=True)
class VQVAEStudySettings(CheckedSettings):
    """Everything the study runs (module docstring); ``training`` holds VQTrainingSettings overrides."""

    backends: tuple[str, ...] = BACKENDS
    objectives: tuple[str, ...] = OBJECTIVES
    n_test: int = TEST_IMAGES
    draws: int = 2000
    iwae_ks: tuple[int, ...] = (1, 10, 100)
    gradient_draws: int = 1000
    seed: int = 0
    training: dict[str, Any] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """One message per problem (empty when the settings are valid)."""
        found = []
        for name, valid in (("backends", BACKENDS), ("objectives", OBJECTIVES)):
            chosen = getattr(self, name)
            unknown = [v for v in chosen if v not in valid]
            if not chosen or unknown:
                found.append(
                    f"vqvae: {name} must name at least one of {', '.join(valid)}"
                    + (f"; unknown: {', '.join(map(repr, unknown))}" if unknown else "")
                )
        counts = {
            "n_test": (self.n_test, 1, TEST_IMAGES),
            "draws": (self.draws, 2, None),
            "gradient_draws": (self.gradient_draws, 2, None),
            "seed": (self.seed, 0, 2**32 - 1),
        }
        per_draw = self._numbers_per_draw()
        weights = per_draw.pop("weights", (0, ""))[0]
        if too_many := sizes.over_budget(
            "vqvae.training: the weights (of codes, code_dim, hidden)", weights, 1, "each"
        ):
            found.append(too_many)
            per_draw = {}  # every draw would copy them: said once
        for name, (value, low, high) in counts.items():
            if problem := integer_problem("vqvae", name, value, low, high):
                found.append(problem)
            elif name in per_draw and (
                too_many := sizes.over_budget(f"vqvae: {name}", value, *per_draw[name])
            ):
                found.append(too_many)
        ks = self.iwae_ks
        if not ks or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in ks):
            found.append(f"vqvae: iwae_ks must be positive integers, got {ks!r}")
        elif isinstance(self.draws, int) and 2 * max(ks) > self.draws:
            found.append(f"vqvae: IWAE at K = {max(ks)} needs draws >= 2K = {2 * max(ks)}, got {self.draws}")
        return found + training_problems(self.training_settings, "vqvae")

    def _numbers_per_draw(self) -> dict[str, tuple[int, str]]:
        """What the study keeps (``sizes``): the weights themselves; per estimator draw, its L x K
        code log-probabilities for each of a chunk of ``IMAGE_CHUNK`` images, twice (the draws and the
        label's); per gradient draw, a copy of every weight. {} while the training settings are invalid
        (their own messages say why)."""
        try:
            training = self.training_settings()
        except (TypeError, ValueError):
            return {}
        codes, positions = training.codes, training.positions
        shapes = network.shapes(codes, positions, training.code_dim, training.hidden)
        weights = sum(math.prod(shape) for shape in shapes.values())
        return {
            "weights": (weights, "each"),
            "draws": (2 * IMAGE_CHUNK * codes * positions, f"per draw (2 x {IMAGE_CHUNK} images x L x K)"),
            "gradient_draws": (weights, "per draw (one per weight)"),
        }

    def training_settings(self) -> VQTrainingSettings:
        """``VQTrainingSettings`` with the ``training`` overrides."""
        return VQTrainingSettings(**self.training)


def from_table(table: dict[str, Any]) -> VQVAEStudySettings:
    """Settings from a ``[vqvae]`` table (TOML), checked; SettingsError lists every problem."""
    return study_from_table(VQVAEStudySettings, "vqvae", table)


def quick(settings: VQVAEStudySettings) -> VQVAEStudySettings:
    """A small version of ``settings`` for a first look in a few minutes (``--quick``)."""
    training = {"steps": 200, **{k: v for k, v in settings.training.items() if k != "steps"}}
    return dataclasses.replace(
        settings, n_test=100, draws=400, iwae_ks=(1, 10, 100), gradient_draws=200, training=training
    )
