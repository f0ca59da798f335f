"""Calibration and throughput of AIS and BDMC (a benchmark, not a test).

    .venv/bin/python benchmarks/bench_ais.py [--models normal_normal bayes_linreg ppca] [--seeds 20]
        [--chains 64] [--temperatures 4000] [--leapfrog-steps 5] [--root DIR]

For each model (ppca at its closed-form maximum-likelihood theta, d = 60) and seeds 0..R-1, runs
the ``ais`` estimator (forward AIS) and BDMC (its own forward and reverse passes) and prints one row
per pass: runs labelled reliable, z_mean, z_sd, fraction |z| > 2 and > 3 over the reliable runs
(z = (estimate - exact log p(x)) / SE), z_sd over all runs, mean chain ESS, sandwich inversions
(upper < lower, and beyond 3 combined SEs), temperatures, seconds per run and HMC transitions per
second. The first seed's run, which compiles, is left out of the timings.

``--root DIR`` runs the estimators of another checkout of the repository, e.g. the code before a
change (``mkdir /tmp/before && git archive HEAD | tar -x -C /tmp/before``): its schedule is fixed
(``--temperatures`` temperatures) and its ``ais`` estimator is BDMC's forward pass bit for bit,
so the forward row comes from BDMC's run there.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["normal_normal", "bayes_linreg", "ppca"])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--chains", type=int, default=64)
    parser.add_argument("--temperatures", type=int, default=4000)
    parser.add_argument("--leapfrog-steps", type=int, default=5)
    parser.add_argument("--target-ess-fraction", type=float, default=None, help="default: AISConfig's")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    return parser.parse_args()


ARGS = parse()
sys.path.insert(0, str(ARGS.root.resolve()))  # the checkout whose estimators are measured

from ppl_suite.numerics import setup  # noqa: E402

setup()

import numpy as np  # noqa: E402

from models.ppca.posterior import maximum_likelihood  # noqa: E402
from ppl_suite.estimators import ais, bdmc  # noqa: E402
from ppl_suite.problem import Problem  # noqa: E402

INVERSION_SE = 3.0
CURRENT_API = "target" in inspect.signature(bdmc.bdmc_bounds).parameters


def problem_of(model: str) -> Problem:
    """The model's defaults; ppca at the maximum-likelihood theta of its data."""
    problem = Problem.build(model, 0)
    if model == "ppca":
        ml = maximum_likelihood(problem.data["x"], np.shape(problem.params["W"])[1])
        problem = problem.with_params({"W": ml.W, "mu": ml.mu, "log_sigma": float(np.log(ml.sigma))})
    return problem


@dataclass
class Pass:
    """One pass's estimates over the seeds."""

    values: list[float] = field(default_factory=list)
    ses: list[float] = field(default_factory=list)
    reliable: list[bool] = field(default_factory=list)
    ess: list[float] = field(default_factory=list)

    def add(self, value: float, se: float, reliable: bool, ess: float) -> None:
        self.values.append(value)
        self.ses.append(se)
        self.reliable.append(reliable)
        self.ess.append(ess)

    def row(self, truth: float) -> dict[str, str]:
        z = (np.asarray(self.values) - truth) / np.asarray(self.ses)
        kept = z[np.asarray(self.reliable)]
        return {
            "reliable": f"{kept.size}/{z.size}",
            "z_mean": f"{kept.mean():+.2f}" if kept.size else "-",
            "z_sd": f"{kept.std(ddof=1):.2f}" if kept.size > 1 else "-",
            "|z|>2": f"{np.mean(np.abs(kept) > 2):.2f}" if kept.size else "-",
            "|z|>3": f"{np.mean(np.abs(kept) > 3):.2f}" if kept.size else "-",
            "z_sd all": f"{z.std(ddof=1):.2f}",
            "chain ESS": f"{np.mean(self.ess):.1f}",
        }


@dataclass
class Runs:
    forward: Pass = field(default_factory=Pass)
    reverse: Pass = field(default_factory=Pass)
    inversions: int = 0
    inversions_beyond: int = 0
    temperatures: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # BDMC, per run
    transitions: list[int] = field(default_factory=list)  # BDMC, per run
    ais_seconds: list[float] = field(default_factory=list)  # the ``ais`` estimator, where it runs apart

    def sandwich(self, lower: float, lower_se: float, upper: float, upper_se: float) -> None:
        self.inversions += upper < lower
        self.inversions_beyond += upper < lower - INVERSION_SE * math.hypot(lower_se, upper_se)


def measure_current(problem: Problem, args: argparse.Namespace) -> Runs:
    """Today's estimators: ``ais`` and BDMC on one compiled Annealer per model."""
    from ppl_suite.targets.build import target_for

    config = ais.AISConfig(
        temperatures=args.temperatures, chains=args.chains, leapfrog_steps=args.leapfrog_steps
    )
    if args.target_ess_fraction is not None:
        config = dataclasses.replace(config, target_ess_fraction=args.target_ess_fraction)
    annealer = ais.Annealer(target_for(problem), config)
    exact, runs = problem.exact(), Runs()
    for seed in range(args.seeds):
        forward = ais.forward_ais(annealer, seed)
        both = bdmc.sandwich(annealer, exact, seed)
        x = both.extras
        runs.forward.add(
            forward.value, forward.se, forward.reliability == "reliable", forward.extras["chain_ess"]
        )
        runs.reverse.add(both.value, both.se, not x["unreliable_reason"], x["chain_ess"])
        runs.sandwich(x["lower"], x["lower_se"], both.value, both.se)
        runs.temperatures += [forward.extras["temperatures"], x["temperatures"]]
        if seed:  # the first seed compiles
            runs.seconds.append(both.seconds)
            runs.transitions.append(x["transitions"])
            runs.ais_seconds.append(forward.seconds)
        print(f"  seed {seed}: {forward.value:.3f} ± {forward.se:.3f}, bdmc {both.value:.3f} ± {both.se:.3f} "
              f"{both.reliability} {both.diagnostic}", flush=True)  # fmt: skip
    return runs


def measure_fixed_schedule(problem: Problem, args: argparse.Namespace) -> Runs:
    """A checkout whose BDMC takes a Problem: its pilot, forward and reverse pass, keyed as its
    ``bdmc_bounds`` keys them (so the numbers are that function's), with the passes timed."""
    import jax
    from ppl_suite.estimators.target import Target

    from ppl_suite.estimators.weights import effective_sample_size, log_mean_exp_se

    config = ais.AISConfig(
        temperatures=args.temperatures, chains=args.chains, leapfrog_steps=args.leapfrog_steps
    )
    run = ais.AISRun(Target(problem), config)
    exact, runs = problem.exact(), Runs()
    for seed in range(args.seeds):
        start = time.perf_counter()
        key_pilot, key_prior, key_fwd, key_rev = jax.random.split(jax.random.PRNGKey(seed), 4)
        schedule = run.schedule(key_pilot)
        log_w_fwd, _, _ = run.run(schedule, run.target.sample_prior(key_prior, config.chains), key_fwd)
        posterior = exact.sample(np.random.default_rng(seed), config.chains)
        log_w_rev, _, _ = run.run(schedule.reversed(), run.target.unconstrain(posterior), key_rev)
        seconds = time.perf_counter() - start
        lower, lower_se = log_mean_exp_se(log_w_fwd)
        inverse, upper_se = log_mean_exp_se(log_w_rev)
        runs.forward.add(lower, lower_se, True, effective_sample_size(log_w_fwd))
        runs.reverse.add(-inverse, upper_se, True, effective_sample_size(log_w_rev))
        runs.sandwich(lower, lower_se, -inverse, upper_se)
        runs.temperatures.append(config.temperatures)
        if seed:
            runs.seconds.append(seconds)
            runs.transitions.append(3 * config.chains * (config.temperatures + ais.WARMUP))
        print(
            f"  seed {seed}: {lower:.3f} ± {lower_se:.3f}, bdmc {-inverse:.3f} ± {upper_se:.3f}", flush=True
        )
    return runs


def table(rows: list[dict[str, str]]) -> str:
    columns = list(rows[0])
    widths = [max(len(c), *(len(r[c]) for r in rows)) for c in columns]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(r[c].ljust(w) for c, w in zip(columns, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def main() -> None:
    measure = measure_current if CURRENT_API else measure_fixed_schedule
    kind = "adaptive" if CURRENT_API else "fixed"
    print(f"estimators of {ARGS.root}: {kind} schedule, {ARGS.seeds} seeds, {ARGS.chains} chains, "
          f"at most {ARGS.temperatures} temperatures, {ARGS.leapfrog_steps} leapfrog steps")  # fmt: skip
    rows = []
    for model in ARGS.models:
        problem = problem_of(model)
        print(f"{model}:", flush=True)
        runs = measure(problem, ARGS)
        truth = problem.exact().log_evidence
        rate = sum(runs.transitions) / sum(runs.seconds) if runs.seconds else math.nan
        common = {
            "inversions (>3 SE)": f"{runs.inversions} ({runs.inversions_beyond})",
            "temperatures": f"{int(np.median(runs.temperatures))}",
            "bdmc s/run": f"{np.median(runs.seconds):.2f}" if runs.seconds else "-",
            "ais s/run": f"{np.median(runs.ais_seconds):.2f}" if runs.ais_seconds else "(= bdmc)",
            "transitions/s": f"{rate:,.0f}",
        }
        for name, one in (("forward", runs.forward), ("reverse", runs.reverse)):
            rows.append({"model": model, "pass": name, **one.row(truth), **common})
    print(table(rows))


if __name__ == "__main__":
    main()
