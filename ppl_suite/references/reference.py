"""A model's reference posterior (NumPyro NUTS, gated) and evidence (AIS), built once and cached: on
its NumPyro implementation, or on its Pyro implementation's density where it has no NumPyro one
(``references.nuts``; its non-centered remedy is then Pyro's ``LocScaleReparam``).

    reference = reference_for(problem)          # cached: a second call loads the stored one
    reference.draws["tau"], reference.summary["tau"]["mean"], reference.log_evidence

The summary (``Reference.summary``, what ``ppl-suite reference --json`` prints) is one JSON object:

- one entry per latent coordinate, named as ArviZ names them (``"mu"``, ``"theta[0]"``,
  ``"W[0, 1]"``): ``{"mean", "sd", "mcse_mean", "mcse_sd", "r_hat", "ess_bulk", "ess_tail"}``;
- ``"latents"``: those coordinate names in order; ``"model"``, ``"data_seed"``, ``"overrides"``;
- ``"chains"``, ``"draws_per_chain"``, ``"draws"`` (all chains), ``"divergences"``;
- ``"gates"``: the worst R-hat, bulk and tail ESS (each with its coordinate), the divergences, the
  thresholds, ``"passed"`` and ``"failures"``;
- ``"seconds"`` (building it all), ``"nuts_seconds"``, ``"evidence_seconds"``;
- ``"evidence"``: ``{"model", "log_evidence", "se", "reliability", "diagnostic", "chain_ess", "ais",
  "bdmc", "bdmc_skipped"}`` (``ppl_suite.references.evidence``; ``se`` None unless reliable);
- ``"mapped_from"``: None, or ``{"model", "why", "direct"}`` when the reference is another
  parametrization's mapped into this one, ``direct`` being one cheap NUTS run on this
  parametrization itself (its divergences, worst R-hat and ESS): the reason for mapping;
- ``"settings"``, ``"versions"``, ``"command"``, ``"key"`` (the cache key).
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np

from ppl_suite.problem import Problem
from ppl_suite.references import cache, nuts, progress
from ppl_suite.references import settings as settings_module
from ppl_suite.references.evidence import log_evidence
from ppl_suite.references.gates import ReferenceGateError
from ppl_suite.references.inference_data import reference_data
from ppl_suite.references.posterior_group import ATTRIBUTE, StoredPosterior, posterior_draws, summary_fields
from ppl_suite.references.progress import OnProgress, ReferenceProgress
from ppl_suite.references.remedies import HIGH_TARGET_ACCEPT, Attempt, next_attempt
from ppl_suite.references.reparametrized import reference_from
from ppl_suite.references.settings import NUTSSettings
from ppl_suite.spec import Latents
from ppl_suite.store import package_versions

RESERVED = (
    "latents", "model", "data_seed", "overrides", "chains", "draws_per_chain", "draws", "divergences",
    "gates", "seconds", "nuts_seconds", "evidence_seconds", "evidence", "mapped_from", "attempts",
    "non_centered", "settings", "versions", "command", "key",
)  # fmt: skip


@dataclass(frozen=True)
class Reference(StoredPosterior):
    """A stored reference: draws per site (constrained, chains flattened: (n, *site.shape)), the
    summary (module docstring) and its fields, where the file lies, and the InferenceData it holds."""

    idata: az.InferenceData
    cached: bool

    @classmethod
    def load(cls, path: Path, problem: Problem, cached: bool = True) -> Reference:
        idata = az.from_netcdf(path)
        summary = json.loads(idata.posterior.attrs[ATTRIBUTE])
        draws = posterior_draws(idata.posterior, problem)
        return cls(draws=draws, idata=idata, path=path, cached=cached, **summary_fields(summary))


def _stored(path: Path, problem: Problem) -> Reference | None:
    """The reference stored at ``path``, its summary copy rewritten when that is damaged or missing;
    None, with a warning naming the file, when the reference itself is damaged (it is then rebuilt)."""
    damage = cache.netcdf_damage(path)
    if damage is None:
        try:
            reference = Reference.load(path, problem)
        except (OSError, ValueError, KeyError, TypeError) as error:
            damage = f"{type(error).__name__}: {error}"
    if damage is not None:
        warnings.warn(f"{path} is damaged ({damage}): rebuilding the reference", stacklevel=3)
        return None
    summary = cache.summary_path(path)
    if (why := cache.summary_damage(summary)) is not None:
        if summary.exists():
            warnings.warn(f"{summary} is damaged ({why}): rewritten from {path.name}", stacklevel=3)
        text = reference.idata.posterior.attrs[ATTRIBUTE]
        cache.write_atomically(summary, lambda temporary: temporary.write_text(text))
    return reference


def _overrides(problem: Problem) -> dict[str, Any]:
    """The parameters that differ from the model's defaults."""
    defaults = problem.spec.defaults
    return {
        k: v for k, v in problem.params.items() if k not in defaults or not np.array_equal(v, defaults[k])
    }


def _direct(problem: Problem, settings: NUTSSettings) -> dict[str, Any]:
    """One NUTS run (no extension) on the parametrization itself: why its reference is mapped."""
    run = nuts.run(problem, settings, extend=False)
    return {
        "draws_per_chain": run.draws_per_chain,
        "divergences": run.gates.divergences,
        "r_hat_max": run.gates.rhat_max,
        "ess_bulk_min": run.gates.ess_bulk_min,
        "ess_tail_min": run.gates.ess_tail_min,
        "seconds": run.seconds,
    }


def _evidence(problem: Problem, seed: int, draws: Latents | None) -> dict[str, Any]:
    found = log_evidence(problem, seed, draws)
    ais = found["ais"]
    return {
        "model": found["model"],
        "log_evidence": ais["value"],
        "se": ais["se"],
        "reliability": ais["reliability"],
        "diagnostic": ais["diagnostic"],
        "chain_ess": ais["chain_ess"],
        **found,
    }


def _attempt_record(attempt: Attempt, run: nuts.NUTSRun) -> dict[str, Any]:
    """The attempt, its gates and seconds; for a Pyro-only model how torch evaluated its density
    (``"density"``: "compiled", or "eager: <why>", ``targets.torch_compiled``)."""
    return {
        **attempt.record(),
        "draws_per_chain": run.draws_per_chain,
        "divergences": run.gates.divergences,
        "r_hat_max": run.gates.rhat_max,
        "ess_bulk_min": run.gates.ess_bulk_min,
        "ess_tail_min": run.gates.ess_tail_min,
        "gates": run.gates.as_dict(),
        "seconds": run.seconds,
        "cpu_seconds": run.cpu_seconds,
        **({"density": run.density} if run.density else {}),
    }


def _centered(problem: Problem, settings: NUTSSettings) -> tuple[str, ...]:
    """The sites a remedy may sample in non-centered form (none when remedies are off)."""
    if not settings.remedies:
        return ()
    from ppl_suite.references.remedies import centered_sites_of

    return centered_sites_of(problem)


def _expected_seconds(attempt: Attempt, last: dict[str, Any], seconds: float | None = None) -> float:
    """The seconds ``attempt`` should take at the last attempt's rate per transition: of wall time, or
    of what ``seconds`` counted over the last attempt (its budget's cost, ``_cost``)."""
    done = last["warmup"] + last["draws_per_chain"]
    spent = last["seconds"] if seconds is None else seconds
    return spent / done * (attempt.settings.warmup + attempt.settings.draws)


def _cost(wall: float, cpu: float) -> float:
    """What the remedies' budget counts: the smaller of the wall and this process's CPU seconds. On a
    machine busy with other work CPU < wall, so its load does not decide which attempts run; where
    XLA or torch run threads in parallel, wall < CPU, so the budget stays a time the user waits."""
    return min(wall, cpu)


def _sample(
    problem: Problem, settings: NUTSSettings, on_progress: OnProgress, start: float
) -> tuple[nuts.NUTSRun, Attempt, list[dict[str, Any]]]:
    """NUTS on ``problem``, remedies tried while a gate fails (``references.remedies``), each attempt
    told to ``on_progress``: the passing run, its attempt and every attempt's record. Raises
    ReferenceGateError naming every attempt, its gates, and what the user can do.

    The budget counts ``_cost``: the smaller of wall and this process's CPU seconds."""
    attempt, centered, records, cpu_start = Attempt(settings), None, [], time.process_time()
    while True:
        number = len(records) + 1

        def tell(phase, kept, eta, gates, note="", attempt=attempt, number=number):
            on_progress(
                ReferenceProgress(
                    problem.spec.name, number, attempt.label, phase, settings.chains, kept,
                    time.perf_counter() - start, eta, gates, note,
                )
            )  # fmt: skip

        expected = _expected_seconds(attempt, records[-1]) if records else None
        run = nuts.run(
            problem, attempt.settings, non_centered=attempt.non_centered, tell=tell, expected=expected
        )
        records.append(_attempt_record(attempt, run))
        if run.gates.passed:
            return run, attempt, records
        if centered is None:  # looked for once, and only when a gate fails
            centered = _centered(problem, settings)
        following = next_attempt(attempt, run.gates, centered) if settings.remedies else None
        stop = None if following is not None else "no remedy left for what failed"
        if following is not None:
            last = records[-1]
            expected = _expected_seconds(following, last, _cost(last["seconds"], last["cpu_seconds"]))
            spent = _cost(time.perf_counter() - start, time.process_time() - cpu_start)
            if spent + expected > settings.budget_seconds:
                stop = (
                    f"the next attempt ({following.label}) would take about {expected:.0f} s (the smaller "
                    f"of wall and CPU time), past the budget of {settings.budget_seconds:g} s"
                )
        if stop is not None:
            tell(progress.STOPPED, run.draws_per_chain, None, run.gates, stop)
            raise ReferenceGateError(_failure(problem, settings, records, stop))
        attempt = following


def _failure(problem: Problem, settings: NUTSSettings, records: list[dict[str, Any]], stop: str) -> str:
    """The message of a reference that failed its gates: each attempt and its numbers, why no more
    was tried, and what the user can change."""
    tried = "; ".join(
        f"{i}. {r['label']} ({settings.chains} chains x {r['draws_per_chain']} draws, {r['seconds']:.0f} s): "
        + ", ".join(r["gates"]["failures"])
        for i, r in enumerate(records, 1)
    )
    last = records[-1]
    advice = (
        f"budget_seconds={max(2 * settings.budget_seconds, 600):g} "
        f"target_accept={min(max(last['target_accept'], HIGH_TARGET_ACCEPT) + 0.005, 0.999):g} "
        f"warmup={2 * last['warmup']} max_draws={2 * last['max_draws']}"
    )
    return (
        f"the NUTS reference of {problem.spec.name!r} (data seed {problem.data_seed}) failed its gates in "
        f"{len(records)} attempt{'s' * (len(records) > 1)}: {tried}; stopped: {stop}; nothing was stored. "
        f"What you can do: give NUTS more room with --nuts NAME=VALUE (Python: nuts={{...}}), e.g. "
        f"--nuts {advice} (remedies=false: one attempt only); or write the model in a form NUTS samples "
        f"well (hierarchical sites non-centered, priors on the data's scale)"
    )


def _sampled(
    problem: Problem, settings: NUTSSettings, on_progress: OnProgress, start: float
) -> tuple[Problem, nuts.NUTSRun, list[dict], tuple[str, ...], dict | None]:
    """NUTS on the source parametrization when there is one (ReferenceGateError if it fails its gates),
    else with remedies (``_sample``): the problem sampled, the run, the attempts, the sites made
    non-centered and what the reference was mapped from (None: sampled as written)."""
    source = reference_from(problem.spec.name)
    mapped, attempts, non_centered = None, [], ()
    if source is not None:
        from ppl_suite import registry

        sampled = Problem(registry.get(source.model), problem.params, problem.data, problem.data_seed)
        run = nuts.run(sampled, settings, lambda draws: source.latents(draws, problem.params))
        if not run.gates.passed:
            raise ReferenceGateError(
                f"the NUTS reference of {problem.spec.name!r} (data seed {problem.data_seed}, "
                f"{settings.chains} chains x {run.draws_per_chain} draws) failed its gates: "
                + "; ".join(run.gates.failures())
                + "; nothing was stored"
            )
        mapped = {"model": source.model, "why": source.why, "direct": _direct(problem, settings)}
    else:
        sampled = problem
        run, attempt, attempts = _sample(problem, settings, on_progress, start)
        non_centered = attempt.non_centered
        if non_centered:
            mapped = {
                "model": f"{problem.spec.name} with {', '.join(non_centered)} non-centered (LocScaleReparam)",
                "why": "NUTS on the model as written failed its gates (attempts)",
                "direct": attempts[0],
            }
    return sampled, run, attempts, non_centered, mapped


def _attributes(problem: Problem, run: nuts.NUTSRun, summary: dict[str, Any]) -> dict[str, Any]:
    """The reference's posterior attributes: the whole summary as JSON and its headline numbers."""
    evidence, non_centered = summary["evidence"], summary["non_centered"]
    return {
        ATTRIBUTE: json.dumps(summary),
        "model": problem.spec.name,
        "data_seed": problem.data_seed,
        "log_evidence": evidence["log_evidence"],
        "log_evidence_se": evidence["se"],
        "log_evidence_reliability": evidence["reliability"],
        "divergences": run.gates.divergences,
        "r_hat_max": run.gates.rhat_max,
        "ess_bulk_min": run.gates.ess_bulk_min,
        "ess_tail_min": run.gates.ess_tail_min,
        "non_centered": ", ".join(non_centered),
        "attempts": len(summary["attempts"]) or 1,
    }


def build(
    problem: Problem,
    settings: NUTSSettings,
    key: str,
    command: str,
    on_progress: OnProgress = progress.ignore,
) -> az.InferenceData:
    """Run NUTS (on the source parametrization when there is one, else with remedies while a gate
    fails: ``references.remedies``) and AIS; the InferenceData (``inference_data.reference_data``) with
    the summary in its posterior attributes. Raises ReferenceGateError when the gates still fail."""
    start = time.perf_counter()
    sampled, run, attempts, non_centered, mapped = _sampled(problem, settings, on_progress, start)
    evidence_start = time.perf_counter()

    def tell(phase: str) -> None:
        on_progress(
            ReferenceProgress(
                problem.spec.name, max(len(attempts), 1), attempts[-1]["label"] if attempts else "mapped",
                phase, settings.chains, run.draws_per_chain, time.perf_counter() - start,
            )
        )  # fmt: skip

    tell(progress.EVIDENCE)
    # BDMC may start its reverse chains at the NUTS draws only where they are draws of ``sampled``.
    draws = None if sampled is not problem else {k: v.reshape(-1, *v.shape[2:]) for k, v in run.draws.items()}
    with progress.heartbeat(lambda: tell(progress.RUNNING)):
        evidence = _evidence(sampled, settings.seed, draws)
    clash = sorted(set(run.coordinates) & set(RESERVED))
    if clash:
        raise ValueError(f"latent coordinates {clash} clash with the summary's own keys")
    summary = {
        **run.coordinates,
        "latents": list(run.coordinates),
        "model": problem.spec.name,
        "data_seed": problem.data_seed,
        "overrides": json.loads(json.dumps(_overrides(problem), default=lambda v: np.asarray(v).tolist())),
        "chains": settings.chains,
        "draws_per_chain": run.draws_per_chain,
        "draws": settings.chains * run.draws_per_chain,
        "divergences": run.gates.divergences,
        "gates": run.gates.as_dict(),
        "seconds": time.perf_counter() - start,
        "nuts_seconds": sum(a["seconds"] for a in attempts) if attempts else run.seconds,
        "evidence_seconds": time.perf_counter() - evidence_start,
        "evidence": evidence,
        "mapped_from": mapped,
        "attempts": attempts,
        "non_centered": list(non_centered),
        "settings": asdict(settings),
        "versions": package_versions(),
        "command": command or f"reference_for({problem.spec.name!r}, data_seed={problem.data_seed})",
        "key": key,
    }
    return reference_data(problem, run, _attributes(problem, run, summary))


def stored_reference(
    problem: Problem, settings: NUTSSettings | None = None, *, cache_dir: Path | None = None
) -> Reference | None:
    """The stored reference of ``problem`` under ``settings`` (None: ``settings.settings_for``) when its
    key matches, else None: nothing is built."""
    settings = settings or settings_module.settings_for(problem.spec)
    path = cache.reference_path(problem, settings, cache_dir)
    return _stored(path, problem) if path.exists() else None


def reference_for(
    problem: Problem,
    settings: NUTSSettings | None = None,
    *,
    cache_dir: Path | None = None,
    command: str = "",
    rebuild: bool = False,
    on_progress: OnProgress = progress.ignore,
) -> Reference:
    """The stored reference of ``problem`` under ``settings`` (None: ``settings.settings_for``) when its key
    matches (``rebuild``: build it anew regardless), else built, stored and returned; ``on_progress``
    hears each step of a build (``references.progress``). A reference failing its gates after every
    remedy tried raises ReferenceGateError (the message names each attempt) and is not stored."""
    settings = settings or settings_module.settings_for(problem.spec)
    path = cache.reference_path(problem, settings, cache_dir)
    if path.exists() and not rebuild and (stored := _stored(path, problem)) is not None:
        return stored
    with cache.building(path):
        if path.exists() and not rebuild and (stored := _stored(path, problem)) is not None:
            return stored  # another process built it while this one waited
        idata = build(problem, settings, path.stem.rpartition("-")[2], command, on_progress)
        cache.write_atomically(path, lambda temporary: idata.to_netcdf(str(temporary), engine="h5netcdf"))
        summary = idata.posterior.attrs[ATTRIBUTE]
        cache.write_atomically(cache.summary_path(path), lambda temporary: temporary.write_text(summary))
    return Reference.load(path, problem, cached=False)
