"""NumPyro NUTS on a model, chains vectorized, run on until the gates pass.

NUTS runs on the model's NumPyro implementation when it has one, else on its Pyro implementation's
unconstrained log density (``targets.pyro_target``: torch through ``jax.pure_callback``) given to
NumPyro's NUTS as ``potential_fn``, the chains started uniformly in (-2, 2) on the unconstrained space
(NumPyro's default ``init_to_uniform``) and their draws mapped back to the sites by T(u):
``Sampled`` holds what differs, everything else (warmup, gates, running on, statistics) is shared.

The chains (``chain_method="vectorized"``: one program advances all of them) warm up once (step size
and diagonal mass matrix adapted; Hoffman and Gelman 2014, "The No-U-Turn sampler", JMLR 15), keep
``draws`` draws each, and while R-hat or ESS fails (and no transition diverged: more draws do not
remove a divergence) run on from their last state until the draws per chain have doubled (in chunks
of ``draws``, one compiled program), up to ``max_draws``: the draws kept are one continuous run of
each chain. While NUTS runs, a helper thread tells that it still runs (``progress.heartbeat``).

Sites given as ``non_centered`` are sampled in their non-centered form (NumPyro's
``LocScaleReparam``, Pyro's for a Pyro-only model: ``ppl_suite.references.remedies``); their draws
are kept as deterministic sites under their own names, the auxiliary ``<site>_decentered`` sites are
dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

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
# NUTS' statistics per transition, named as ``arviz.from_numpyro`` names them
EXTRA_FIELDS = {
    "diverging": "diverging",
    "energy": "energy",
    "num_steps": "n_steps",
    "adapt_state.step_size": "step_size",
    "accept_prob": "acceptance_rate",
    "potential_energy": "lp",  # stored negated: the log density
}
# tell(phase, draws per chain kept, seconds the next phase should take or None, gates or None)
Tell = Callable[[str, int, float | None, GateResult | None], None]


@dataclass(frozen=True)
class NUTSRun:
    """The kept draws of the problem's latent sites, of its deterministic sites (empty when the draws
    are mapped from another model) and NUTS' statistics per transition (``EXTRA_FIELDS``' names, plus
    ``tree_depth``), each (chains, draws, ...); their coordinate table and gates; the wall time and
    this process's CPU time (``time.process_time``: what the remedies' budget counts); ``density``:
    how torch evaluated a Pyro-only model's density ("" for a NumPyro model)."""

    draws: ChainDraws
    deterministic: ChainDraws
    stats: dict[str, np.ndarray]
    coordinates: dict[str, dict[str, float]]
    gates: GateResult
    seconds: float
    cpu_seconds: float
    density: str = ""

    @property
    def draws_per_chain(self) -> int:
        return int(self.stats["diverging"].shape[1])

    @property
    def idata(self) -> az.InferenceData:
        """The latent draws and the statistics as InferenceData (no dims, no observed data: the
        reference's own is ``references.inference_data.reference_data``)."""
        return az.from_dict(posterior=self.draws, sample_stats=self.stats)


def _by_chain(flat: Latents, chains: int) -> ChainDraws:
    return {k: v.reshape(chains, -1, *v.shape[1:]) for k, v in flat.items()}


def _flat(draws: ChainDraws) -> Latents:
    return {k: v.reshape(-1, *v.shape[2:]) for k, v in draws.items()}


def _silent(phase: str, kept: int, eta: float | None, gates: GateResult | None) -> None:
    """The default ``tell``: nothing."""


@dataclass(frozen=True)
class Sampled:
    """What NUTS runs on: ``kernel``, NUTS' target (``{"model": ...}`` or ``{"potential_fn": ...}``);
    ``arguments``, the model's; ``start(key, chains)``, the chains' initial points (None: NumPyro's
    own for a model); ``sites(samples)``, the draws MCMC returns (grouped by chain) as draws per site,
    the problem's latent sites and any deterministic ones; ``density()``, how torch evaluated a
    Pyro-only model's density so far (``PyroTarget.density_path``), "" for a NumPyro model."""

    kernel: dict[str, Any]
    arguments: tuple
    start: Callable[[jax.Array, int], Any] | None
    sites: Callable[[Any], ChainDraws]
    density: Callable[[], str] = str


def sampled_model(problem: Problem, non_centered: tuple[str, ...] = ()):
    """The NumPyro model NUTS runs: the problem's, with ``non_centered`` sites reparametrized."""
    model = registry.implementation(problem.spec.name, "numpyro")
    if model is None:
        raise ValueError(f"model {problem.spec.name!r} has no NumPyro implementation to run NUTS on")
    if not non_centered:
        return model
    from numpyro import handlers
    from numpyro.infer.reparam import LocScaleReparam

    return handlers.reparam(model, config={name: LocScaleReparam(centered=0) for name in non_centered})


def sampled(problem: Problem, non_centered: tuple[str, ...] = ()) -> Sampled:
    """The NumPyro model of ``problem`` (``non_centered`` sites reparametrized) when it has one, else
    its Pyro model's unconstrained potential -log p(x, u) (module docstring)."""
    if registry.implementation(problem.spec.name, "numpyro") is not None:
        auxiliary = {f"{name}_decentered" for name in non_centered}

        def sites(samples: dict) -> ChainDraws:
            return {name: np.asarray(value) for name, value in samples.items() if name not in auxiliary}

        model = sampled_model(problem, non_centered)
        return Sampled({"model": model}, (dict(problem.data), dict(problem.params)), None, sites)
    if registry.implementation(problem.spec.name, "pyro") is None:
        raise ValueError(f"model {problem.spec.name!r} has no NumPyro or Pyro implementation to run NUTS on")
    from ppl_suite.targets.pyro_target import PyroTarget

    target = PyroTarget(problem, non_centered=non_centered)  # Pyro's LocScaleReparam on those sites

    def start(key: jax.Array, chains: int) -> jax.Array:
        return jax.random.uniform(key, (chains, target.dim), minval=-2.0, maxval=2.0)

    def pyro_sites(samples: jax.Array) -> ChainDraws:
        u = np.asarray(samples)
        return _by_chain(target.original_sites(target.constrain(u.reshape(-1, u.shape[-1]))), u.shape[0])

    potential = {"potential_fn": lambda u: -target.log_joint_u(u)}
    return Sampled(potential, (), start, pyro_sites, lambda: target.density_path)


def run(
    problem: Problem,
    settings: NUTSSettings,
    mapping: LatentMap | None = None,
    *,
    extend: bool = True,
    non_centered: tuple[str, ...] = (),
    tell: Tell = _silent,
    expected: float | None = None,
) -> NUTSRun:
    """NUTS on ``problem``'s model (``sampled``: ``non_centered`` sites reparametrized); gates on its latent
    draws (after ``mapping``, which takes flattened draws of ``problem``'s sites to those of another
    parametrization, when given). With ``extend`` the chains run on, doubling their draws, while
    R-hat or ESS fails (module docstring). ``tell`` hears each phase (``ppl_suite.references.progress``
    names them), and every ``progress.HEARTBEAT_SECONDS`` while NUTS runs; ``expected``: the seconds
    the first run should take, when known (told with its start)."""
    from ppl_suite.references import progress

    enable_float64()
    target = sampled(problem, non_centered)
    sites = [site.name for site in problem.sites]
    start, cpu_start = time.perf_counter(), time.process_time()
    mcmc = _mcmc(target, settings)
    key = jax.random.PRNGKey(settings.seed)
    begin = None if target.start is None else target.start(jax.random.fold_in(key, 1), settings.chains)
    tell(progress.STARTED, settings.draws, expected, None)
    with progress.heartbeat(partial(tell, progress.RUNNING, settings.draws, expected, None)):
        mcmc.run(key, *target.arguments, init_params=begin, extra_fields=tuple(EXTRA_FIELDS))
    per_step = (time.perf_counter() - start) / (settings.warmup + settings.draws)  # compilation included
    parts = [_kept(mcmc, target)]
    while True:
        samples = {name: np.concatenate([p[0][name] for p in parts], axis=1) for name in parts[0][0]}
        stats = {name: np.concatenate([p[1][name] for p in parts], axis=1) for name in parts[0][1]}
        draws = {name: samples[name] for name in sites}
        deterministic = {name: v for name, v in samples.items() if name not in sites}
        if mapping is not None:
            draws, deterministic = _by_chain(mapping(_flat(draws)), settings.chains), {}
        coordinates = coordinate_table(az.from_dict(posterior=draws))
        gates = GateResult.of(coordinates, int(stats["diverging"].sum()), settings)
        kept = stats["diverging"].shape[1]
        more = extend and not gates.divergences and kept < settings.max_draws
        chunks = kept // settings.draws if more else 0
        tell(progress.DRAWN, kept, per_step * chunks * settings.draws if chunks else None, gates)
        if gates.passed or not more:
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
            return NUTSRun(
                draws, deterministic, stats, coordinates, gates, seconds, cpu_seconds, target.density()
            )
        for _ in range(chunks):  # chunks of one shape: one compiled program
            chunk = time.perf_counter()
            with progress.heartbeat(partial(tell, progress.RUNNING, kept, per_step * settings.draws, None)):
                _run_on(mcmc, min(settings.draws, settings.max_draws - kept), target)
            parts.append(_kept(mcmc, target))
            per_step = (time.perf_counter() - chunk) / parts[-1][1]["diverging"].shape[1]
            kept += parts[-1][1]["diverging"].shape[1]
            if kept >= settings.max_draws:
                break


def _mcmc(target: Sampled, settings: NUTSSettings) -> MCMC:
    """NumPyro's MCMC of ``settings``' NUTS on ``target``, its chains vectorized in one program."""
    kernel = NUTS(
        **target.kernel, target_accept_prob=settings.target_accept, max_tree_depth=settings.max_tree_depth
    )
    return MCMC(
        kernel,
        num_warmup=settings.warmup,
        num_samples=settings.draws,
        num_chains=settings.chains,
        chain_method="vectorized",
        progress_bar=False,
    )


def _run_on(mcmc: MCMC, draws: int, target: Sampled) -> None:
    """``draws`` more draws per chain from where the chains stopped, no warmup."""
    mcmc.post_warmup_state = mcmc.last_state
    mcmc.num_samples = draws
    mcmc.run(mcmc.post_warmup_state.rng_key, *target.arguments, extra_fields=tuple(EXTRA_FIELDS))


def _kept(mcmc: MCMC, target: Sampled) -> tuple[ChainDraws, dict[str, np.ndarray]]:
    """The last run's draws per site (``Sampled.sites``: the non-centered forms' auxiliaries
    dropped) and NUTS' statistics (``EXTRA_FIELDS``), grouped by chain."""
    draws = target.sites(mcmc.get_samples(group_by_chain=True))
    extra = mcmc.get_extra_fields(group_by_chain=True)
    stats = {EXTRA_FIELDS[field]: np.asarray(extra[field]) for field in EXTRA_FIELDS}
    stats["lp"] = -stats["lp"]
    stats["tree_depth"] = np.floor(np.log2(stats["n_steps"])).astype(np.int64) + 1
    return draws, stats
