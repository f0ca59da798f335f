"""The VAE's evaluation of one trained backend on the test images (``Evaluator.evaluate``):

1. log p_theta(x_i) by AIS per test image (``image_ais``), the schedule tuned on pilot images;
2. with K encoder draws per image: the encoder's ELBO, IWAE-K and k-hat (``image_iwae``);
3. q*_i per image (``best_guide``) and ELBO[q*] from fresh draws; KL = log p - ELBO and the
   approximation and amortization gaps (``gaps``);
4. at each training checkpoint, on the first ``checkpoint_images`` test images: AIS log p (on the
   final weights' schedule, with the reruns of ``image_ais``), the ELBO and the KL; per interval the
   split of the ELBO's gain (``training_split``);
5. BDMC on images simulated from the trained decoder, at several schedule lengths (``image_bdmc``).

Another training run of the same backend (another noise seed) gets step 2 alone (``run_row``): its
encoder's test ELBO and IWAE-K, for the spread between runs.

Every random stream is keyed by the study's seed, the backend and the quantity
(``ppl_suite.estimators.streams``), so each estimate is independent of the others and reproducible.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ppl_suite.estimators.ais import stream_key
from ppl_suite.estimators.weights import khat_threshold
from ppl_suite.vae import results as r
from ppl_suite.vae.best_guide import GuideFitter
from ppl_suite.vae.gaps import decompose
from ppl_suite.vae.image_ais import ImageAnnealer, ais_per_image, forward_with_reruns, mean_over_images
from ppl_suite.vae.image_bdmc import sandwiches
from ppl_suite.vae.image_iwae import ImageWeights, elbo_estimates, proposal_estimates
from ppl_suite.vae.latent import LatentModel, as_jax
from ppl_suite.vae.settings import VAEStudySettings
from ppl_suite.vae.training_split import split


def digits_model(latent_dim: int) -> LatentModel:
    """The digits VAE's decoder (``models/vae_digits/network.py``) as a ``LatentModel``: Bernoulli pixels."""
    from models.vae_digits import network

    def log_likelihood(theta, z, x):
        return network.log_likelihood(theta, z, x, xp=jnp)

    def simulate(theta, key, z):
        probabilities = jax.nn.sigmoid(network.decoder_logits(theta, z, xp=jnp))
        return (jax.random.uniform(key, probabilities.shape) < probabilities).astype(jnp.float64)

    return LatentModel(latent_dim, log_likelihood, simulate)


def digits_encode(weights: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The digits VAE's encoder (``models/vae_digits/network.py``): q(z | x)'s loc and scale, NumPy."""
    from models.vae_digits import network

    return network.encode(weights, x, xp=np)


class Evaluator:
    """The compiled evaluation programs of one model (shared by every backend and checkpoint)."""

    def __init__(self, model: LatentModel, settings: VAEStudySettings, encode: Callable[..., Any]) -> None:
        self.model, self.settings, self.encode = model, settings, encode
        self.annealer = ImageAnnealer(model, settings.ais.leapfrog_steps)
        self.weights = ImageWeights(model)
        self.fitter = GuideFitter(model, settings.qstar)

    def key(self, backend: str, what: str) -> jax.Array:
        return stream_key(self.settings.seed, f"vae.{backend}.{what}")

    def evaluate(
        self, backend: str, trained: Any, test: np.ndarray, decoder: tuple[str, ...]
    ) -> dict[str, list[dict]]:
        """Every per-backend table's rows for one trained backend (module docstring)."""
        s = self.settings
        theta = as_jax(trained.weights, decoder)
        loc, scale = (np.asarray(a) for a in self.encode(trained.weights, test))
        evidence = ais_per_image(
            self.annealer, theta, test, s.ais, self.key(backend, "ais"), s.ais.pilot_images
        )
        proposal = proposal_estimates(
            self.weights, theta, test, loc, scale, s.iwae_k, self.key(backend, "iwae")
        )
        best = self.fitter.fit(theta, test, loc, scale, self.key(backend, "qstar.fit"))
        start = time.perf_counter()
        elbo_best, elbo_best_se = elbo_estimates(
            self.weights, theta, test, best.loc, best.scale, s.iwae_k, self.key(backend, "qstar.elbo")
        )
        fit_seconds = best.seconds + time.perf_counter() - start
        log_p, log_p_se = evidence.estimates.value, evidence.estimates.se
        gaps = decompose(log_p, log_p_se, elbo_best, elbo_best_se, proposal.elbo, proposal.elbo_se)
        per_image = {
            r.LOG_P: (log_p, log_p_se),
            r.IWAE: (proposal.iwae, proposal.iwae_se),
            r.ELBO: (proposal.elbo, proposal.elbo_se),
            r.ELBO_BEST: (elbo_best, elbo_best_se),
            r.KL: (gaps.kl, gaps.kl_se),
            r.APPROXIMATION: (gaps.approximation, gaps.approximation_se),
            r.AMORTIZATION: (gaps.amortization, gaps.amortization_se),
        }
        summary = self._summary(
            backend, test.shape[0], per_image, evidence, proposal, best, trained, fit_seconds
        )
        images = _image_rows(backend, test.shape[0], per_image, evidence, proposal, best)
        start = time.perf_counter()
        checkpoints, intervals = self.checkpoints(
            backend, trained, test[: s.checkpoint_images], decoder, evidence.schedule
        )
        summary[r.CHECKPOINT_SECONDS] = time.perf_counter() - start
        losses = [
            {r.BACKEND: backend, r.STEP: i, r.LOSS: float(v)}
            for i, v in enumerate(np.asarray(trained.losses))
        ]
        kept = (r.ELBO, r.se(r.ELBO), r.IWAE, r.se(r.IWAE), r.FINAL_LOSS, r.TRAINING_SECONDS, r.IWAE_SECONDS)
        return {
            "runs": [{r.BACKEND: backend, r.RUN: 0, **{name: summary[name] for name in kept}}],
            "backends": [summary],
            "images": images,
            "checkpoints": checkpoints,
            "intervals": intervals,
            "bdmc": self.bdmc_rows(backend, theta, evidence.schedule),
            "losses": losses,
        }

    def _summary(
        self,
        backend: str,
        n_images: int,
        per_image: dict[str, tuple[np.ndarray, np.ndarray]],
        evidence: Any,
        proposal: Any,
        best: Any,
        trained: Any,
        fit_seconds: float,
    ) -> dict[str, Any]:
        """The backend's ``backends`` row (its checkpoints' seconds apart): the averages over images of
        the ``per_image`` estimates with their SEs (``mean_over_images``), diagnostics and costs."""
        s = self.settings
        summary = {r.BACKEND: backend, r.STATUS: r.OK, r.ERROR: "", r.N_IMAGES: n_images}
        for name, (value, se) in per_image.items():
            summary[name], summary[r.se(name)], spread = mean_over_images(value, se)
            if name == r.LOG_P:
                summary[r.LOG_P_SPREAD_SE] = spread
        return summary | {
            r.IWAE_K: s.iwae_k,
            r.KHAT_MEDIAN: float(np.median(proposal.khat)),
            r.KHAT_ABOVE: float(np.mean(proposal.khat > khat_threshold(s.iwae_k))),
            r.QSTAR_CONVERGED: float(np.mean(best.converged)),
            r.QSTAR_STEPS: best.steps,
            r.AIS_TEMPERATURES: evidence.schedule.temperatures,
            r.AIS_CHAINS: s.ais.chains,
            r.AIS_UNRELIABLE: int(evidence.estimates.unreliable.sum()),
            r.FINAL_LOSS: float(np.asarray(trained.losses)[-1]),
            r.TRAINING_SECONDS: float(trained.seconds),
            r.COMPILE_SECONDS: float(trained.compile_seconds),
            r.AIS_SECONDS: evidence.seconds,
            r.AIS_TUNING_SECONDS: evidence.tuning_seconds,
            r.IWAE_SECONDS: proposal.seconds,
            r.FIT_SECONDS: fit_seconds,
        }

    def bdmc_rows(self, backend: str, theta: Any, schedule: Any) -> list[dict]:
        """The BDMC sandwich on images simulated from the decoder, per schedule length (``bdmc_lengths``
        times the tuned schedule's)."""
        s = self.settings
        lengths = tuple(sorted({max(1, round(m * schedule.temperatures)) for m in s.bdmc_lengths}))
        found = sandwiches(
            self.annealer, theta, schedule, lengths, s.bdmc_images, s.ais.chains, self.key(backend, "bdmc")
        )
        return [{r.BACKEND: backend, r.N_IMAGES: s.bdmc_images, **sandwich.summary()} for sandwich in found]

    def run_row(
        self, backend: str, run: int, trained: Any, test: np.ndarray, decoder: tuple[str, ...]
    ) -> dict:
        """The ``runs`` row of another training run: the encoder's ELBO and IWAE-K on ``test``, averaged
        over images with their SEs (``mean_over_images``), from draws of this run's own stream."""
        theta = as_jax(trained.weights, decoder)
        loc, scale = (np.asarray(a) for a in self.encode(trained.weights, test))
        key = self.key(backend, f"run{run}.iwae")
        found = proposal_estimates(self.weights, theta, test, loc, scale, self.settings.iwae_k, key)
        row = {r.BACKEND: backend, r.RUN: run}
        for name, value, se in ((r.ELBO, found.elbo, found.elbo_se), (r.IWAE, found.iwae, found.iwae_se)):
            row[name], row[r.se(name)], _ = mean_over_images(value, se)
        return row | {
            r.FINAL_LOSS: float(np.asarray(trained.losses)[-1]),
            r.TRAINING_SECONDS: float(trained.seconds),
            r.IWAE_SECONDS: found.seconds,
        }

    def checkpoints(
        self, backend: str, trained: Any, images: np.ndarray, decoder: tuple[str, ...], schedule: Any
    ) -> tuple[list[dict], list[dict]]:
        """Per checkpoint: AIS log p, ELBO and KL averaged over ``images``; per interval: the split."""
        rows = [
            self.checkpoint_row(backend, step, trained.checkpoints[step], images, decoder, schedule)
            for step in sorted(trained.checkpoints)
        ]
        return rows, interval_rows(backend, rows)

    def checkpoint_row(
        self,
        backend: str,
        step: int,
        weights: dict[str, np.ndarray],
        images: np.ndarray,
        decoder: tuple[str, ...],
        schedule: Any,
    ) -> dict[str, Any]:
        """One checkpoint's AIS log p, ELBO and KL = log p - ELBO, averaged over ``images``."""
        theta = as_jax(weights, decoder)
        loc, scale = (np.asarray(a) for a in self.encode(weights, images))
        estimates, _, _ = forward_with_reruns(
            self.annealer,
            theta,
            images,
            schedule,
            self.settings.ais,
            self.key(backend, f"checkpoint.{step}.ais"),
        )
        elbo, elbo_se = elbo_estimates(
            self.weights, theta, images, loc, scale, self.settings.iwae_k,
            self.key(backend, f"checkpoint.{step}.elbo"),
        )  # fmt: skip
        log_p, log_p_se, _ = mean_over_images(estimates.value, estimates.se)
        elbo_mean, elbo_mean_se, _ = mean_over_images(elbo, elbo_se)
        return {
            r.BACKEND: backend,
            r.STEP: int(step),
            r.N_IMAGES: images.shape[0],
            r.LOG_P: log_p,
            r.se(r.LOG_P): log_p_se,
            r.ELBO: elbo_mean,
            r.se(r.ELBO): elbo_mean_se,
            r.KL: log_p - elbo_mean,
            r.se(r.KL): float(np.hypot(log_p_se, elbo_mean_se)),
            r.AIS_UNRELIABLE: int(estimates.unreliable.sum()),
        }


def _image_rows(
    backend: str,
    n_images: int,
    per_image: dict[str, tuple[np.ndarray, np.ndarray]],
    evidence: Any,
    proposal: Any,
    best: Any,
) -> list[dict]:
    """One ``images`` row per test image: its ``per_image`` estimates and SEs and its diagnostics."""
    return [
        {
            r.BACKEND: backend,
            r.IMAGE: i,
            **{
                c: float(v[i])
                for name, (value, se) in per_image.items()
                for c, v in ((name, value), (r.se(name), se))
            },
            r.KHAT: float(proposal.khat[i]),
            r.AIS_ESS: float(evidence.estimates.ess[i]),
            r.AIS_UNRELIABLE_IMAGE: bool(evidence.estimates.unreliable[i]),
            r.QSTAR_CONVERGED: bool(best.converged[i]),
            r.AIS_TEMPERATURES: int(evidence.temperatures[i]),
        }
        for i in range(n_images)
    ]


def interval_rows(backend: str, rows: list[dict]) -> list[dict]:
    """The ``intervals`` rows of the checkpoint ``rows``: the ELBO's gain split into Delta log p and
    -Delta KL, between consecutive checkpoints (span interval) and from the first to the last (whole)."""
    if len(rows) < 2:
        return []
    frame = pd.DataFrame(rows)
    columns = [r.STEP, r.LOG_P, r.se(r.LOG_P), r.ELBO, r.se(r.ELBO)]
    consecutive = split(*(frame[c].to_numpy() for c in columns))
    whole = split(*(frame[c].to_numpy()[[0, -1]] for c in columns))
    return [
        {
            r.BACKEND: backend,
            r.SPAN: span,
            r.STEP_FROM: int(parts.step_from[k]),
            r.STEP_TO: int(parts.step_to[k]),
            r.ELBO_GAIN: float(parts.elbo_gain[k]),
            r.se(r.ELBO_GAIN): float(parts.elbo_gain_se[k]),
            r.LOG_P_GAIN: float(parts.log_p_gain[k]),
            r.se(r.LOG_P_GAIN): float(parts.log_p_gain_se[k]),
            r.KL_FALL: float(parts.kl_fall[k]),
            r.se(r.KL_FALL): float(parts.kl_fall_se[k]),
        }
        for span, parts in ((r.INTERVAL, consecutive), (r.WHOLE, whole))
        for k in range(parts.elbo_gain.size)
    ]
