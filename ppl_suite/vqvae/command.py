"""``ppl-suite vae --model vqvae_digits``: the VQ-VAE study (``ppl_suite.vqvae.study``) with the
``vae`` command's flags (``ppl_suite.vae.command``): --out, --backends, --steps, --n-test, --quick,
--fresh, --report, --no-report; the ``vqvae`` profile's settings otherwise."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

OPTIONS_OF_THE_VAE = ("latent_dim",)  # flags of the Gaussian VAE that the VQ-VAE has not


def settings_from_args(args: argparse.Namespace) -> Any:
    """The vqvae profile's settings with the command line's overrides; SettingsError lists every problem."""
    from ppl_suite import matrix
    from ppl_suite.vae.settings import SettingsError
    from ppl_suite.vqvae import settings as vq_settings

    config = matrix.load("vqvae")
    table = dict(config.get("vqvae", {}))
    table.setdefault("backends", config.get("backends"))
    training = dict(table.get("training", {}))
    wrong = [
        f"--{name.replace('_', '-')}" for name in OPTIONS_OF_THE_VAE if getattr(args, name, None) is not None
    ]
    if wrong:
        raise SettingsError([f"{', '.join(wrong)}: not a setting of vqvae_digits (see the vqvae profile)"])
    if args.backends is not None:
        table["backends"] = args.backends
    if args.n_test is not None:
        table["n_test"] = args.n_test
    if args.steps is not None:
        training["steps"] = args.steps
    table["training"] = training
    settings = vq_settings.from_table(table)
    if args.quick:
        quick = vq_settings.quick(settings)
        if args.n_test is not None:
            quick = dataclasses.replace(quick, n_test=settings.n_test)
        if args.steps is not None:
            quick = dataclasses.replace(quick, training={**quick.training, "steps": args.steps})
        settings = quick.checked()
    return settings


def run_in(store: Any, settings: Any, command: list[str], log=print) -> dict[str, Any]:
    """Run the study into ``store`` (held locked by the caller); the manifest gains the study's entry."""
    from ppl_suite.vae.command_flow import run_recorded
    from ppl_suite.vqvae import results as r
    from ppl_suite.vqvae.study import run_study

    return run_recorded(
        store,
        command,
        {"vqvae": settings},
        r.MANIFEST_VQVAE,
        lambda: run_study(settings, store.path, log=log),
    )


def summary_lines(tables: dict[str, Any]) -> list[str]:
    """Per backend and objective: the final test log p, ELBO and KL (exact), and the training's cost."""
    from ppl_suite.vqvae import results as r

    runs = tables["vqvae_runs"]
    shown = [r.BACKEND, r.OBJECTIVE, r.STATUS, r.LOG_EVIDENCE, r.ELBO, r.KL, r.KL_NEAREST, r.TRAINING_SECONDS]
    return [runs[shown].to_string(index=False, float_format=lambda v: f"{v:.3f}")]


def failed(tables: dict[str, Any]) -> bool:
    """Whether some run failed."""
    from ppl_suite.vqvae import results as r

    return bool((tables["vqvae_runs"][r.STATUS] != r.OK).any())


def command(args: argparse.Namespace) -> int:
    """Run ``ppl-suite vae --model vqvae_digits``; bad input is a ``matrix.ConfigError`` (exit 2)."""
    from ppl_suite.vae.command_flow import run_command

    return run_command(
        args, settings_from_args, run_in, summary_lines, failed, "VAE and VQ-VAE studies", "VQ-VAE"
    )
