"""Training the digits VAE: wall time per backend at the default settings, and the cost of a step
against the training-set size (a benchmark, not a test).

    .venv/bin/python benchmarks/bench_vae_training.py [--steps 15000] [--sweep 200,400,800,1297]

1. Each backend trains at the default ``TrainingSettings`` (or ``--steps``) from the same weights and
   minibatches, one thread; the table gives the training loop's wall and CPU seconds (compilation
   apart: the JAX backends compile ahead of time, Pyro's first step creates the parameters; on a
   machine whose cores are shared the CPU time is the steadier figure), steps per CPU second, and
   the trained VAE's test ELBO per image, mean over the 500 test images of
   (1/P) sum_p [log p(x, z_p) - log q(z_p | x)] with P = ``--particles`` draws (network.py), with its
   Monte Carlo SE (the images are fixed; the SE is the draws' alone).
2. Per-step cost against N: training on the first N training images (N from ``--sweep``) with a
   fixed batch of 100 for ``--sweep-steps`` steps (Pyro a tenth of them); the exponent a of
   CPU seconds per step ~ N^a by least squares on the log-log points. A subsampled plate touches B images
   per step, so a ~ 0 is expected.
"""

from __future__ import annotations

import argparse
import dataclasses

from ppl_suite.numerics import setup

setup()  # float64, one thread for XLA and torch: one core

import numpy as np  # noqa: E402

from models.vae_digits import network  # noqa: E402
from models.vae_digits.data import load  # noqa: E402
from ppl_suite.vae.training import BACKENDS, TrainingSettings, train  # noqa: E402

EVAL_CHUNK = 100  # draws per chunk of the test ELBO (500 images x 100 draws x 64 hidden at a time)


def test_elbo(
    weights: dict[str, np.ndarray], test: np.ndarray, particles: int, seed: int = 0
) -> tuple[float, float]:
    """Mean over test images of the ELBO per image, and its Monte Carlo SE."""
    rng = np.random.default_rng(seed)
    latent_dim = weights["enc_b_loc"].shape[0]
    chunks = [
        network.elbo_terms(weights, test, rng.normal(size=(EVAL_CHUNK, *test.shape[:-1], latent_dim)))
        for _ in range(-(-particles // EVAL_CHUNK))
    ]
    terms = np.concatenate(chunks)[:particles]  # (P, images)
    per_image_var = terms.var(axis=0, ddof=1) / len(terms)
    return float(terms.mean()), float(np.sqrt(per_image_var.sum()) / test.shape[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=TrainingSettings.steps)
    parser.add_argument("--particles", type=int, default=2000)
    parser.add_argument("--sweep", default="200,400,800,1297")
    parser.add_argument("--sweep-steps", type=int, default=3000)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args()
    backends = args.backends.split(",")
    data = load()

    settings = TrainingSettings(steps=args.steps)
    print(f"training at {settings} (one thread)")
    header = ("backend", "wall s", "cpu s", "compile s", "steps/cpu s", "final loss/N", "test ELBO")
    print("{:<11} {:>7} {:>7} {:>9} {:>11} {:>12} {:>18}".format(*header))
    for backend in backends:
        run = train(backend, data, settings)
        elbo, se = test_elbo(run.weights, data.test, args.particles)
        timed = settings.steps - (backend == "pyro")  # Pyro's first step is timed apart
        final = run.losses[-100:].mean() / len(data.train)
        print(f"{backend:<11} {run.seconds:>7.1f} {run.cpu_seconds:>7.1f} {run.compile_seconds:>9.1f} "
              f"{timed / run.cpu_seconds:>11.0f} {final:>12.3f} {elbo:>10.3f} ± {se:.3f}")  # fmt: skip

    sizes = [int(n) for n in args.sweep.split(",")]
    sweep = f"batch 100; {args.sweep_steps} steps, Pyro a tenth"
    print(f"\nCPU seconds per step against the training-set size N ({sweep})")
    print(f"{'backend':<11} " + " ".join(f"{'N=' + str(n):>9}" for n in sizes) + f" {'exponent':>9}")
    for backend in backends:
        steps = args.sweep_steps // 10 if backend == "pyro" else args.sweep_steps
        per_step = []
        for n in sizes:
            subset = dataclasses.replace(data, train=data.train[:n], train_labels=data.train_labels[:n])
            run = train(backend, subset, TrainingSettings(steps=steps, checkpoints=(steps,)))
            per_step.append(run.cpu_seconds / (steps - (backend == "pyro")))
        exponent = np.polyfit(np.log(sizes), np.log(per_step), 1)[0]
        cells = " ".join(f"{1e3 * t:>7.3f}ms" for t in per_step)
        print(f"{backend:<11} {cells} {exponent:>9.3f}")


if __name__ == "__main__":
    main()
