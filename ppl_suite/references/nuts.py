"""NumPyro NUTS on a model's NumPyro implementation, chains vectorized, run on until the gates pass.

The chains (``chain_method="vectorized"``: one program advances all of them) warm up once (step size
and diagonal mass matrix adapted; Hoffman and Gelman 2014, "The No-U-Turn sampler", JMLR 15), keep
``draws`` draws each, and while a gate fails run on from their last state until the draws per chain
have doubled (in chunks of ``draws``, one compiled program), up to ``max_draws``: the draws kept
are one continuous run of each chain.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import arviz as az
import jax
import numpy as np
from numpyro.infer import MCMC, NUTS

from ppl_suite import registry
from ppl_suite.numerics import enable_float64
from ppl_suite.problem import Problem
from ppl_suite.references.gates import GateResult
from ppl_suite.references.settings import NUTSSettings
from ppl_suite.references.summary import coordinate_table
from ppl_suite.spec import Latents

# Draws of each site grouped by chain: (chains, draws, *shape).
ChainDraws = dict[str, np.ndarray]
LatentMap = Callable[[Latents], Latents]  # flattened draws of one model -> another's


@dataclass(frozen=True)
class NUTSRun:
    """The kept draws as InferenceData (posterior, sample_stats.diverging), their coordinate table
    and gates, and the wall time of sampling."""

    idata: az.InferenceData
    coordinates: dict[str, dict[str, float]]
    gates: GateResult
    seconds: float

    @property
    def draws_per_chain(self) -> int:
        return int(self.idata.posterior.sizes["draw"])


def _by_chain(flat: Latents, chains: int) -> ChainDraws:
    return {k: v.reshape(chains, -1, *v.shape[1:]) for k, v in flat.items()}


def _flat(draws: ChainDraws) -> Latents:
    return {k: v.reshape(-1, *v.shape[2:]) for k, v in draws.items()}


def run(
    problem: Problem,
    settings: NUTSSettings,
    mapping: LatentMap | None = None,
    *,
    extend: bool = True,
) -> NUTSRun:
    """NUTS on ``problem``'s NumPyro model; gates on its latent draws (after ``mapping``, which takes
    flattened draws of ``problem``'s sites to those of another parametrization, when given). With
    ``extend`` the chains run on, doubling their draws, while a gate fails (module docstring)."""
    enable_float64()
    model = registry.implementation(problem.spec.name, "numpyro")
    if model is None:
        raise ValueError(f"model {problem.spec.name!r} has no NumPyro implementation to run NUTS on")
    sites = [site.name for site in problem.sites]
    start = time.perf_counter()
    kernel = NUTS(model, target_accept_prob=settings.target_accept, max_tree_depth=settings.max_tree_depth)
    mcmc = MCMC(
        kernel,
        num_warmup=settings.warmup,
        num_samples=settings.draws,
        num_chains=settings.chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    data, params = dict(problem.data), dict(problem.params)
    mcmc.run(jax.random.PRNGKey(settings.seed), data, params, extra_fields=("diverging",))
    parts = [_kept(mcmc, sites)]
    while True:
        draws = {name: np.concatenate([p[0][name] for p in parts], axis=1) for name in sites}
        diverging = np.concatenate([p[1] for p in parts], axis=1)
        if mapping is not None:
            draws = _by_chain(mapping(_flat(draws)), settings.chains)
        idata = az.from_dict(posterior=draws, sample_stats={"diverging": diverging})
        coordinates = coordinate_table(idata)
        gates = GateResult.of(coordinates, int(diverging.sum()), settings)
        kept = diverging.shape[1]
        if gates.passed or not extend or kept >= settings.max_draws:
            return NUTSRun(idata, coordinates, gates, time.perf_counter() - start)
        for _ in range(kept // settings.draws):  # chunks of one shape: one compiled program
            _run_on(mcmc, min(settings.draws, settings.max_draws - kept), data, params)
            parts.append(_kept(mcmc, sites))
            kept += parts[-1][1].shape[1]
            if kept >= settings.max_draws:
                break


def _run_on(mcmc: MCMC, draws: int, data: dict, params: dict) -> None:
    """``draws`` more draws per chain from where the chains stopped, no warmup."""
    mcmc.post_warmup_state = mcmc.last_state
    mcmc.num_samples = draws
    mcmc.run(mcmc.post_warmup_state.rng_key, data, params, extra_fields=("diverging",))


def _kept(mcmc: MCMC, sites: list[str]) -> tuple[ChainDraws, np.ndarray]:
    """The last run's draws of ``sites`` and its divergence flags, grouped by chain."""
    samples = mcmc.get_samples(group_by_chain=True)
    diverging = mcmc.get_extra_fields(group_by_chain=True)["diverging"]
    return {name: np.asarray(samples[name]) for name in sites}, np.asarray(diverging)
