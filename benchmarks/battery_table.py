"""The battery's table (issue 23): every script of ``tests/battery/`` run at check's default options in a
fresh subprocess, as ``tests/test_battery.py`` runs it (its helpers), with empty reference and XLA
caches, so each script pays what a new user's first check pays (NUTS reference, its remedies, AIS,
compilation, the fits). Prints, as Markdown:

- per script: exit code, wall seconds, CPU seconds of the child (user + system,
  ``resource.getrusage(RUSAGE_CHILDREN)``);
- per cell: model, library, guide, status, ELBO ± SE, log p(x) ± SE, KL ± SE, k-hat and the cell's
  seconds (``wall_seconds``: fit, evaluation and estimators), read back with ``check_table``;
- where a script's model has a closed-form evidence (the GLMs): how many SE each log p(x) is from it;
- the reference's progress lines each script printed (``progress=True``: each attempt, its remedy,
  its gates), e.g. the remedies tried on the centered eight schools.

``progress=True`` only prints; every other option is check's default.

    .venv/bin/python benchmarks/battery_table.py [SCRIPT ...] [--out FILE] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import math
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.test_battery import SCRIPTS, glm_log_evidence, run_script, table_of  # noqa: E402

OPTIONS = {"report": False, "progress": True}  # check's defaults; progress only prints
CLOSED_FORM_EVIDENCE = ("glm_positional", "glm_positional_pyro")
PROGRESS_LINE = re.compile(r"^reference \S+, attempt \d+ ")  # ReferenceProgress.text
HEARTBEAT = "still running"  # the RUNNING phase's line, every 10 s: left out
TIMED_OUT = 124  # the exit code recorded for a script stopped at --timeout, as timeout(1) gives


@dataclass
class ScriptRun:
    """One battery script's run: exit code, seconds, its table's Markdown rows, the reference's
    progress lines, and the lines comparing log p(x) with a closed form."""

    name: str
    exit_code: int
    wall: float
    cpu: float
    rows: list[str] = field(default_factory=list)
    progress: list[str] = field(default_factory=list)
    exact: list[str] = field(default_factory=list)
    error: str = ""


def _pm(value: float, se: float, digits: int = 3) -> str:
    return "" if math.isnan(value) else f"{value:.{digits}f} ± {se:.{digits}f}"


def _cell_rows(name: str, folder: Path) -> tuple[list[str], list[str]]:
    """The Markdown rows of a finished script's check table, and its log p(x)'s distance to the closed
    form where the model has one."""
    from ppl_suite import results, schema

    table = table_of(folder, name)
    (results_folder,) = (folder / "results").glob(f"check-{name}*")
    seconds = results.load(results_folder).set_index(schema.KEY)[schema.WALL_SECONDS]
    exact = glm_log_evidence(name) if name in CLOSED_FORM_EVIDENCE else None
    rows, distances = [], []
    for row in table.sort_values([schema.BACKEND, schema.GUIDE]).itertuples():
        rows.append(
            f"| {name} | {row.backend} | {row.guide} | {row.status} | {_pm(row.elbo, row.elbo_se)} | "
            f"{_pm(row.log_evidence, row.log_evidence_se)} | {_pm(row.kl, row.kl_se)} | {row.k_hat:.2f} | "
            f"{seconds[row.key]:.1f} |"
        )
        if exact is not None:
            distances.append(
                f"- {name} {row.backend} {row.guide}: log p(x) {row.log_evidence:.4f} ± "
                f"{row.log_evidence_se:.4f} against the exact {exact:.4f}: "
                f"{(row.log_evidence - exact) / row.log_evidence_se:+.2f} SE"
            )
    return rows, distances


def run_one(name: str, scratch: Path, timeout: float) -> ScriptRun:
    """Run the script ``name`` in ``scratch/name`` with the caches under ``scratch/caches-name``."""
    folder = scratch / name
    folder.mkdir()
    caches = scratch / f"caches-{name}"
    environment = {
        "PPL_SUITE_REFERENCE_CACHE": str(caches / "references"),
        "PPL_SUITE_XLA_CACHE": str(caches / "xla"),
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        done = run_script(name, folder, OPTIONS, timeout=timeout, environment=environment)
    except subprocess.TimeoutExpired as expired:
        # TimeoutExpired holds bytes whatever ``text=`` said
        output = "\n".join(
            part.decode(errors="replace") if isinstance(part, bytes) else part or ""
            for part in (expired.stdout, expired.stderr)
        )
        done = subprocess.CompletedProcess(expired.cmd, TIMED_OUT, output, f"timed out after {timeout:.0f} s")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    (folder / "output.txt").write_text(done.stdout + "\n" + done.stderr)
    lines = (done.stdout + done.stderr).splitlines()
    run = ScriptRun(
        name,
        done.returncode,
        wall,
        cpu,
        progress=[s for s in lines if PROGRESS_LINE.match(s) and HEARTBEAT not in s],
    )
    if done.returncode != 0:
        run.error = done.stderr[-2000:]
        return run
    try:
        run.rows, run.exact = _cell_rows(name, folder)
    except Exception as error:  # a table that cannot be read back is reported, the other scripts still run
        run.error = f"its table could not be read back: {error!r}"
    return run


def markdown(runs: list[ScriptRun]) -> str:
    """The scripts' table, the cells' table, the closed-form comparisons and the progress lines."""
    out = ["| script | exit | wall s | CPU s |", "|---|---|---|---|"]
    out += [f"| {r.name} | {r.exit_code} | {r.wall:.1f} | {r.cpu:.1f} |" for r in runs]
    out += ["", "| model | library | guide | status | ELBO ± SE | log p(x) ± SE | KL ± SE | k̂ | cell s |"]
    out += ["|---|---|---|---|---|---|---|---|---|"]
    out += [row for r in runs for row in r.rows]
    exact = [line for r in runs for line in r.exact]
    if exact:
        out += ["", "log p(x) against the closed-form evidence:", *exact]
    for r in runs:
        if r.progress:
            out += ["", f"The reference's progress, {r.name}:", "```", *r.progress, "```"]
        if r.error:
            out += ["", f"{r.name} exited {r.exit_code}; the end of its stderr:", "```", r.error, "```"]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scripts", nargs="*", help=f"default: every script ({', '.join(SCRIPTS)})")
    parser.add_argument("--out", type=Path, help="also write the Markdown to this file")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds one script may run")
    parser.add_argument("--keep", type=Path, help="an empty or new folder to keep the runs' folders in")
    options = parser.parse_args()
    unknown = sorted(set(options.scripts) - set(SCRIPTS))
    if unknown:
        parser.error(f"no battery script {unknown}; the scripts are {SCRIPTS}")
    if options.keep is not None and options.keep.exists() and any(options.keep.iterdir()):
        parser.error(f"--keep {options.keep} is not empty: give an empty or new folder")
    runs = []
    with tempfile.TemporaryDirectory(prefix="battery-table-") as temporary:
        scratch = options.keep or Path(temporary)
        scratch.mkdir(parents=True, exist_ok=True)
        for name in options.scripts or SCRIPTS:
            runs.append(run_one(name, scratch, options.timeout))
            print(f"{name}: exit {runs[-1].exit_code}, {runs[-1].wall:.0f} s", file=sys.stderr, flush=True)
    text = markdown(runs)
    print(text, end="")
    if options.out is not None:
        options.out.write_text(text)


if __name__ == "__main__":
    main()
