"""``ppl-suite vae``: train the digits VAE with each backend and evaluate it (``ppl_suite.vae.study``).

Exit codes are the runner's: 0 every backend trained and was evaluated, 1 some backend failed (the
others were written), 2 bad input (every problem listed, nothing run) or the folder is in use, 4
internal error.
"""

from __future__ import annotations

import argparse
import dataclasses
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


def run_in(store: Any, settings: Any, command: list[str]) -> dict[str, Any]:
    """Run the study into ``store`` (held locked by the caller); the manifest as ``run_recorded``'s."""
    from ppl_suite.vae import results as r
    from ppl_suite.vae.command_flow import run_recorded
    from ppl_suite.vae.study import run_study

    return run_recorded(
        store, command, {"vae": settings}, r.MANIFEST_VAE, lambda: run_study(settings, store.path, log=print)
    )


def summary_lines(tables: dict[str, Any]) -> list[str]:
    """The backends' table and the flagged disagreements, as printed lines."""
    from ppl_suite.vae import results as r

    backends = tables["backends"]
    shown = [
        r.BACKEND,
        r.STATUS,
        r.LOG_P,
        r.se(r.LOG_P),
        r.IWAE,
        r.ELBO,
        r.KL,
        r.se(r.KL),
        r.APPROXIMATION,
        r.AMORTIZATION,
    ]
    lines = [backends[shown].to_string(index=False, float_format=lambda v: f"{v:.3f}")]
    agreement = tables["agreement"]
    flagged = agreement[agreement[r.FLAGGED]] if not agreement.empty else agreement
    for row in flagged.itertuples(index=False):
        lines.append(
            f"backends differ beyond noise: {getattr(row, r.QUANTITY)} {getattr(row, r.BACKEND_A)} - "
            f"{getattr(row, r.BACKEND_B)} = {getattr(row, r.DIFFERENCE):.3f} ({getattr(row, r.Z):.1f} SE)"
        )
    return lines


def failed(tables: dict[str, Any]) -> bool:
    """Whether some backend failed."""
    from ppl_suite.vae import results as r

    return bool((tables["backends"][r.STATUS] != r.OK).any())


def command(args: argparse.Namespace) -> int:
    """Run ``ppl-suite vae``; bad input is a ``matrix.ConfigError`` (exit 2)."""
    if args.model == "vqvae_digits":
        from ppl_suite.vqvae.command import command as vqvae_command

        args.out = args.out or "results/vqvae"
        return vqvae_command(args)
    args.out = args.out or "results/vae"
    from ppl_suite.vae.command_flow import run_command

    return run_command(args, settings_from_args, run_in, summary_lines, failed, "VAE studies", "VAE")
