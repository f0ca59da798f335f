"""Hand-rolled estimators of ELBO, KL(q || p(z | x)) and log p(x), each returning an Estimate.

Estimators see a problem through a ``Target`` and a fitted guide through a ``GuideDensity``
(``ppl_suite.targets``) and import no torch, Pyro or NumPyro.

Besides the functions of each module, every estimator is a plug-in: a module of this package defines
``ESTIMATORS`` (a tuple of objects following ``Estimator``), and ``SHIPPED`` here describes each one
(``EstimatorInfo``: name, quantity, kind, whether it uses the guide, its module) so that listing the
estimators or validating a config imports no JAX; the module is imported when the estimator is asked
for (``get``). A test checks that ``SHIPPED`` describes every module's ``ESTIMATORS`` as they
declare themselves. Settings (sample sizes, chains, temperatures) are dataclass fields
of the plug-in, validated on construction; ``get(name, **settings)`` makes a configured copy.

    from ppl_suite import estimators
    estimators.names()                               # ['ais', 'bdmc', 'elbo', ...]
    est = estimators.get("ais", chains=64, temperatures=1000)
    reason = est.applies(target, guide)            # guide: a GuideDensity, or None
    if reason is None:
        result = est.estimate(target, guide, seed, cache)

``seed`` is the cell's seed: each estimator draws from its own stream of it
(``streams.stream_seed(seed, name)``); ``cache`` (an ``EvaluationCache``, or None) is the cell's
memo of shared intermediates, such as the importance weights of IS, IWAE and PSIS.
"""

from __future__ import annotations

import dataclasses
import importlib
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ppl_suite.plugin_registry import Registry

if TYPE_CHECKING:
    from ppl_suite.estimate import Estimate
    from ppl_suite.estimators.cache import EvaluationCache
    from ppl_suite.spec import ExactPosterior
    from ppl_suite.targets import GuideDensity, Target

QUANTITIES = {
    "log_evidence": "log p(x)",
    "elbo": "E_q[log p(x, z) - log q(z)]",
    "kl_to_posterior": "KL(q || p(z | x))",
    "kl_from_posterior": "KL(p(z | x) || q)",
    "pareto_k": "PSIS k-hat of q as importance proposal for p(z | x)",
    "posterior_mean_error": "(E_q[z_j] - E_ref[z_j]) / sd_ref[z_j], the worst coordinate j",
    "wasserstein_to_reference": "2-Wasserstein distance between q and the reference posterior",
    "identity_residual": "log p(x) - ELBO - KL(q || p(z | x)), 0 up to its noise",
    "optimization_gap": "KL(q || p(z | x)) minus the smallest KL the guide family can reach",
}
KINDS = ("exact", "unbiased", "consistent", "lower_bound", "upper_bound", "approximation", "diagnostic")


class Estimator(Protocol):
    """One estimator: what it estimates, when it applies, and how.

    - ``name``: registry key; ``quantity``: a key of QUANTITIES; ``kind``: one of KINDS (a stochastic
      ``lower_bound``/``upper_bound`` holds in expectation, so within a few SE);
    - ``uses_guide``: False when the value does not depend on the fitted guide (AIS, Laplace...), so a
      runner may compute it once per problem and pass ``guide=None``;
    - ``applies(target, guide)``: why it cannot run (a sentence), or None; ``guide`` is the fitted
      guide (a GuideDensity), None for a guide-free estimator;
    - ``estimate(target, guide, seed, cache)``: the Estimate, deterministic given the cell's ``seed``;
      ``cache`` is the cell's EvaluationCache (None: compute everything here).
    """

    name: str
    quantity: str
    kind: str
    uses_guide: bool

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None: ...

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate: ...


def _declares_its_quantity_and_kind(estimator: Estimator | EstimatorInfo) -> str | None:
    """Why ``estimator`` does not follow the protocol's quantity and kind, or None."""
    for attribute, value, valid in (
        ("quantity", estimator.quantity, QUANTITIES),
        ("kind", estimator.kind, KINDS),
    ):
        if value not in valid:
            return f"estimator {estimator.name!r}: {attribute} {value!r} is not one of {', '.join(valid)}"
    return None


@dataclass(frozen=True)
class EstimatorInfo:
    """A shipped estimator's declared identity, read without importing it: ``name``, ``quantity``,
    ``kind`` and ``uses_guide`` as in ``Estimator``, and ``module``, the module of this package whose
    ``ESTIMATORS`` holds it."""

    name: str
    quantity: str
    kind: str
    uses_guide: bool
    module: str

    def load(self) -> Estimator:
        """The estimator itself, with its default settings (imports its module)."""
        declared = importlib.import_module(f"{__name__}.{self.module}").ESTIMATORS
        return next(estimator for estimator in declared if estimator.name == self.name)


SHIPPED = (
    EstimatorInfo("ais", "log_evidence", "lower_bound", False, "ais"),
    EstimatorInfo("bdmc", "log_evidence", "upper_bound", False, "bdmc"),
    EstimatorInfo("elbo", "elbo", "unbiased", True, "elbo"),
    EstimatorInfo("elbo_enumerated", "elbo", "exact", True, "enumerated"),
    EstimatorInfo("harmonic_mean", "log_evidence", "consistent", False, "harmonic_mean"),
    EstimatorInfo("identity", "identity_residual", "unbiased", True, "identity"),
    EstimatorInfo("importance", "log_evidence", "consistent", True, "importance"),
    EstimatorInfo("inclusive_kl", "kl_from_posterior", "unbiased", True, "inclusive_kl"),
    EstimatorInfo("iwae", "log_evidence", "lower_bound", True, "importance"),
    EstimatorInfo("kl_analytic", "kl_to_posterior", "exact", True, "kl"),
    EstimatorInfo("kl_identity", "kl_to_posterior", "unbiased", True, "kl"),
    EstimatorInfo("kl_enumerated", "kl_to_posterior", "exact", True, "enumerated"),
    EstimatorInfo("kl_monte_carlo", "kl_to_posterior", "unbiased", True, "kl"),
    EstimatorInfo("kl_reference", "kl_to_posterior", "lower_bound", True, "kl"),
    EstimatorInfo("laplace", "log_evidence", "approximation", False, "laplace"),
    EstimatorInfo("optimization_gap", "optimization_gap", "unbiased", True, "optimization_gap"),
    EstimatorInfo("posterior_moments", "posterior_mean_error", "consistent", True, "posterior_moments"),
    EstimatorInfo("psis", "pareto_k", "diagnostic", True, "psis"),
    EstimatorInfo("psis_log_evidence", "log_evidence", "consistent", True, "psis_log_evidence"),
    EstimatorInfo("wasserstein", "wasserstein_to_reference", "consistent", True, "wasserstein"),
)

ESTIMATORS: Registry[Estimator | EstimatorInfo] = Registry(
    "estimator",
    discover=lambda: SHIPPED,
    entry_points="ppl_suite.estimators",
    check=_declares_its_quantity_and_kind,
)


def register(estimator: Estimator) -> Estimator:
    """Add an estimator defined outside this package; a taken name is an error."""
    return ESTIMATORS.register(estimator)


def names() -> list[str]:
    return ESTIMATORS.names()


def info(name: str) -> Estimator | EstimatorInfo:
    """What ``name`` declares (name, quantity, kind, uses_guide) without importing a shipped
    estimator's module; unknown names are a KeyError listing the valid ones."""
    return ESTIMATORS.get(name)


def get(name: str, **settings: Any) -> Estimator:
    """The estimator ``name``, with ``settings`` replacing its defaults (unknown ones are an error)."""
    plugin = ESTIMATORS.get(name)
    estimator = plugin.load() if isinstance(plugin, EstimatorInfo) else plugin
    if not settings:
        return estimator
    valid = settings_of(estimator)
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        raise ValueError(
            f"estimator {name!r} has no setting {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(valid) or 'none'}"
        )
    return dataclasses.replace(estimator, **settings)


def settings_of(estimator: Estimator) -> dict[str, Any]:
    """The estimator's settings and their values (its dataclass fields)."""
    if not dataclasses.is_dataclass(estimator):
        return {}
    return {f.name: getattr(estimator, f.name) for f in dataclasses.fields(estimator)}


def guide_reason(guide: GuideDensity | None) -> str | None:
    """Why a guide-based estimator cannot run on ``guide``, or None when it can."""
    if guide is None:
        return "needs a fitted guide"
    if guide.samples_nothing:
        return "the guide samples nothing (enumeration)"
    return None


def need_guide(name: str, guide: GuideDensity | None) -> GuideDensity:
    """``guide`` when it is a guide with draws; otherwise a clear error naming the estimator."""
    if guide is None or not hasattr(guide, "log_q"):
        raise TypeError(
            f"estimator {name!r} needs a fitted guide (a GuideDensity), got {type(guide).__name__}"
        )
    if guide.samples_nothing:
        raise ValueError(f"estimator {name!r} needs draws of q, and the guide samples nothing (enumeration)")
    return guide


def need_exact(name: str, exact: ExactPosterior | None) -> ExactPosterior:
    """``exact`` when given; otherwise a clear error naming the estimator."""
    if exact is None or not hasattr(exact, "sample"):
        raise ValueError(f"estimator {name!r} needs the exact posterior (an oracle), got {exact!r}")
    return exact


def need_continuous(name: str, target: Target) -> None:
    """A clear error when the target has no unconstrained JAX density (``continuous_reason``)."""
    reason = target.continuous_reason()
    if reason is not None:
        raise ValueError(f"estimator {name!r} needs an unconstrained differentiable target: {reason}")


def need_positive_int(name: str, setting: str, value: Any, minimum: int = 1) -> None:
    """A clear error when ``value`` is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: {setting} must be an integer >= {minimum}, got {value!r}")
