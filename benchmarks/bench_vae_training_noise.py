"""How far apart two training runs of the digits VAE land when only their reparametrization noise
differs, and whether the backends differ beyond that (a benchmark, not a test).

    .venv/bin/python benchmarks/bench_vae_training_noise.py [--runs 5] [--backends numpyro,handrolled]

The backends train from the same initial weights on the same minibatches, but each draws eps from its
own stream (torch, two JAX key schedules): with eps switched off their trajectories agree to 1e-12
(tests/test_vae_training.py), so a difference between trained backends is a difference between
training runs. The study's SEs are the evaluation's alone (the trained weights held fixed). Here each
backend trains ``--runs`` times with noise seeds 0, 1, ... (``TrainingSettings.noise_seed``; same
weights and minibatches), and each trained VAE is evaluated on the first ``--images`` test images
with K = ``--draws`` encoder draws per image: the encoder's test ELBO and IWAE-K (log p from below,
within about 0.01 of AIS at K = 5 000), means over images. Per backend: the mean and the standard
deviation over runs (the training noise), beside the evaluation's SE of one run. Between backends:
the difference of the run means with SE = sqrt(sd_a^2 / R + sd_b^2 / R), in SE units.
"""

from __future__ import annotations

import argparse
import itertools

from ppl_suite.numerics import setup

setup()  # float64, one thread for XLA and torch: one core

import jax  # noqa: E402
import numpy as np  # noqa: E402

from models.vae_digits import network  # noqa: E402
from models.vae_digits.data import load  # noqa: E402
from ppl_suite.vae.evaluation import digits_encode, digits_model  # noqa: E402
from ppl_suite.vae.image_iwae import ImageWeights, proposal_estimates  # noqa: E402
from ppl_suite.vae.latent import as_jax  # noqa: E402
from ppl_suite.vae.training import TrainingSettings, train  # noqa: E402


def evaluate(weights: dict, test: np.ndarray, draws: int, evaluator: ImageWeights) -> dict[str, float]:
    """The encoder's test ELBO and IWAE-K, means over images, with their evaluation SEs."""
    loc, scale = digits_encode(weights, test)
    theta = as_jax(weights, network.DECODER)
    found = proposal_estimates(evaluator, theta, test, loc, scale, draws, jax.random.PRNGKey(0))
    n = test.shape[0]
    return {
        "elbo": float(found.elbo.mean()),
        "elbo_se": float(np.sqrt(np.sum(found.elbo_se**2)) / n),
        "iwae": float(found.iwae.mean()),
        "iwae_se": float(np.sqrt(np.sum(found.iwae_se**2)) / n),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", default="numpyro,handrolled")
    parser.add_argument("--steps", type=int, default=TrainingSettings.steps)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--draws", type=int, default=5000)
    args = parser.parse_args()
    backends = args.backends.split(",")
    data = load()
    test = np.asarray(data.test, dtype=np.float64)[: args.images]
    base = TrainingSettings(steps=args.steps)
    evaluator = ImageWeights(digits_model(base.latent_dim))

    print(f"{args.runs} training runs per backend, noise seeds 0..{args.runs - 1}, at {base}")
    print(f"evaluated on {test.shape[0]} test images, K = {args.draws}")
    print(f"{'backend':<11} {'noise':>5} {'train s':>8} {'test ELBO':>18} {'IWAE-K':>18}")
    found: dict[str, list[dict[str, float]]] = {}
    for backend, noise in itertools.product(backends, range(args.runs)):
        run = train(backend, data, TrainingSettings(steps=args.steps, noise_seed=noise))
        row = evaluate(run.weights, test, args.draws, evaluator)
        found.setdefault(backend, []).append(row)
        print(f"{backend:<11} {noise:>5} {run.seconds:>8.1f} {row['elbo']:>10.4f} ± {row['elbo_se']:.4f} "
              f"{row['iwae']:>10.4f} ± {row['iwae_se']:.4f}")  # fmt: skip

    print("\nover the runs: mean, sd (the training noise) and one run's evaluation SE")
    for backend, rows in found.items():
        for what in ("elbo", "iwae"):
            values = np.array([row[what] for row in rows])
            se = np.mean([row[f"{what}_se"] for row in rows])
            print(f"{backend:<11} {what:<5} mean {values.mean():.4f}  sd {values.std(ddof=1):.4f}  "
                  f"evaluation SE {se:.4f}  sd / SE {values.std(ddof=1) / se:.1f}")  # fmt: skip

    print("\nbetween backends: difference of run means, SE from the runs' spread")
    for a, b in itertools.combinations(found, 2):
        for what in ("elbo", "iwae"):
            va, vb = (np.array([row[what] for row in found[k]]) for k in (a, b))
            difference = va.mean() - vb.mean()
            se = np.sqrt(va.var(ddof=1) / va.size + vb.var(ddof=1) / vb.size)
            print(f"{a} - {b} {what:<5} {difference:+.4f} ± {se:.4f}  ({difference / se:+.1f} SE)")


if __name__ == "__main__":
    main()
