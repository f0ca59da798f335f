"""A ``PosteriorReference`` from a stored NUTS reference (``ppl_suite.references.Reference``, or its
draws and summary alone: ``references.StoredPosterior``): its draws, its smallest bulk ESS, and its
AIS evidence with the SE only where AIS is reliable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ppl_suite.spec import Latents


@dataclass(frozen=True)
class ReferencePosterior:
    """Draws and evidence of a reference, as the estimators read them (``PosteriorReference``)."""

    draws: Latents
    ess: float
    log_evidence: float
    log_evidence_se: float | None
    evidence_diagnostic: str

    @classmethod
    def of(cls, reference: Any) -> ReferencePosterior:
        """From a ``ppl_suite.references.Reference`` or ``StoredPosterior``."""
        evidence = reference.evidence
        se = reference.log_evidence_se
        diagnostic = "" if se is not None else f"AIS {evidence['reliability']}: {evidence['diagnostic']}"
        return cls(
            draws=dict(reference.draws),
            ess=float(min(reference.gates.ess_bulk_min, reference.gates.ess_tail_min)),
            log_evidence=float(reference.log_evidence),
            log_evidence_se=None if se is None else float(se),
            evidence_diagnostic=diagnostic,
        )

    @staticmethod
    def describe(reference: Any) -> str:
        """One line: the reference's sampler diagnostics and evidence."""
        gates, evidence = reference.gates, reference.evidence
        se = reference.log_evidence_se
        error = f"± {se:.3f}" if se is not None else f"({evidence['reliability']}: {evidence['diagnostic']})"
        mapped = reference.summary.get("mapped_from")
        source = ""
        if mapped:
            direct = mapped.get("direct") or {}
            rhat, ess = direct.get("r_hat_max", float("nan")), direct.get("ess_bulk_min", float("nan"))
            source = (
                f", sampled as {mapped['model']} and mapped (NUTS on this parametrization itself: "
                f"{direct.get('divergences')} divergences, R-hat {rhat:.3f}, bulk ESS {ess:.0f})"
            )
        return (
            f"NUTS {reference.summary['chains']} x {reference.summary['draws_per_chain']} draws{source}: "
            f"R-hat <= {gates.rhat_max:.3f}, bulk ESS >= {gates.ess_bulk_min:.0f}, tail ESS >= "
            f"{gates.ess_tail_min:.0f}, {gates.divergences} divergences; AIS log p(x) "
            f"{reference.log_evidence:.3f} {error}, chain ESS {evidence.get('chain_ess') or float('nan'):.0f}"
        )
