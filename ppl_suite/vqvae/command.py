"""``ppl-suite vae --model vqvae_digits``: the VQ-VAE study (``ppl_suite.vqvae.study``) with the
``vae`` command's flags (``ppl_suite.vae.command``): --out, --backends, --steps, --n-test, --quick,
--fresh, --report, --no-report; the ``vqvae`` profile's settings otherwise."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
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
    from ppl_suite import schema
    from ppl_suite.provenance import git_commit, versions
    from ppl_suite.store import now
    from ppl_suite.vqvae import results as r
    from ppl_suite.vqvae.study import run_study

    existing = store.manifest() if store.is_results_folder() else {}
    entry = {
        schema.MANIFEST_COMMAND: command,
        schema.MANIFEST_CONFIG: {"vqvae": dataclasses.asdict(settings)},
        schema.MANIFEST_STARTED: now(),
    }
    base = existing or {
        **entry,
        schema.MANIFEST_VERSIONS: versions(),
        schema.MANIFEST_GIT_COMMIT: git_commit(),
    }
    store.write_manifest(base | {r.MANIFEST_VQVAE: entry})
    tables = run_study(settings, store.path, log=log)
    finished = {} if existing else {schema.MANIFEST_FINISHED: now()}
    store.write_manifest(base | {r.MANIFEST_VQVAE: entry | {schema.MANIFEST_FINISHED: now()}} | finished)
    return tables


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
    from ppl_suite import matrix
    from ppl_suite.numerics import setup
    from ppl_suite.store import FolderBusy, ResultsStore
    from ppl_suite.vae.settings import SettingsError

    setup(one_thread=False)
    try:
        settings = settings_from_args(args)
    except SettingsError as error:
        raise matrix.ConfigError(error.problems) from None
    store = ResultsStore(args.out)
    if (problem := store.problem()) is not None:
        raise matrix.ConfigError([problem])
    try:
        with store.locked():
            if removed := store.clean_temporary():
                print(f"removed {removed} temporary files left by an interrupted run in {store.path}")
            if args.fresh and (removed := store.discard(vae_only=True)):
                print(f"--fresh: removed {removed} files of earlier VAE and VQ-VAE studies from {store.path}")
            tables = run_in(store, settings, sys.argv)
    except FolderBusy as error:
        raise matrix.ConfigError([str(error)]) from None
    print("\n".join(summary_lines(tables)))
    print(f"\nVQ-VAE tables: {Path(store.path) / 'vae'}")
    if not args.no_report:
        from ppl_suite.report.render import write_report

        folder = Path(args.report) if args.report else Path("reports") / Path(args.out).resolve().name
        for kind, path in write_report(store.path, folder).items():
            print(f"report ({kind}): {path}")
    return 1 if failed(tables) else 0
