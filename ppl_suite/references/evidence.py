"""The evidence reference log p(x): the suite's AIS with its SE and chain ESS, and BDMC's sandwich on
simulated data.

BDMC (``ppl_suite.estimators.bdmc``, Grosse, Ghahramani and Adams 2015, arXiv:1511.02543) runs its
reverse AIS pass from posterior draws. A model with an oracle gives exact ones. A model without one
whose data are simulated (not ``fixed_data``) gets reverse chains started at draws of its NUTS
reference (``ReferenceDraws``), labelled ``"reverse_from": "reference draws"``: those are approximate
posterior draws, so the upper bound holds only as far as they are (they passed the reference's gates).
The latents that simulated the data are one exact draw, but BDMC's SE needs many reverse chains.

An estimate labelled unreliable (chain ESS too low: ``ppl_suite.estimators.ais``) is kept with its
label and diagnostic, and no SE: its delta-method SE is not a valid standard error.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ppl_suite import estimators, schema
from ppl_suite.estimate import Estimate
from ppl_suite.estimators.bdmc import bdmc_bounds
from ppl_suite.problem import Problem
from ppl_suite.spec import Latents

EXACT = "exact posterior draws"
REFERENCE = "reference draws"  # approximate: draws of the NUTS reference, not exact posterior draws


class ReferenceDraws:
    """NUTS reference draws standing in for exact posterior draws where BDMC asks for them: ``sample``
    picks n of them at random (without replacement while there are enough)."""

    def __init__(self, draws: Latents) -> None:
        self.draws = draws
        self.count = len(next(iter(draws.values())))

    def sample(self, rng: np.random.Generator, n: int) -> Latents:
        index = rng.choice(self.count, size=n, replace=n > self.count)
        return {name: values[index] for name, values in self.draws.items()}


def _record(estimate: Estimate) -> dict[str, Any]:
    """An Estimate as plain JSON data; ``se`` is None unless the estimate is reliable."""
    extras = json.loads(json.dumps(estimate.extras, default=schema.plain))
    return {
        "value": float(estimate.value),
        "se": float(estimate.se) if estimate.reliability == "reliable" else None,
        "reliability": estimate.reliability,
        "diagnostic": estimate.diagnostic,
        "chain_ess": extras.get("chain_ess"),
        "chains": extras.get("chains"),
        "temperatures": extras.get("temperatures"),
        "seconds": float(estimate.seconds),
        "n_evals": int(estimate.n_evals),
        "extras": extras,
    }


def log_evidence(problem: Problem, seed: int, draws: Latents | None = None) -> dict[str, Any]:
    """{"model", "ais": record, "bdmc": record or None, "bdmc_skipped": reason or None}, each record
    {value, se (None unless reliable), reliability, diagnostic, chain_ess, chains, temperatures,
    seconds, n_evals, extras}; BDMC's value is its upper bound, ``extras["lower"]`` its lower, and its
    ``"reverse_from"`` says where its reverse chains started (module docstring). ``draws``: NUTS
    reference draws of ``problem``'s sites (n, *shape), for BDMC on simulated data without an oracle."""
    from ppl_suite.targets.build import target_for

    target = target_for(problem)
    ais = estimators.get("ais")
    reason = ais.applies(target, None)
    if reason is not None:
        raise ValueError(f"no AIS evidence for {problem.spec.name!r}: {reason}")
    bdmc, bdmc_record, skipped = estimators.get("bdmc"), None, None
    if target.exact is not None:
        skipped = bdmc.applies(target, None)
        if skipped is None:
            bdmc_record = {**_record(bdmc.estimate(target, None, seed)), "reverse_from": EXACT}
    elif problem.spec.fixed_data:
        skipped = "no oracle, and the data are not simulated from the model"
    elif draws is None:
        skipped = "no oracle, and no reference draws to start the reverse chains from"
    else:
        skipped = target.continuous_reason()
        if skipped is None:
            estimate = bdmc_bounds(target, ReferenceDraws(draws), bdmc, seed)
            bdmc_record = {**_record(estimate), "reverse_from": REFERENCE}
    return {
        "model": problem.spec.name,
        "ais": _record(ais.estimate(target, None, seed)),
        "bdmc": bdmc_record,
        "bdmc_skipped": skipped,
    }
