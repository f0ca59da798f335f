"""What a NUTS reference tries when a gate fails, in order, each remedy once and kept for the attempts
after it:

- divergent transitions, where the model has centered sites: their non-centered form. A latent site
  drawn from a location-scale family on the real line (Normal, StudentT, Cauchy, Laplace, Logistic,
  Gumbel with ``loc`` and ``scale``, possibly under Independent / Expanded wrappers; never a
  transformed one such as LogNormal or HalfNormal, which ``LocScaleReparam`` cannot rewrite) whose
  location or scale depends on other latents (theta ~ Normal(mu, tau)) becomes theta = mu + tau eta,
  eta ~ Normal(0, 1) by NumPyro's ``LocScaleReparam`` (Pyro's for a model given only in Pyro,
  ``targets.pyro_target``; Gorinova, Moore and Hoffman 2020, "Automatic reparameterisation of
  probabilistic programs", ICML): the same joint distribution of the data, so the same p(x), and
  the draws of theta are kept as a deterministic site, so the gates and the stored draws are those
  of the model as written (Betancourt and Girolami 2015 on the funnel of centered hierarchical
  models);
- divergent transitions still: ``target_accept`` 0.99 (smaller steps) and twice the warmup (better
  adapted step size and mass matrix; Betancourt 2017, arXiv:1701.02434, 6.2);
- R-hat or ESS short: twice the warmup and twice ``max_draws`` (the chains run on longer);
- R-hat or ESS short where the centered sites are still centered: their non-centered form.

Each attempt starts again from the warmup (same seed); more draws within an attempt are
``ppl_suite.references.nuts``'s own (draws doubling up to ``max_draws``, never while a transition
diverges: more draws do not remove a divergence).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ppl_suite.references.gates import GateResult
from ppl_suite.references.settings import NUTSSettings

if TYPE_CHECKING:
    from ppl_suite.problem import Problem

LOC_SCALE_FAMILIES = ("Normal", "StudentT", "Cauchy", "Laplace", "Logistic", "Gumbel")
HIGH_TARGET_ACCEPT = 0.99
AS_GIVEN = "as given"
NON_CENTERED = "non-centered"
SMALLER_STEPS = "smaller steps"
LONGER = "longer chains"


@dataclass(frozen=True)
class Attempt:
    """One NUTS run: its settings, the sites sampled in non-centered form, and the remedies applied
    so far (their names, in order)."""

    settings: NUTSSettings
    non_centered: tuple[str, ...] = ()
    remedies: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """What this attempt changed from the settings given (``"as given"`` for the first)."""
        if not self.remedies:
            return AS_GIVEN
        words = {
            NON_CENTERED: f"non-centered {', '.join(self.non_centered)}",
            SMALLER_STEPS: f"target_accept {self.settings.target_accept:g}, warmup {self.settings.warmup}",
            LONGER: f"warmup {self.settings.warmup}, max_draws {self.settings.max_draws}",
        }
        return " + ".join(words[name] for name in self.remedies)

    def record(self) -> dict[str, Any]:
        """The attempt as plain data (for the reference's summary and the failure message)."""
        return {
            "label": self.label,
            "non_centered": list(self.non_centered),
            "target_accept": self.settings.target_accept,
            "warmup": self.settings.warmup,
            "max_draws": self.settings.max_draws,
        }


def loc_scale_family(fn: Any, wrappers: tuple[type, ...], real: Any) -> str | None:
    """The class name of ``fn`` under the ``wrappers`` its library's ``LocScaleReparam`` unwraps
    (Pyro: Independent; NumPyro: Independent and ExpandedDistribution) when that is a location-scale
    family it can rewrite (LOC_SCALE_FAMILIES, with ``loc`` and ``scale`` and support ``real``), else
    None. A TransformedDistribution (LogNormal, HalfNormal, HalfCauchy) is not unwrapped: its
    non-centered form would be another model."""
    while isinstance(fn, wrappers):
        fn = fn.base_dist
    name = type(fn).__name__
    if name not in LOC_SCALE_FAMILIES or not (hasattr(fn, "loc") and hasattr(fn, "scale")):
        return None
    return name if fn.support is real else None


def _centered(families: dict[str, str], depends: dict[str, Any]) -> tuple[str, ...]:
    """Of the latent sites (``families``: name -> ``loc_scale_family`` of its distribution, in sampling
    order), those of a location-scale family that depend on another latent site (``depends``: prior
    dependencies)."""
    return tuple(
        name
        for name, family in families.items()
        if family is not None and (set(depends.get(name, {})) - {name}) & set(families)
    )


def centered_sites(model: Any, data: dict, params: dict) -> tuple[str, ...]:
    """The latent sites of a NumPyro ``model(data, params)`` drawn from a location-scale family
    (LOC_SCALE_FAMILIES) whose location or scale depends on another latent site (NumPyro's
    ``get_dependencies``, read from the model's trace), in the order the model samples them; none
    when the model's dependencies cannot be read (that remedy is then not tried)."""
    from numpyro import handlers
    from numpyro.distributions import ExpandedDistribution, Independent, constraints
    from numpyro.infer.inspect import get_dependencies

    try:
        trace = handlers.trace(handlers.seed(model, 0)).get_trace(data, params)
        depends = get_dependencies(model, (data, params))["prior_dependencies"]
    except Exception:  # JAX and NumPyro raise many kinds on a model they cannot trace
        return ()
    families = {
        name: loc_scale_family(site["fn"], (Independent, ExpandedDistribution), constraints.real)
        for name, site in trace.items()
        if site["type"] == "sample" and not site["is_observed"]
    }
    return _centered(families, depends)


def centered_pyro_sites(model: Any, data: Any, params: Any) -> tuple[str, ...]:
    """``centered_sites`` of a Pyro ``model(data, params)`` (torch arguments): Pyro's own
    ``get_dependencies`` and trace; its non-centered form is Pyro's ``LocScaleReparam``."""
    import pyro
    import pyro.poutine as poutine
    import torch
    from pyro.infer.inspect import get_dependencies
    from torch.distributions import Independent, constraints

    try:
        with pyro.get_param_store().scope(), torch.no_grad(), pyro.validation_enabled(False):
            pyro.get_param_store().clear()
            trace = poutine.trace(model).get_trace(data, params)
            depends = get_dependencies(model, (data, params))["prior_dependencies"]
    except Exception:  # a model Pyro cannot trace or inspect: that remedy is not tried
        return ()
    families = {
        name: loc_scale_family(site["fn"], (Independent,), constraints.real)
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and type(site["fn"]).__name__ != "_Subsample"
    }
    return _centered(families, depends)


def centered_sites_of(problem: Problem) -> tuple[str, ...]:
    """The centered sites of ``problem``'s model: its NumPyro implementation's when it has one (NUTS
    runs on it), else its Pyro implementation's."""
    from ppl_suite import registry

    numpyro_model = registry.implementation(problem.spec.name, "numpyro")
    if numpyro_model is not None:
        return centered_sites(numpyro_model, dict(problem.data), dict(problem.params))
    pyro_model = registry.implementation(problem.spec.name, "pyro")
    if pyro_model is None:
        return ()
    from ppl_suite.backends.pyro import as_torch

    return centered_pyro_sites(pyro_model, as_torch(problem.data), as_torch(problem.params))


def next_attempt(attempt: Attempt, gates: GateResult, centered: tuple[str, ...]) -> Attempt | None:
    """The attempt after ``attempt`` whose gates failed (module docstring), or None when no remedy
    is left for what failed."""
    tried = set(attempt.remedies)
    settings = attempt.settings
    step_failed = gates.divergences > 0
    mixing_failed = any(not failure.endswith("divergent transitions > 0") for failure in gates.failures())
    choices = []
    if centered and NON_CENTERED not in tried and (step_failed or mixing_failed):
        choices.append((NON_CENTERED, settings, centered))
    if step_failed and SMALLER_STEPS not in tried:
        faster = replace(
            settings,
            target_accept=max(settings.target_accept, HIGH_TARGET_ACCEPT),
            warmup=2 * settings.warmup,
        )
        choices.append((SMALLER_STEPS, faster, attempt.non_centered))
    if mixing_failed and not step_failed and LONGER not in tried:
        longer = replace(settings, warmup=2 * settings.warmup, max_draws=2 * settings.max_draws)
        choices.append((LONGER, longer, attempt.non_centered))
    if not choices:
        return None
    if mixing_failed and not step_failed and len(choices) > 1:
        choices.reverse()  # without divergences, longer chains first: no funnel is in sight
    name, settings, non_centered = choices[0]
    return Attempt(settings, non_centered, (*attempt.remedies, name))
