"""One shape for every number the suite reports, exact or Monte Carlo."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

RELIABILITY = {
    "reliable": "the standard error is valid: (estimate - truth) / SE is about N(0, 1)",
    "unreliable": "a diagnostic says the SE cannot be trusted (``diagnostic`` names it): show no SE",
    "approximation": "deterministic approximation: its error is not a standard error",
}


@dataclass(frozen=True)
class Estimate:
    """A value with its standard error (0 when exact), what it cost, and estimator-specific extras.

    ``reliability`` is a key of RELIABILITY; when it is not "reliable", ``diagnostic`` says which
    diagnostic decided it and its value (e.g. "k-hat 0.81 > 0.70")."""

    value: float
    se: float = 0.0
    n_evals: int = 0
    seconds: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)
    reliability: str = "reliable"
    diagnostic: str = ""

    def __post_init__(self) -> None:
        if self.reliability not in RELIABILITY:
            raise ValueError(f"reliability {self.reliability!r}; valid: {', '.join(RELIABILITY)}")

    @property
    def exact(self) -> bool:
        return self.se == 0.0

    @classmethod
    def from_samples(cls, samples: np.ndarray, seconds: float = 0.0, **extras: Any) -> Estimate:
        """Mean of i.i.d. terms with SE = sd / sqrt(n)."""
        samples = np.asarray(samples, dtype=float)
        n = samples.size
        return cls(
            value=float(samples.mean()),
            se=float(samples.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf"),
            n_evals=n,
            seconds=seconds,
            extras=dict(extras),
        )
