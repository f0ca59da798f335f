"""End to end, at default sizes: the NUTS reference (with its remedies) and the AIS log p(x) of the
battery's 10-latent varying-intercept model given only in Pyro (``benchmarks/pyro_only_models.py``),
then the AIS log p(x) of its NumPyro twin, in a fresh reference cache; prints seconds, each attempt,
and how far apart the two evidences are in combined standard errors.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_pyro_reference.py [--eager] [--budget S]

``--eager``: the torch density evaluated in Python on every call (the path before
``targets.torch_compiled``), for a before/after comparison. ``--budget S``: the reference's time
budget for its remedies (``NUTSSettings.budget_seconds``; default settings otherwise).
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.pyro_only_models import varying_intercept
from ppl_suite.numerics import setup
from ppl_suite.references.evidence import log_evidence
from ppl_suite.references.gates import ReferenceGateError
from ppl_suite.references.reference import reference_for
from ppl_suite.references.settings import settings_for
from ppl_suite.targets.pyro_target import PyroTarget


def _say(progress) -> None:
    if progress.phase != "running":
        print(progress.text, flush=True)


def main(arguments: list[str]) -> int:
    setup(own_process=True)
    if "--eager" in arguments:
        PyroTarget.__init__.__defaults__ = (None, False, ())  # reference, compiled, non_centered
    pyro_problem = varying_intercept("pyro")
    settings = settings_for(pyro_problem.spec)
    if "--budget" in arguments:
        settings = replace(settings, budget_seconds=float(arguments[arguments.index("--budget") + 1]))
    evidence = {}
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        try:
            reference = reference_for(pyro_problem, settings, cache_dir=Path(cache), on_progress=_say)
        except ReferenceGateError as error:
            print(f"Pyro-only reference failed its gates after {time.perf_counter() - start:.0f} s: {error}")
            reference = None
        if reference is not None:
            summary = reference.summary
            attempts = [(a["label"], round(a["seconds"])) for a in summary["attempts"]]
            print(
                f"Pyro-only reference: NUTS {summary['nuts_seconds']:.0f} s, "
                f"AIS {summary['evidence_seconds']:.0f} s, attempts {attempts}"
            )
            evidence["pyro"] = (reference.log_evidence, reference.log_evidence_se)
    if "pyro" not in evidence:
        start = time.perf_counter()
        ais = log_evidence(pyro_problem, 0)["ais"]
        print(f"Pyro-only AIS alone: {time.perf_counter() - start:.0f} s, {ais['temperatures']} temperatures")
        evidence["pyro"] = (ais["value"], ais["se"])
    start = time.perf_counter()
    ais = log_evidence(varying_intercept("numpyro"), 0)["ais"]
    print(f"NumPyro twin AIS: {time.perf_counter() - start:.0f} s, {ais['temperatures']} temperatures")
    evidence["numpyro"] = (ais["value"], ais["se"])
    (a, sa), (b, sb) = evidence["pyro"], evidence["numpyro"]
    z = (a - b) / math.hypot(sa, sb)
    print(f"log p(x): Pyro-only {a:.3f} ± {sa:.3f}, NumPyro twin {b:.3f} ± {sb:.3f}: {z:+.2f} combined SE")
    return 0 if abs(z) <= 4 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
