"""``ppl_suite.diagnose``: is the fit I made right? One fitted guide against the model's reference.

    svi_result = SVI(model, guide, optim, Trace_ELBO()).run(key, 2000, x, y=y)
    diagnosis = ppl_suite.diagnose(model, guide, svi_result.params, args=(x,), kwargs={"y": y})

The steps: bind the model to its arguments and register it (``bound_model``), read q from the guide
and its parameters (``traced_guide``), build or load the model's NUTS reference and AIS evidence
(``ppl_suite.references``, cached on disk), then the suite's estimators on q:

    ELBO      = mean_i [log p(x, z_i) - log q(z_i)], z_i ~ q             (``estimators.elbo``)
    KL(q || p) = log p(x) - ELBO, SE = sqrt(SE_ELBO^2 + SE_logp^2)       (``estimators.kl.kl_reference``)
    k-hat     = PSIS shape of the weights p(x, z_i) / q(z_i)               (``estimators.psis``)
    moments   = q's standardized mean and sd errors against the reference (``estimators.posterior_moments``)

A Pyro model gets the same: its NUTS reference and AIS run on its density through a torch bridge
(``targets.pyro_target``). Where no reference can be built (discrete latent sites: no unconstrained
space), log p(x) is importance sampling with q as proposal (``estimators.importance``, labelled by
the k-hat of independent draws), no moment errors are given, and the diagnosis says why.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ppl_suite.diagnosing.bound_model import bind, library_of
from ppl_suite.diagnosing.diagnosis import Diagnosis
from ppl_suite.errors import InputProblem
from ppl_suite.numerics import kept_session

DRAWS = 4000
Q_CHAINS = 4


def _library(model: Callable[..., Any], guide: Any, library: str | None) -> str:
    """The library of the fit: given, else the guide's class (an autoguide), else what the model's or
    the guide function's module imports."""
    if library is not None:
        if library not in ("numpyro", "pyro"):
            raise InputProblem(f"library {library!r}: valid: numpyro, pyro")
        return library
    top = type(guide).__module__.partition(".")[0]
    found = top if top in ("numpyro", "pyro") else None
    for function in (model, guide):
        if found is None and inspect.isfunction(inspect.unwrap(function)):
            found = library_of(function)
    if found is None:
        raise InputProblem(
            "cannot tell whether the model is a NumPyro or a Pyro model (its module imports both or "
            "neither); pass library='numpyro' or library='pyro'"
        )
    return found


def _q_idata(problem, guide, seed: int, n: int, diagnosis: Diagnosis):
    """q's draws as InferenceData (``references.inference_data.draws_data``: observed data,
    log-likelihood, deterministic sites, plate dims): ``Q_CHAINS`` chains of independent draws (one
    batch split in ``Q_CHAINS``, so R-hat and ESS read them as chains), the diagnosis' numbers as the
    posterior's attributes."""
    from ppl_suite.estimators.streams import stream_seed
    from ppl_suite.references.inference_data import draws_data

    per_chain = max(n // Q_CHAINS, 1)
    draws = guide.sample(stream_seed(seed, "q_draws"), per_chain * Q_CHAINS)
    attrs = {k: v for k, v in diagnosis.as_dict().items() if isinstance(v, int | float | str)}
    return draws_data(problem, draws, attrs, chains=Q_CHAINS)


@kept_session()
def diagnose(
    model: Callable[..., Any],
    guide: Any,
    params: Mapping[str, Any] | Any,
    *,
    args: tuple = (),
    kwargs: Mapping[str, Any] | None = None,
    library: str | None = None,
    draws: int = DRAWS,
    seed: int = 0,
    nuts: Mapping[str, Any] | None = None,
    cache: str | Path | None = None,
    progress: bool = False,
) -> Diagnosis:
    """Diagnose a fit the user made: ``guide`` with its fitted ``params`` for ``model(*args, **kwargs)``.

    guide: any NumPyro or Pyro guide (an autoguide object or a function with ``param`` sites) sampling
        the model's latent sites; a point mass (AutoDelta) is refused;
    params: NumPyro: ``SVIRunResult.params`` or ``svi.get_params(state)``; Pyro: ``pyro.get_param_store()``
        or a dict of tensors (constrained values);
    library: ``numpyro`` or ``pyro`` (default: read from the model's module or the guide's class);
    draws: draws of q for each estimate; seed: their streams;
    nuts: ``NUTSSettings`` fields for the reference (e.g. ``{"warmup": 500, "draws": 500}``);
    cache: the folder of stored references (default: check's, ``references.cache.cache_dir()``);
    progress: print each step; by default nothing is printed.

    Raises InputProblem (one sentence per problem, nothing run) for bad input, and
    ``ppl_suite.references.ReferenceGateError`` when the NUTS reference fails its gates.
    """
    from ppl_suite.numerics import enable_float64

    say = (lambda text: print(f"diagnose: {text}", flush=True)) if progress else (lambda text: None)
    start = time.perf_counter()
    settings = _checked_settings(draws, args, kwargs, params, nuts)
    which = _library(model, guide, library)
    enable_float64()  # the suite's estimators and references run JAX in float64 (restored on return)
    say(f"tracing the {which} model and its guide")
    bound = bind(model, tuple(args), kwargs, library=which)
    call_args, call_kwargs = bound.arguments()
    from ppl_suite.diagnosing import traced_guide

    make = traced_guide.numpyro_guide if which == "numpyro" else traced_guide.pyro_guide
    q = make(guide, params, call_args, call_kwargs, bound.sites)
    reference, description, file, reference_idata = _nuts_reference(bound, settings, cache, say)
    say(f"estimating with {draws} draws of q")
    diagnosis = _estimate(bound, q, reference, draws, seed)
    q_idata = _q_idata(bound.problem, q, seed, draws, diagnosis)
    return replace(
        diagnosis,
        reference_description=description,
        reference_file=file,
        seconds=time.perf_counter() - start,
        q=q_idata,
        reference=reference_idata,
    )


def _checked_settings(draws: Any, args: Any, kwargs: Any, params: Any, nuts: Mapping[str, Any] | None) -> Any:
    """The reference's NUTSSettings (None: the defaults); InputProblem, one sentence per bad argument."""
    problems = []
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 100:
        problems.append(f"draws must be an integer >= 100 (the k-hat fits a tail of them), got {draws!r}")
    if not isinstance(args, tuple | list):
        problems.append(
            f"args must be a tuple of the model's positional arguments, got {type(args).__name__}"
        )
    if kwargs is not None and not isinstance(kwargs, Mapping):
        problems.append(
            f"kwargs must be a dict of the model's keyword arguments, got {type(kwargs).__name__}"
        )
    if not isinstance(params, Mapping) and not hasattr(params, "get_state"):  # Pyro's ParamStoreDict
        problems.append(
            f"params: a {type(params).__name__}; pass SVIRunResult.params, svi.get_params(state), "
            "pyro.get_param_store() or a dict of arrays"
        )
    settings = None
    if nuts:
        from ppl_suite.references import NUTSSettings

        try:
            settings = replace(NUTSSettings(), **dict(nuts))
        except (TypeError, ValueError) as error:
            problems.append(f"NUTS settings: {error}")
    if problems:
        raise InputProblem(*problems)
    return settings


def _nuts_reference(bound, settings, cache: str | Path | None, say: Callable[[str], None]) -> tuple:
    """The NUTS reference, loaded or built (cached): (ReferencePosterior, description, file, idata);
    (None, why there is none, "", None) where the model has no unconstrained space."""
    from ppl_suite.compilation_cache import enable_compilation_cache
    from ppl_suite.references import reference_for
    from ppl_suite.targets.build import target_for
    from ppl_suite.targets.reference_posterior import ReferencePosterior

    reason = target_for(bound.problem).continuous_reason()
    if reason is not None:
        say(f"no NUTS reference: {reason}")
        return None, f"no NUTS reference: {reason}", "", None

    enable_compilation_cache()
    say("loading or building the NUTS reference and its AIS evidence (cached)")
    folder = Path(cache) if cache is not None else None
    found = reference_for(bound.problem, settings, cache_dir=folder)
    reference = ReferencePosterior.of(found)
    description = ReferencePosterior.describe(found)
    say(description)
    return reference, description, str(found.path), found.idata


def _estimate(bound, q, reference, n: int, seed: int) -> Diagnosis:
    """The suite's estimators on q: ELBO, k-hat, log p(x) and KL, moment errors."""
    import math

    from ppl_suite.estimators.cache import EvaluationCache
    from ppl_suite.estimators.elbo import elbo
    from ppl_suite.estimators.kl import kl_reference
    from ppl_suite.estimators.psis import psis_diagnostic
    from ppl_suite.estimators.weights import finite_variance_khat, finite_variance_reliability
    from ppl_suite.targets.build import target_for

    target = target_for(bound.problem, reference)
    cache = EvaluationCache()
    lower = elbo(target, q, n, seed, cache)
    psis = psis_diagnostic(target, q, n, seed, cache)
    verdict, why = finite_variance_reliability(psis.value, n)
    diagnostics = [d for d in (lower.diagnostic, why and f"q as an importance proposal: {why}") if d]
    evidence, method = _evidence(target, q, reference, n, seed, cache)
    kl = kl_reference(lower, evidence)
    if evidence.evidence_diagnostic:
        diagnostics.append(f"log p(x): {evidence.evidence_diagnostic}")
    moments = _moment_fields(target, q, reference, n, seed) if reference is not None else {}
    return Diagnosis(
        model=getattr(bound.function, "__qualname__", bound.problem.spec.name),
        library=bound.library,
        guide=q.family,
        draws=n,
        elbo=lower.value,
        elbo_se=lower.se,
        log_evidence=evidence.log_evidence,
        log_evidence_se=math.nan if evidence.log_evidence_se is None else evidence.log_evidence_se,
        log_evidence_method=method,
        kl=kl.value,
        kl_se=kl.se,
        kl_reliability=kl.reliability,
        k_hat=psis.value,
        k_hat_verdict=verdict,
        k_hat_limit=finite_variance_khat(n),
        k_hat_interpretation=psis.extras["interpretation"],
        diagnostics=tuple(diagnostics),
        **moments,
    )


def _evidence(target, q, reference, n: int, seed: int, cache) -> tuple[Any, str]:
    """log p(x) and its method: the reference's AIS, else importance sampling with q as proposal."""
    if reference is not None:
        return reference, "AIS against the NUTS reference"
    import math

    from ppl_suite.estimators.importance import importance_log_evidence
    from ppl_suite.targets.reference_posterior import ReferencePosterior

    found = importance_log_evidence(target, q, n, seed, ks=(), cache=cache)
    se = found.se if found.reliability == "reliable" else None
    evidence = ReferencePosterior({}, math.nan, found.value, se, found.diagnostic)
    return evidence, f"importance sampling, q as proposal ({n} draws)"


def _moment_fields(target, q, reference, n: int, seed: int) -> dict[str, Any]:
    """The Diagnosis fields of q's worst standardized mean and sd errors against the reference."""
    from ppl_suite.estimators.posterior_moments import moment_errors

    found = moment_errors(target, q, reference, n, seed)
    extras = found.extras
    return {
        "mean_error": found.value, "mean_error_se": found.se, "mean_error_at": extras["coordinate"],
        "sd_error": extras["worst_sd_error"], "sd_error_se": extras["worst_sd_error_se"],
        "sd_error_at": extras["worst_sd_coordinate"], "coordinates": extras["coordinates"],
    }  # fmt: skip
