"""Speed of ``ppl_suite.diagnose`` on a user's AutoNormal fit (a benchmark, not a test).

    .venv/bin/python benchmarks/bench_diagnose.py [--groups 8] [--draws 4000] [--runs 2] [--cache DIR]

A varying-intercept model written as NumPyro's docs write one (``model(x, group, n_groups, y=None)``,
the group intercepts in a plate; groups + 2 latents: 10 by default) is fitted with NumPyro's SVI and
an AutoNormal, then diagnosed in ``--runs`` fresh processes one after the other, sharing one reference
cache (a new temporary folder unless ``--cache`` names one): the first builds the NUTS reference and
its AIS evidence, the next ones load it. Each row: the process's seconds in all (imports, the fit and
diagnose), the fit's, diagnose's own, and whether the reference was loaded from the cache. The issue's
target: diagnose with a cached reference within 15 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--draws", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def model(x, group, n_groups, y=None):
    import numpyro
    import numpyro.distributions as dist

    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfNormal(2.0))
    with numpyro.plate("groups", n_groups):
        a = numpyro.sample("a", dist.Normal(mu, tau))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Normal(a[group] + 0.5 * x, 1.0), obs=y)


def child(args: argparse.Namespace) -> None:
    """One process: fit, then diagnose; prints one JSON line of timings."""
    start = time.perf_counter()
    import jax
    import numpy as np
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal

    import ppl_suite

    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(0)
    group = rng.integers(0, args.groups, 10 * args.groups)
    x = rng.normal(size=group.size)
    y = rng.normal(1.0, 0.7, args.groups)[group] + 0.5 * x + rng.normal(size=group.size)
    fit_start = time.perf_counter()
    guide = AutoNormal(model)
    svi = SVI(model, guide, numpyro.optim.Adam(0.02), Trace_ELBO())
    params = svi.run(jax.random.PRNGKey(0), 3000, x, group, args.groups, y=y, progress_bar=False).params
    fit = time.perf_counter() - fit_start
    cached = any(args.cache.glob("*.nc"))
    diagnose_start = time.perf_counter()
    found = ppl_suite.diagnose(
        model,
        guide,
        params,
        args=(x, group, args.groups),
        kwargs={"y": y},
        draws=args.draws,
        cache=args.cache,
    )
    seconds = time.perf_counter() - diagnose_start
    print(json.dumps({
        "process": time.perf_counter() - start, "fit": fit, "diagnose": seconds, "cached": cached,
        "summary": str(found),
    }))  # fmt: skip


def main() -> None:
    args = parse()
    if args.child:
        return child(args)
    with tempfile.TemporaryDirectory(prefix="bench-diagnose-") as scratch:
        cache = args.cache or Path(scratch)
        print(f"{'run':>3} {'cached':>6} {'process s':>9} {'fit s':>6} {'diagnose s':>10}")
        last = ""
        for run in range(args.runs):
            command = [sys.executable, __file__, "--child", "--groups", str(args.groups), "--draws",
                       str(args.draws), "--cache", str(cache)]  # fmt: skip
            out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            times = f"{row['process']:>9.1f} {row['fit']:>6.1f} {row['diagnose']:>10.1f}"
            print(f"{run:>3} {row['cached']!s:>6} {times}")
            last = row["summary"]
        print(last)


if __name__ == "__main__":
    main()
