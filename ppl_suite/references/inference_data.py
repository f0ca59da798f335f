"""Draws as ArviZ InferenceData the way ArviZ users expect them (``arviz.from_numpyro``'s layout):

- ``posterior``: the latent sites and the model's deterministic sites, in several chains, their
  dimensions named after the model's plates (``school``, not ``theta_dim_0``; ArviZ's ``infer_dims``
  on the NumPyro model's trace);
- ``observed_data``: the observed sites' values; ``log_likelihood``: log p(x_i | z) of each observed
  site per draw (NumPyro's ``log_likelihood``), so that ``az.loo`` and ``az.compare`` run;
- for a NUTS reference, ``sample_stats``: ``diverging``, ``energy``, ``n_steps``, ``tree_depth``,
  ``step_size``, ``acceptance_rate``, ``lp``, so that ``az.bfmi`` and ``az.plot_energy`` run;
- the posterior group's attributes: the numbers that go with the draws, each its own attribute
  (``elbo``, ``elbo_se``, ``kl``, ``kl_se``, ``log_evidence``, ``log_evidence_se``, ``k_hat``, ...;
  NaN where not known).

Two builders: ``draws_data`` for independent draws (a fitted guide q's, or exact posterior draws),
split into ``chains`` chains so that R-hat is defined; ``reference_data`` for a NUTS run. A model with
no NumPyro implementation gets the same groups from its Pyro model (``pyro_log_likelihood``); one with
neither gets the posterior alone, dimensions unnamed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ppl_suite import registry
from ppl_suite.problem import Problem
from ppl_suite.spec import Latents

if TYPE_CHECKING:
    import arviz as az

    from ppl_suite.references.nuts import NUTSRun

CHAINS = 4  # independent draws are split into this many chains
MAX_LOG_LIKELIHOOD = 20_000_000  # numbers of log_likelihood kept at most (draws x observations)


def _numpyro_model(problem: Problem) -> Callable[..., Any] | None:
    return registry.implementation(problem.spec.name, "numpyro")


def _observed(model: Callable[..., Any], data: dict, params: dict) -> tuple[dict[str, np.ndarray], list[str]]:
    """The observed sites' values and the deterministic sites' names, from one trace of ``model``."""
    from numpyro import handlers

    trace = handlers.trace(handlers.seed(model, 0)).get_trace(data, params)
    observed = {
        n: np.asarray(s["value"]) for n, s in trace.items() if s["type"] == "sample" and s["is_observed"]
    }
    return observed, [n for n, s in trace.items() if s["type"] == "deterministic"]


def _groups(
    problem: Problem, flat: Latents, deterministic: Latents | None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray], dict[str, list[str]]]:
    """(deterministic sites, observed data, log-likelihood per draw, dims by site) of flat latent
    draws (n, *shape); ``deterministic`` given (a NUTS run's) or computed (NumPyro's Predictive)."""
    model = _numpyro_model(problem)
    if model is None and registry.implementation(problem.spec.name, "pyro") is not None:
        from ppl_suite.references.pyro_log_likelihood import pyro_groups

        return pyro_groups(problem, flat, deterministic, MAX_LOG_LIKELIHOOD)
    if model is None:
        return deterministic or {}, {}, {}, {}
    import jax
    from arviz.data.io_numpyro import infer_dims
    from numpyro.infer import Predictive, log_likelihood

    from ppl_suite.numerics import enable_float64

    enable_float64()
    data, params = dict(problem.data), dict(problem.params)
    observed, names = _observed(model, data, params)
    latents = {name: jax.numpy.asarray(value) for name, value in flat.items()}
    if deterministic is None:
        deterministic = {}
        if names:
            predicted = Predictive(model, posterior_samples=latents, return_sites=names, batch_ndims=1)
            deterministic = {
                k: np.asarray(v) for k, v in predicted(jax.random.PRNGKey(0), data, params).items()
            }
    n = len(next(iter(flat.values())))
    size = n * sum(max(value.size, 1) for value in observed.values())
    likelihood = {}
    if observed and size <= MAX_LOG_LIKELIHOOD:
        likelihood = {k: np.asarray(v) for k, v in log_likelihood(model, latents, data, params).items()}
    dims = {name: list(d) for name, d in infer_dims(model, (data, params), {}).items()}
    return deterministic, observed, likelihood, dims


def _attrs(values: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes NetCDF can hold: numbers (None as NaN) and strings."""
    out = {}
    for name, value in values.items():
        if value is None:
            out[name] = math.nan
        elif isinstance(value, (bool, np.bool_)):
            out[name] = int(value)
        elif isinstance(value, (int, float, np.integer, np.floating)):
            out[name] = value.item() if isinstance(value, np.generic) else value
        else:
            out[name] = str(value)
    return out


def _by_chain(flat: Mapping[str, np.ndarray], chains: int) -> dict[str, np.ndarray]:
    return {k: np.asarray(v).reshape(chains, -1, *np.shape(v)[1:]) for k, v in flat.items()}


def _inference_data(
    posterior: dict[str, np.ndarray],
    chains: int,
    groups: tuple[dict, dict, dict, dict[str, list[str]]],
    attrs: Mapping[str, Any],
    sample_stats: dict[str, np.ndarray] | None = None,
) -> az.InferenceData:
    import arviz as az

    deterministic, observed, likelihood, dims = groups
    idata = az.from_dict(
        posterior={**posterior, **_by_chain(deterministic, chains)},
        sample_stats=sample_stats,
        log_likelihood=_by_chain(likelihood, chains) or None,
        observed_data=observed or None,
        dims={name: d for name, d in dims.items() if d},
    )
    idata.posterior.attrs.update(_attrs(attrs))
    return idata


def draws_data(
    problem: Problem, latents: Latents, attrs: Mapping[str, Any] = {}, chains: int = CHAINS
) -> az.InferenceData:
    """Independent draws of ``problem``'s latent sites (each (n, *shape): q's or exact posterior draws)
    as InferenceData (module docstring), split into ``chains`` chains of n // chains draws (n a
    multiple of ``chains``), with ``attrs`` on the posterior group."""
    n = len(next(iter(latents.values())))
    if n % chains:
        raise ValueError(f"{n} draws do not split into {chains} chains")
    flat = {site.name: np.asarray(latents[site.name]) for site in problem.sites}
    groups = _groups(problem, flat, None)
    return _inference_data(_by_chain(flat, chains), chains, groups, attrs)


def reference_data(problem: Problem, run: NUTSRun, attrs: Mapping[str, Any]) -> az.InferenceData:
    """A NUTS run's draws (its chains), deterministic sites and sampler statistics as InferenceData
    (module docstring), with ``attrs`` on the posterior group."""
    chains = next(iter(run.draws.values())).shape[0]
    flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in run.draws.items()}
    deterministic = {k: v.reshape(-1, *v.shape[2:]) for k, v in run.deterministic.items()}
    groups = _groups(problem, flat, deterministic or None)
    return _inference_data(dict(run.draws), chains, groups, attrs, dict(run.stats))
