"""Cost of the VAE evaluation (a benchmark, not a test): AIS per test image, IWAE-K, the q* fit, and
the evaluation's peak memory.

    .venv/bin/python benchmarks/bench_vae_evaluation.py [--images 50 100 500] [--steps 2000]
        [--chains 64] [--temperatures 4000] [--leapfrog-steps 5] [--k 5000] [--threads 2]

Trains the digits VAE with the hand-rolled backend for ``--steps`` steps (the trained decoder's
posteriors are narrower than the initial one's, so its AIS schedules are longer), tunes the AIS
schedule once on the first two test images (the pilot, timed apart), then for each image count n in
``--images`` times, after a compiling warm-up at that n: forward AIS of the first n test images with
reruns of the images below the reliability threshold (``image_ais``), IWAE and the encoder's ELBO
with K draws per image, and the q* fit. Prints one row per n, then the scaling exponent of each cost
in n (least squares of log seconds on log n) and the process's peak resident memory
(``resource.getrusage``: the maximum RSS of the whole process, JAX's buffers included).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[50, 100, 500])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--chains", type=int, default=64)
    parser.add_argument("--temperatures", type=int, default=4000)
    parser.add_argument("--leapfrog-steps", type=int, default=5)
    parser.add_argument("--k", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=2, help="XLA CPU threads (1: one thread)")
    return parser.parse_args()


ARGS = parse()
if ARGS.threads == 1:
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppl_suite.numerics import setup  # noqa: E402

setup(one_thread=ARGS.threads == 1)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from models.vae_digits import data as digits_data  # noqa: E402
from models.vae_digits import network  # noqa: E402
from ppl_suite.vae.best_guide import FitSettings, GuideFitter  # noqa: E402
from ppl_suite.vae.evaluation import digits_model  # noqa: E402
from ppl_suite.vae.image_ais import ImageAnnealer, forward_with_reruns, tune_schedule  # noqa: E402
from ppl_suite.vae.image_iwae import ImageWeights, proposal_estimates  # noqa: E402
from ppl_suite.vae.latent import as_jax  # noqa: E402
from ppl_suite.vae.settings import VAEAISSettings  # noqa: E402
from ppl_suite.vae.training import TrainingSettings, train  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kilobytes on Linux


def main() -> None:
    data = digits_data.load()
    settings = TrainingSettings(steps=ARGS.steps)
    start = time.perf_counter()
    trained = train("handrolled", data, settings)
    print(
        f"trained {ARGS.steps} steps (handrolled) in {time.perf_counter() - start:.1f} s; "
        f"RSS {peak_rss_mb():.0f} MB"
    )
    model = digits_model(settings.latent_dim)
    theta = as_jax(trained.weights, network.DECODER)
    config = VAEAISSettings(
        temperatures=ARGS.temperatures, chains=ARGS.chains, leapfrog_steps=ARGS.leapfrog_steps
    )
    annealer, weights = ImageAnnealer(model, config.leapfrog_steps), ImageWeights(model)
    fitter = GuideFitter(model, FitSettings())
    start = time.perf_counter()
    schedule = tune_schedule(model, theta, data.test[:2], config, jax.random.PRNGKey(0)).schedule
    print(f"pilot on 2 images: {schedule.temperatures} temperatures in {time.perf_counter() - start:.1f} s")
    print("images  AIS s  reruns  unreliable  IWAE-K s  q* s (steps)  peak RSS MB")
    rows = []
    for n in ARGS.images:
        x = data.test[:n]
        loc, scale = (np.asarray(a) for a in network.encode(trained.weights, x))
        forward_with_reruns(annealer, theta, x, schedule, config, jax.random.PRNGKey(1))  # compiles at n
        estimates, temperatures, ais_seconds = forward_with_reruns(
            annealer, theta, x, schedule, config, jax.random.PRNGKey(2)
        )
        proposal_estimates(weights, theta, x, loc, scale, ARGS.k, jax.random.PRNGKey(3))
        iwae = proposal_estimates(weights, theta, x, loc, scale, ARGS.k, jax.random.PRNGKey(4))
        fitter.fit(theta, x, loc, scale, jax.random.PRNGKey(5))
        best = fitter.fit(theta, x, loc, scale, jax.random.PRNGKey(6))
        reruns = int(np.sum(temperatures > schedule.temperatures))
        rows.append((n, ais_seconds, iwae.seconds, best.seconds))
        print(
            f"{n:6d} {ais_seconds:6.1f} {reruns:7d} {int(estimates.unreliable.sum()):11d} "
            f"{iwae.seconds:9.1f} "
            f"{best.seconds:6.1f} ({best.steps}) {peak_rss_mb():12.0f}"
        )
    if len(rows) > 1:
        table = np.array(rows)
        for j, name in ((1, "AIS"), (2, "IWAE-K"), (3, "q*")):
            slope = np.polyfit(np.log(table[:, 0]), np.log(table[:, j]), 1)[0]
            print(f"{name}: seconds ~ n^{slope:.2f}")
    print(f"peak RSS of the process: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
