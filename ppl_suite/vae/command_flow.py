"""The study commands' shared flow (``ppl-suite vae``, ``ppl_suite.vae.command``, and with --model
vqvae_digits ``ppl_suite.vqvae.command``): the results folder locked, the study run into it and
recorded in its manifest, the summary printed, the report written."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_command(
    args: argparse.Namespace,
    settings_from_args: Callable[[argparse.Namespace], Any],
    run_in: Callable[[Any, Any, list[str]], dict[str, Any]],
    summary_lines: Callable[[dict[str, Any]], list[str]],
    failed: Callable[[dict[str, Any]], bool],
    studies: str,
    name: str,
) -> int:
    """A study command's flow: the settings from the flags, the --out folder locked, the temporary files
    of an interrupted run removed, with --fresh the earlier ``studies``' files too, ``run_in`` it, the
    summary and the ``name`` tables' folder printed, the report written unless --no-report. Exit 1 when
    ``failed``; bad settings, an unusable or busy folder are a ``matrix.ConfigError`` (exit 2)."""
    from ppl_suite import matrix
    from ppl_suite.numerics import setup
    from ppl_suite.store import FolderBusy, ResultsStore
    from ppl_suite.vae import results as r
    from ppl_suite.vae.settings import SettingsError

    setup(one_thread=False)  # float64 in JAX and torch before anything computes; XLA's threads left alone
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
                print(f"--fresh: removed {removed} files of earlier {studies} from {store.path}")
            tables = run_in(store, settings, sys.argv)
    except FolderBusy as error:
        raise matrix.ConfigError([str(error)]) from None
    print("\n".join(summary_lines(tables)))
    print(f"\n{name} tables: {Path(store.path) / r.FOLDER}")
    if not args.no_report:
        from ppl_suite.report.render import write_report

        folder = Path(args.report) if args.report else Path("reports") / Path(args.out).resolve().name
        for kind, path in write_report(store.path, folder).items():
            print(f"report ({kind}): {path}")
    return 1 if failed(tables) else 0


def run_recorded(
    store: Any, command: list[str], config: dict[str, Any], key: str, run: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """``run()``'s tables, the study recorded in ``store``'s manifest under ``key`` (``config``: the
    settings by name). A new folder gets a manifest of its own; a results folder of an earlier run
    keeps its manifest, with the study's entry added."""
    from ppl_suite import schema
    from ppl_suite.provenance import git_commit, versions
    from ppl_suite.store import now

    existing = store.manifest() if store.is_results_folder() else {}
    entry = {
        schema.MANIFEST_COMMAND: command,
        schema.MANIFEST_CONFIG: {name: dataclasses.asdict(value) for name, value in config.items()},
        schema.MANIFEST_STARTED: now(),
    }
    base = existing or {
        **entry,
        schema.MANIFEST_VERSIONS: versions(),
        schema.MANIFEST_GIT_COMMIT: git_commit(),
    }
    store.write_manifest(base | {key: entry})
    tables = run()
    finished = {} if existing else {schema.MANIFEST_FINISHED: now()}
    store.write_manifest(base | {key: entry | {schema.MANIFEST_FINISHED: now()}} | finished)
    return tables
