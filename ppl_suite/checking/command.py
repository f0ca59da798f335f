"""``ppl-suite check FILE.py:MODEL --data DATA``: the Python API's ``check`` on the command line.

Exit codes are the runner's: 0 ok, 1 some cell failed, 2 bad input (every problem listed, nothing
run), 3 a correctness check failed (the reference's gates, the NumPyro and Pyro log joints, or a
cell's checks), 4 internal error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

DESCRIPTION = """\
Is my VI right, for my model? Traces the model (a NumPyro or Pyro function called as MCMC.run calls
it, model(*args, **kwargs), with the arguments --data gives; or model(data) / model(data, params))
for its latent sites, builds its NUTS reference and AIS evidence (cached),
compares the NumPyro and Pyro versions' log joints at reference draws when both are given, then fits
the guides with each backend and evaluates every fit: ELBO ± SE, the reference log p(x) ± SE,
KL = log p(x) - ELBO ± SE, q's posterior mean and sd errors against the reference, and k-hat. Writes
a results folder (ppl_suite.results reads it) and a report."""


def add_parser(subparsers: Any, epilog: str = "") -> argparse.ArgumentParser:
    """Add the ``check`` subcommand to ``subparsers`` (of the ``ppl-suite`` parser); returns it."""
    check = subparsers.add_parser(
        "check",
        help="check VI on your own NumPyro or Pyro model against its NUTS reference",
        description=DESCRIPTION,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument(
        "model", nargs="?", help="FILE.py:MODEL, a NumPyro or a Pyro model (told by its imports)"
    )
    check.add_argument("--numpyro", metavar="FILE.py:MODEL", help="the NumPyro version")
    check.add_argument("--pyro", metavar="FILE.py:MODEL", help="the Pyro version")
    check.add_argument(
        "--data",
        required=True,
        help="DATA.npz or DATA.json (keyword arguments), or FILE.py:FUNCTION returning (args, kwargs), a "
        "dict of keyword arguments, or the dict of a model(data)",
    )
    check.add_argument("--name", help="the model's name in results and reports (default: the file's name)")
    check.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="fixed values passed as keyword arguments, or as params to model(data, params) (TOML: n=50)",
    )
    check.add_argument("--guides", nargs="+", help="guide families (default: mean_field full_rank)")
    check.add_argument(
        "--guide",
        action="append",
        default=[],
        metavar="FILE.py:GUIDE",
        help="your own NumPyro or Pyro guide, taking the model's arguments and sampling its latent sites "
        "(repeatable; "
        "with no --guides, only your guides are fitted)",
    )
    check.add_argument("--backends", nargs="+", help="backends (default: the library of each model given)")
    check.add_argument("--seeds", nargs="+", type=int, default=[0], help="SVI seeds (default: 0)")
    check.add_argument("--steps", type=int, help="SVI steps (default: the references profile's, 3000)")
    check.add_argument(
        "--estimators", nargs="*", help="estimators on each fit (default: the references profile's)"
    )
    check.add_argument(
        "--nuts",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="NUTS settings of the reference (e.g. draws=500)",
    )
    check.add_argument("--out", help="results folder (default: results/check-<name>)")
    check.add_argument("--report", help="report folder (default: reports/check-<name>)")
    check.add_argument("--no-report", action="store_true", help="do not write the report")
    check.add_argument("--jobs", type=int, help="worker processes (default: the number of cores)")
    check.add_argument("--fresh", action="store_true", help="refit every cell stored in --out")
    check.add_argument(
        "--recheck",
        action="store_true",
        help="check in full even where nothing changed since the last check (its memo, kept/check/memo.json, "
        "cannot see files your code reads nor modules imported from a computed name)",
    )
    check.set_defaults(handler=command)
    return check


def command(args: argparse.Namespace) -> int:
    """Run ``check`` on the command line's arguments; bad input is a ``matrix.ConfigError`` (exit 2)."""
    from ppl_suite import matrix
    from ppl_suite.checking.api import CheckFailed, CheckStopped, check
    from ppl_suite.checking.sources import InputProblem, command_option
    from ppl_suite.references.command import parse_settings

    params, problems = parse_settings(args.set)
    nuts, nuts_problems = parse_settings(args.nuts)
    problems += [problem.replace("--set", "--nuts") for problem in nuts_problems]
    if args.model is None and args.numpyro is None and args.pyro is None:
        problems.append("no model given: FILE.py:MODEL, or --numpyro and/or --pyro FILE.py:MODEL")
    if problems:
        raise matrix.ConfigError(problems)
    try:
        result = check(
            args.model, args.data, pyro=args.pyro, numpyro=args.numpyro,
            guides=[*(args.guides or ()), *args.guide] or None,
            backend=args.backends, name=args.name, params=params, seeds=args.seeds, steps=args.steps,
            estimators=args.estimators, nuts=nuts, out=args.out,
            report=False if args.no_report else args.report, jobs=args.jobs, fresh=args.fresh,
            recheck=args.recheck,
            progress=True, option=command_option,
        )  # fmt: skip
    except InputProblem as error:
        raise matrix.ConfigError(error.problems) from None
    except CheckFailed as error:
        print(f"ppl-suite: check failed: {error}", file=sys.stderr)
        return 3
    except CheckStopped as stopped:  # the finished cells are kept; the code says which signal came
        return stopped.result.exit_code
    table = result.table.drop(columns="key")
    if not table.empty:
        print("\n" + table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"\nresults: {result.folder}")
    return result.exit_code
