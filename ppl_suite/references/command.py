"""``ppl-suite reference MODEL``: build, or show when cached, a model's reference (exit codes of
``ppl_suite.cli``: 0 ok, 2 bad input, 3 a gate failed and nothing was stored, 4 internal error).

While it builds, each step (attempt, warmup, draws and their gates, evidence) is printed to stderr.
Without ``--json`` it prints a table (per latent coordinate: mean, sd, MCSE of the mean, R-hat, bulk
and tail ESS) and then the divergences, draws, seconds, the evidence with its SE and chain ESS,
whether the reference was cached or built, and the cache file. ``--json`` prints the summary of
``ppl_suite.references.reference`` as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tomllib
from pathlib import Path
from typing import Any

from ppl_suite import matrix, registry
from ppl_suite.problem import Problem
from ppl_suite.references import cache, settings
from ppl_suite.references.gates import GateResult, ReferenceGateError


def parse_settings(pairs: list[str]) -> tuple[dict[str, Any], list[str]]:
    """(overrides, problems) of ``NAME=VALUE`` pairs, values read as TOML (``n=50``, ``scale=2.5``,
    ``w=[1.0, 2.0]``), a value TOML cannot read kept as a string."""
    overrides, problems = {}, []
    for pair in pairs:
        name, equals, text = pair.partition("=")
        if not equals or not name.strip():
            problems.append(f"--set {pair!r}: expected NAME=VALUE")
            continue
        try:
            overrides[name.strip()] = tomllib.loads(f"value = {text}")["value"]
        except tomllib.TOMLDecodeError:
            overrides[name.strip()] = text
    return overrides, problems


def input_problems(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """(overrides, every problem of the command line): plugins, the model, --set, --data-seed."""
    problems = registry.plugin_problems(args.plugins)
    overrides, set_problems = parse_settings(args.set)
    problems += set_problems
    if not 0 <= args.data_seed < 2**32:
        problems.append(f"--data-seed must lie in [0, 2**32), got {args.data_seed}")
    if args.model not in registry.names():
        problems.append(f"unknown model {args.model!r}; valid: {', '.join(registry.names())}")
    elif not set_problems:
        problems += registry.get(args.model).check_params(overrides)
    return overrides, problems


def _number(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"


def table(summary: dict[str, Any], path: Path, cached: bool) -> str:
    """The readable form of a reference's summary: the coordinate table, then the run's and the
    evidence's lines, and where it is stored (``cached``: found there, not built)."""
    header = ("", "mean", "sd", "mcse_mean", "r_hat", "ess_bulk", "ess_tail")
    rows = [header] + [
        (name, *(_number(summary[name][stat]) for stat in header[1:])) for name in summary["latents"]
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    gates = GateResult.from_dict(summary["gates"])
    lines += [
        "",
        f"model {summary['model']}, data seed {summary['data_seed']}, "
        f"overrides {summary['overrides'] or 'none'}",
        f"draws: {summary['chains']} chains x {summary['draws_per_chain']} = {summary['draws']}; "
        f"divergences: {summary['divergences']}; worst R-hat {gates.rhat_max:.4f} ({gates.rhat_worst}), "
        f"bulk ESS {gates.ess_bulk_min:.0f} ({gates.ess_bulk_worst}), "
        f"tail ESS {gates.ess_tail_min:.0f} ({gates.ess_tail_worst})",
        f"seconds: {summary['seconds']:.1f} (NUTS {summary['nuts_seconds']:.1f}, "
        f"evidence {summary['evidence_seconds']:.1f})",
    ]
    evidence = summary["evidence"]
    ais = evidence["ais"]
    se = f" ± {evidence['se']:.3g}" if evidence["se"] is not None else ""
    se = se or f" (unreliable: {evidence['diagnostic']})"
    lines.append(
        f"log p(x) by AIS: {evidence['log_evidence']:.4f}{se}, chain ESS {ais['chain_ess']:.1f} of "
        f"{ais['chains']}, {ais['temperatures']} temperatures"
        + (f" (of {evidence['model']}, the same p(x))" if evidence["model"] != summary["model"] else "")
    )
    bdmc = evidence["bdmc"]
    if bdmc is not None:
        bounds = f"[{bdmc['extras']['lower']:.4f}, {bdmc['value']:.4f}]"
        label = f"SE {bdmc['se']:.3g}" if bdmc["se"] is not None else f"unreliable: {bdmc['diagnostic']}"
        lines.append(f"BDMC sandwich: {bounds} ({label}; reverse chains from {bdmc['reverse_from']})")
    else:
        lines.append(f"BDMC: not run ({evidence['bdmc_skipped']})")
    mapped = summary["mapped_from"]
    if mapped is not None:
        direct = mapped["direct"]
        lines.append(
            f"mapped from {mapped['model']}: {mapped['why']}; direct NUTS on this parametrization "
            f"({summary['chains']} chains x {direct['draws_per_chain']}): {direct['divergences']} "
            f"divergences, worst R-hat {direct['r_hat_max']:.4f}, bulk ESS {direct['ess_bulk_min']:.0f}, "
            f"tail ESS {direct['ess_tail_min']:.0f}"
        )
    for number, attempt in enumerate(summary.get("attempts") or (), 1):
        failures = "; ".join(attempt["gates"]["failures"]) or "gates passed"
        lines.append(
            f"attempt {number} ({attempt['label']}): {attempt['draws_per_chain']} draws per chain, "
            f"{attempt['seconds']:.0f} s: {failures}"
        )
    lines.append(f"{'cached' if cached else 'built'}: {path}")
    return "\n".join(lines)


def command(args: argparse.Namespace) -> int:
    """Show the stored summary when the cache holds one (NumPy alone: no JAX, NumPyro or ArviZ is
    imported), else build the reference (``rebuild``: build it regardless)."""
    overrides, problems = input_problems(args)
    if problems:
        raise matrix.ConfigError(problems)
    problem = Problem.build(args.model, args.data_seed, overrides)
    path = cache.reference_path(problem, settings.settings_for(problem.spec))
    summary = None if args.rebuild else cache.stored_summary(path)
    cached = summary is not None
    if not cached:
        from ppl_suite.compilation_cache import enable_compilation_cache
        from ppl_suite.numerics import setup
        from ppl_suite.references.reference import reference_for

        setup()
        enable_compilation_cache()
        line = shlex.join(["ppl-suite", "reference", args.model, "--data-seed", str(args.data_seed)])
        line += "".join(f" --set {shlex.quote(pair)}" for pair in args.set)
        try:
            reference = reference_for(
                problem,
                command=line,
                rebuild=args.rebuild,
                on_progress=lambda step: print(step.text, file=sys.stderr),
            )
        except ReferenceGateError as error:
            print(f"ppl-suite: gate failed: {error}", file=sys.stderr)
            return 3
        summary, path, cached = reference.summary, reference.path, reference.cached
    print(json.dumps(summary, indent=1) if args.json else table(summary, path, cached))
    return 0
