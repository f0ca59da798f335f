"""The settings of a NUTS reference: sampler, draws and the gates a reference must pass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ppl_suite.spec import ModelSpec


@dataclass(frozen=True)
class NUTSSettings:
    """NumPyro NUTS, ``chains`` chains run together (vectorized), and posteriordb's gates.

    The first attempt keeps ``draws`` draws per chain after ``warmup``; while a gate fails the chains
    run on until the draws per chain double, up to ``max_draws``. Gates: rank-normalized split R-hat
    below ``rhat_max`` and bulk and tail ESS at least ``ess_min`` for every latent coordinate, and no
    divergent transition (Vehtari, Gelman, Simpson, Carpenter and Buerkner 2021, "Rank-normalization,
    folding, and localization: an improved R-hat", Bayesian Analysis 16; posteriordb's reference
    posterior rules).

    When a gate still fails and ``remedies`` is on, ``ppl_suite.references.remedies`` tries again
    (the non-centered form of centered sites, a higher ``target_accept`` with a longer warmup, more
    draws) while the next attempt is expected to end within ``budget_seconds`` of the start, counted
    as the smaller of wall and this process's CPU seconds (a machine busy with other work then does
    not decide which attempts run). Neither
    of these two fields is part of a stored reference's key: a reference passes at the same attempt,
    with the same numbers, whatever budget let that attempt run.
    """

    chains: int = 4
    warmup: int = 1000
    draws: int = 1000
    max_draws: int = 8000
    target_accept: float = 0.9
    max_tree_depth: int = 10
    seed: int = 0
    rhat_max: float = 1.01
    ess_min: float = 1000.0
    remedies: bool = True
    budget_seconds: float = 300.0

    def __post_init__(self) -> None:
        problems = []
        if self.chains < 2:
            problems.append(f"chains must be >= 2 (split R-hat compares chains), got {self.chains}")
        for name in ("warmup", "draws", "max_draws", "max_tree_depth"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_draws < self.draws:
            problems.append(f"max_draws ({self.max_draws}) must be >= draws ({self.draws})")
        if not self.budget_seconds > 0:
            problems.append(f"budget_seconds must be > 0, got {self.budget_seconds}")
        if not 0.0 < self.target_accept < 1.0:
            problems.append(f"target_accept must lie in (0, 1), got {self.target_accept}")
        if problems:
            raise ValueError("NUTSSettings: " + "; ".join(problems))


NOT_IN_KEY = ("remedies", "budget_seconds")  # how far to look for a passing attempt, not what it holds
DEFAULT = NUTSSettings()  # what ``reference_for`` and ``ppl-suite reference`` use when given none


def settings_for(spec: ModelSpec) -> NUTSSettings:
    """A model's reference settings: DEFAULT updated by its ``ModelSpec.reference_settings`` (a user's
    model checked with smaller NUTS settings gets them in every worker, not only where it was asked)."""
    return replace(DEFAULT, **dict(spec.reference_settings))


def key_fields(settings: NUTSSettings) -> dict[str, Any]:
    """The fields of ``settings`` that a stored reference's key covers (all but NOT_IN_KEY)."""
    return {name: value for name, value in asdict(settings).items() if name not in NOT_IN_KEY}
