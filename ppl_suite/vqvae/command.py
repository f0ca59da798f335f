"""``ppl-suite vae --model vqvae_digits``: the VQ-VAE study's settings (``ppl_suite.vqvae.study``) from
the ``vae`` command's flags (``ppl_suite.vae.command``, which runs it): --out, --backends, --steps,
--n-test, --quick, --fresh, --report, --no-report; the ``vqvae`` profile's settings otherwise."""

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
