"""``ppl-suite vae``: train the digits VAE with each backend and evaluate it (``ppl_suite.vae.study``).
The flags give the study's settings; the runner (``runner.run`` with a plan of this study alone)
locks the results folder, runs the study into it, records it in the manifest and writes the report;
``console.StudyPrinter`` prints its events. With --model vqvae_digits, the VQ-VAE study likewise
(``ppl_suite.vqvae.command``).

Exit codes are the runner's: 0 every backend trained and was evaluated, 1 some backend failed (the
others were written), 2 bad input (every problem listed, nothing run) or the folder is in use, 4
internal error.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

MODELS = ("vae_digits", "vqvae_digits")
DESCRIPTION = """\
Trains the VAE of binarized 8x8 digits (models/vae_digits) with Pyro, NumPyro and the hand-rolled
backend from the same initial weights and minibatch order, then evaluates each on the test images:
log p(x) by AIS per image (± SE), IWAE-K, the encoder's ELBO, KL = log p - ELBO, PSIS k-hat, the
approximation and amortization gaps (q* fitted per image), log p, ELBO and KL at training checkpoints,
BDMC on simulated images, and the backends' agreement in SE units. Writes the tables under
RESULTS/vae/ (ppl_suite.vae.results reads them) and the report.

With --model vqvae_digits: the VQ-VAE (models/vqvae_digits), whose log p(x), ELBO and KL(q || p(z|x))
are exact sums over its K^L codes, trained by the enumerated ELBO, the score-function ELBO and the
VQ-VAE loss with each backend; the vqvae profile's settings (ppl_suite.vqvae), the same flags."""


def add_parser(subparsers: Any, epilog: str = "") -> argparse.ArgumentParser:
    """Add the ``vae`` subcommand to ``subparsers`` (of the ``ppl-suite`` parser); returns it."""
    vae = subparsers.add_parser(
        "vae",
        help="train and evaluate the digits VAE: evidence by AIS, the inference-gap decomposition",
        description=DESCRIPTION,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    vae.add_argument(
        "--model",
        choices=MODELS,
        default=MODELS[0],
        help="vae_digits (the Gaussian VAE, profile vae) or vqvae_digits (the VQ-VAE, exact by "
        "enumeration, profile vqvae; ppl_suite.vqvae)",
    )
    vae.add_argument("--out", default=None, help="results folder (default: results/vae, or results/vqvae)")
    vae.add_argument("--backends", nargs="+", help="backends (default: pyro numpyro handrolled)")
    vae.add_argument("--latent-dim", type=int, help="latent dimension d (default: the vae profile's)")
    vae.add_argument("--steps", type=int, help="training steps (default: the vae profile's)")
    vae.add_argument("--n-test", type=int, help="test images evaluated (default: 500)")
    vae.add_argument("--quick", action="store_true", help="a small study for a first look (a few minutes)")
    vae.add_argument(
        "--fresh",
        action="store_true",
        help="first remove the study's tables and kept work from --out (trained weights, evaluated rows)",
    )
    vae.add_argument("--report", help="report folder (default: reports/<results folder name>)")
    vae.add_argument("--no-report", action="store_true", help="do not write the report")
    vae.set_defaults(handler=command)
    return vae


def settings_from_args(args: argparse.Namespace) -> Any:
    """The vae profile's settings with the command line's overrides; SettingsError lists every problem."""
    from ppl_suite import matrix
    from ppl_suite.vae import settings as vae_settings

    table = dict(matrix.load("vae").get("vae", {}))
    training = dict(table.get("training", {}))
    if args.backends is not None:
        table["backends"] = args.backends
    if args.n_test is not None:  # the checkpoint subset is the first test images: at most n_test
        table["n_test"] = args.n_test
        table["checkpoint_images"] = min(table.get("checkpoint_images", args.n_test), args.n_test)
    if args.latent_dim is not None:
        training["latent_dim"] = args.latent_dim
    if args.steps is not None:
        training["steps"] = args.steps
    table["training"] = training
    settings = vae_settings.from_table(table)
    if args.quick:
        quick = vae_settings.quick(settings)
        if args.n_test is not None:
            quick = dataclasses.replace(
                quick, n_test=settings.n_test, checkpoint_images=min(quick.checkpoint_images, settings.n_test)
            )
        if args.steps is not None:
            quick = dataclasses.replace(quick, training={**quick.training, "steps": args.steps})
        settings = quick.checked()
    return settings


def command(args: argparse.Namespace) -> int:
    """Run ``ppl-suite vae``; bad input is a ``matrix.ConfigError`` (exit 2)."""
    if args.model == "vqvae_digits":
        from ppl_suite.vqvae.command import settings_from_args as vqvae_settings

        args.out = args.out or "results/vqvae"
        return run_command(args, "vqvae", vqvae_settings)
    args.out = args.out or "results/vae"
    return run_command(args, "vae", settings_from_args)


def run_command(
    args: argparse.Namespace, study: str, settings_from_args: Callable[[argparse.Namespace], Any]
) -> int:
    """A study command: the settings from the flags, then ``study`` alone through the runner into --out
    (the temporary files of an interrupted run removed, with --fresh the study's earlier tables and
    kept work too), its summary and its tables' folder printed, the report written unless --no-report.
    Exit 1 when some part of it failed; bad settings, an unusable or busy folder are a
    ``matrix.ConfigError`` (exit 2)."""
    from ppl_suite import console, matrix, runner
    from ppl_suite.numerics import setup
    from ppl_suite.store import ResultsStore
    from ppl_suite.vae.settings import SettingsError

    setup(one_thread=False)  # float64 in JAX and torch before anything computes; XLA's threads left alone
    try:
        settings = settings_from_args(args)
    except SettingsError as error:
        raise matrix.ConfigError(error.problems) from None
    report = None if args.no_report else report_folder(args)
    plan = runner.Plan(fresh=args.fresh, report=report, command=list(sys.argv), studies={study: settings})
    store = ResultsStore(args.out)
    outcome = runner.run(plan, store, on_event=console.StudyPrinter(store.path))
    if outcome.status == runner.BAD_INPUT:
        raise matrix.ConfigError(outcome.problems)
    return outcome.exit_code


def report_folder(args: argparse.Namespace) -> Path:
    """--report, else reports/<results folder name>."""
    return Path(args.report) if args.report else Path("reports") / Path(args.out).resolve().name
