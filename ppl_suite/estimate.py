"""One shape for every number the suite reports, exact or Monte Carlo."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A value with its standard error (0 when exact), what it cost, and estimator-specific extras."""

    value: float
    se: float = 0.0
    n_evals: int = 0
    seconds: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)

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
