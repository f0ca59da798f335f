"""What ``diagnose`` finds about one fit: plain data, named as the columns of ``check``'s table.

elbo ± elbo_se                   the Monte Carlo ELBO of q
log_evidence ± log_evidence_se   log p(x): AIS against the NUTS reference (NumPyro), or importance
                                 sampling with q as proposal (Pyro); SE NaN when unreliable
kl ± kl_se                       KL(q || p(z | x)) = log p(x) - ELBO, SE = sqrt(SE_ELBO^2 + SE_logp^2)
k_hat, k_hat_verdict             PSIS k-hat of q as a proposal, and the suite's verdict on it
mean_error ± mean_error_se       the largest (E_q z_j - E_ref z_j) / sd_ref z_j (at mean_error_at)
sd_error ± sd_error_se           the largest sd_q z_j / sd_ref z_j - 1 (at sd_error_at)
q, reference                     InferenceData of q's draws (several chains of independent draws)
                                 and of the NUTS reference (None without one)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import arviz as az


@dataclass(frozen=True)
class Diagnosis:
    """The diagnosis of one fit (module docstring); ``report(path)`` writes it as Markdown and HTML."""

    model: str
    library: str
    guide: str
    draws: int
    elbo: float
    elbo_se: float
    log_evidence: float
    log_evidence_se: float
    log_evidence_method: str
    kl: float
    kl_se: float
    kl_reliability: str
    k_hat: float
    k_hat_verdict: str
    k_hat_limit: float
    k_hat_interpretation: str
    mean_error: float = math.nan
    mean_error_se: float = math.nan
    mean_error_at: str = ""
    sd_error: float = math.nan
    sd_error_se: float = math.nan
    sd_error_at: str = ""
    coordinates: dict[str, dict[str, float]] = field(default_factory=dict)
    diagnostics: tuple[str, ...] = ()
    reference_description: str = ""
    reference_file: str = ""
    seconds: float = 0.0
    q: az.InferenceData | None = field(default=None, repr=False, compare=False)
    reference: az.InferenceData | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """Every field but the InferenceData, as plain Python values."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("q", "reference")}

    def __str__(self) -> str:
        from ppl_suite.diagnosing.report import summary_lines

        return "\n".join(summary_lines(self))

    def report(self, path: str | Path, formats: tuple[str, ...] = ("md", "html")) -> dict[str, Path]:
        """Write ``diagnosis.md`` / ``diagnosis.html`` (and q's and the reference's draws as NetCDF) into
        the folder ``path``; returns the files by kind."""
        from ppl_suite.diagnosing.report import write_report

        return write_report(self, Path(path), formats)
