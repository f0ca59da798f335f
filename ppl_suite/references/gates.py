"""posteriordb's gates on a NUTS reference: R-hat, bulk and tail ESS of every coordinate, divergences.

    R-hat: rank-normalized split R-hat < rhat_max         (Vehtari et al. 2021, Bayesian Analysis 16)
    ESS:   bulk ESS >= ess_min and tail ESS >= ess_min    (same paper: bulk of the rank-normalized
           draws, tail the smaller ESS of the 5 % and 95 % quantile indicators)
    no divergent transition                               (Betancourt 2017, arXiv:1701.02434, 6.2)

The numbers come from the coordinate table of ``ppl_suite.references.summary`` (ArviZ).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ppl_suite.errors import CheckFailed
from ppl_suite.references.settings import NUTSSettings


class ReferenceGateError(CheckFailed):
    """A reference failed a gate; the message names every failed gate, its value and its threshold.
    Nothing was stored. A ``CheckFailed``: the one type ``check`` and ``diagnose`` raise for it."""


@dataclass(frozen=True)
class GateResult:
    """The worst value of each gate, the coordinate it belongs to, and the thresholds."""

    rhat_max: float
    rhat_worst: str
    ess_bulk_min: float
    ess_bulk_worst: str
    ess_tail_min: float
    ess_tail_worst: str
    divergences: int
    rhat_threshold: float
    ess_threshold: float

    @classmethod
    def of(
        cls, coordinates: Mapping[str, Mapping[str, float]], divergences: int, settings: NUTSSettings
    ) -> GateResult:
        """The gates of a coordinate table ({name: {"r_hat", "ess_bulk", "ess_tail", ...}})."""

        def worst(stat: str, pick) -> tuple[float, str]:
            """The coordinate with a NaN value of ``stat`` (worst of all: it fails), else ``pick``'s."""
            undefined = [c for c in coordinates if math.isnan(coordinates[c][stat])]
            name = undefined[0] if undefined else pick(coordinates, key=lambda c: coordinates[c][stat])
            return float(coordinates[name][stat]), name

        rhat, rhat_name = worst("r_hat", max)
        bulk, bulk_name = worst("ess_bulk", min)
        tail, tail_name = worst("ess_tail", min)
        return cls(
            rhat, rhat_name, bulk, bulk_name, tail, tail_name, int(divergences),
            settings.rhat_max, settings.ess_min,
        )  # fmt: skip

    def failures(self) -> list[str]:
        """One sentence per failed gate (empty when every gate passes). A NaN value fails."""
        failed = []
        if not self.rhat_max < self.rhat_threshold:
            failed.append(f"R-hat {self.rhat_max:.4f} of {self.rhat_worst} >= {self.rhat_threshold:g}")
        if not self.ess_bulk_min >= self.ess_threshold:
            failed.append(
                f"bulk ESS {self.ess_bulk_min:.0f} of {self.ess_bulk_worst} < {self.ess_threshold:g}"
            )
        if not self.ess_tail_min >= self.ess_threshold:
            failed.append(
                f"tail ESS {self.ess_tail_min:.0f} of {self.ess_tail_worst} < {self.ess_threshold:g}"
            )
        if self.divergences:
            failed.append(f"{self.divergences} divergent transitions > 0")
        return failed

    @property
    def passed(self) -> bool:
        return not self.failures()

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "failures": self.failures()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GateResult:
        return cls(**{k: v for k, v in values.items() if k not in ("passed", "failures")})
