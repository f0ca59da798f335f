"""The VQ-VAE study's evaluation of one trained run: the exact terms at every checkpoint, the training
split, and the estimators of log p(x) against the exact value.

Checkpoints: ``exact.exact_terms`` on the test images (one ``exact`` row per image) and on the
training images (averages only), at every checkpoint's weights. The split of each interval between
consecutive checkpoints, and of the whole training (first to last),

    ELBO_{k+1} - ELBO_k = (log p_{k+1} - log p_k) + (-(KL_{k+1} - KL_k)),

has every term exact (averages over the set's images); its residual is float64 rounding.

Estimators, at the trained weights, per test image, with the encoder's q as proposal (draws from the
stream ``np.random.default_rng([ESTIMATOR_STREAM, seed, backend, objective])``): importance sampling
of log p(x) (log mean w over ``draws`` weights, delta-method SE, ``ppl_suite.estimators.weights``)
and the IWAE-K bound for each K of ``iwae_ks`` (``ppl_suite.estimators.importance.iwae_bound``: mean
over floor(draws / K) disjoint blocks, SE sd / sqrt(R)), each against the exact log p(x):
z = (value - exact) / SE. IWAE-K is a bound, E[IWAE_K] <= log p(x) (Burda, Grosse and Salakhutdinov,
2016): its z is not N(0, 1) but below 0 by the bound's gap in SEs, and should not exceed 4.

Labels. Each image's k-hat is the suite's label k-hat for a plain mean of importance weights: the
PSIS k-hat of ``draws`` further draws of the image, independent of the weights it labels (stream
``np.random.default_rng([LABEL_STREAM, seed, backend, objective])``; a k-hat of the labelled weights
would select the draws that missed the tail, whose estimates are low), which passes the suite's rule
only below ``finite_variance_khat(draws)``, 1/2 less two of its sds
(``ppl_suite.estimators.weights.finite_variance_reliability``; Vehtari et al. 2024). In this study
that rule does not make the importance-sampling SE calibrated: over the images it passes, the
z-scores' sd is measured at 1.3 to 2.4, mean down to -1.0, |z| up to 16 (2 000 draws, 200 to 500
test images, at the initial weights and after training with the enumerated and vq objectives; the
score-function objective's and short trainings' pass), because the latent is discrete: log w takes
at most K^L values, and codes that q gives too little mass to be drawn carry weights no k-hat of the
draws sees. So every importance-sampling row is labelled unreliable, whatever its k-hat;
``calibration_rows`` still reports its z-scores over the images the k-hat rule passes, the
measurement behind that label. IWAE-K rows are labelled reliable as in the suite
(``ppl_suite.estimators.importance``): their SE is the bound's, over its blocks, whatever the k-hat.
"""

from __future__ import annotations

import itertools

import numpy as np

from models.vqvae_digits import network
from ppl_suite.estimators.importance import iwae_bound
from ppl_suite.estimators.weights import finite_variance_reliability, log_mean_exp_se, pareto_smoothed
from ppl_suite.vae.training import TrainedVAE
from ppl_suite.vqvae import results as r
from ppl_suite.vqvae.exact import ExactTerms, exact_terms

ESTIMATOR_STREAM = 2  # the estimators' draws: np.random.default_rng([ESTIMATOR_STREAM, seed, b, o])
LABEL_STREAM = 3  # the label's draws, independent of the estimators': np.random.default_rng([3, seed, b, o])
IMAGE_CHUNK = 100  # test images whose draws are held at once (bounded in ``settings`` by the memory budget)


def _averages(terms: ExactTerms) -> dict[str, float]:
    return {name: float(np.mean(getattr(terms, name))) for name in r.TERMS}


def checkpoint_rows(
    backend: str, objective: str, trained: TrainedVAE, test: np.ndarray, train: np.ndarray, temperature: float
) -> dict[str, list[dict]]:
    """The ``exact``, ``vqvae_checkpoints`` and ``vqvae_split`` rows of one trained run."""
    run = {r.BACKEND: backend, r.OBJECTIVE: objective}
    exact, checkpoints, split = [], [], []
    means: dict[str, dict[int, dict[str, float]]] = {r.TEST: {}, r.TRAIN: {}}
    for step, weights in sorted(trained.checkpoints.items()):
        for images, x in ((r.TEST, test), (r.TRAIN, train)):
            terms = exact_terms(weights, x, temperature)
            means[images][step] = _averages(terms)
            residual = float(np.max(np.abs(terms.identity_residual())))
            checkpoints.append(
                run
                | {r.IMAGES: images, r.STEP: step, r.N_IMAGES: x.shape[0], r.IDENTITY_RESIDUAL: residual}
                | means[images][step]
            )
            if images == r.TEST:
                exact += [
                    run
                    | {r.STEP: step, r.IMAGE: i}
                    | {name: float(getattr(terms, name)[i]) for name in r.TERMS}
                    for i in range(x.shape[0])
                ]
    for images, by_step in means.items():
        steps = sorted(by_step)
        spans = [(r.INTERVAL, a, b) for a, b in itertools.pairwise(steps)] + [(r.WHOLE, steps[0], steps[-1])]
        for span, a, b in spans:
            gain = by_step[b][r.ELBO] - by_step[a][r.ELBO]
            log_p = by_step[b][r.LOG_EVIDENCE] - by_step[a][r.LOG_EVIDENCE]
            kl_fall = -(by_step[b][r.KL] - by_step[a][r.KL])
            split.append(
                run
                | {r.IMAGES: images, r.SPAN: span, r.STEP_FROM: a, r.STEP_TO: b, r.ELBO_GAIN: gain}
                | {r.LOG_EVIDENCE_GAIN: log_p, r.KL_FALL: kl_fall, r.RESIDUAL: gain - (log_p + kl_fall)}
            )
    return {"exact": exact, "vqvae_checkpoints": checkpoints, "vqvae_split": split}


def encoder_draws(weights, x: np.ndarray, temperature: float, draws: int, rng: np.random.Generator):
    """(log w (n, draws), the draws' code indices): z ~ q(. | x_i), w = p(x_i, z) / q(z | x_i), read
    from the enumerated log joint and log q (each position drawn by inverting q's CDF)."""
    codes, positions = network.sizes(weights)
    log_joint, log_q = network.enumerated(weights, x, temperature, np)
    q = np.exp(network.log_softmax(network.encoder_logits(weights, x, temperature), np))  # (n, L, K)
    cdf = np.cumsum(q, axis=-1)
    uniform = rng.random((x.shape[0], draws, positions))
    z = np.minimum((uniform[..., None] > cdf[:, None, :, :]).sum(-1), codes - 1)  # (n, draws, L)
    index = network.code_index(z, codes)
    log_w = np.take_along_axis(log_joint, index, 1) - np.take_along_axis(log_q, index, 1)
    return log_w, index


def estimator_rows(
    backend: str,
    objective: str,
    weights,
    test: np.ndarray,
    temperature: float,
    draws: int,
    iwae_ks: tuple[int, ...],
    seed: int,
) -> list[dict]:
    """The ``vqvae_estimators`` rows of one trained run (module docstring)."""
    from ppl_suite.vqvae.training import BACKENDS, OBJECTIVES

    run = [seed, BACKENDS.index(backend), OBJECTIVES.index(objective)]
    rng = np.random.default_rng([ESTIMATOR_STREAM, *run])
    label_rng = np.random.default_rng([LABEL_STREAM, *run])
    weights = {name: np.asarray(value, dtype=np.float64) for name, value in weights.items()}
    exact = exact_terms(weights, test, temperature).log_evidence
    rows = []
    for start in range(0, test.shape[0], IMAGE_CHUNK):
        images = test[start : start + IMAGE_CHUNK]
        log_w, _ = encoder_draws(weights, images, temperature, draws, rng)
        label_log_w, _ = encoder_draws(weights, images, temperature, draws, label_rng)
        for offset, image_log_w in enumerate(log_w):
            image = start + offset
            _, k_hat = pareto_smoothed(label_log_w[offset])
            value, se = log_mean_exp_se(image_log_w)
            estimates = [(r.IMPORTANCE, draws, value, se, False)]  # unreliable here (module docstring)
            for k in iwae_ks:
                bound = iwae_bound(image_log_w, int(k))
                estimates.append((r.IWAE, int(k), bound.value, bound.se, True))
            for estimator, k, value, se, reliable in estimates:
                z = (value - exact[image]) / se if se > 0 else np.nan
                rows.append(
                    {r.BACKEND: backend, r.OBJECTIVE: objective, r.IMAGE: image, r.ESTIMATOR: estimator}
                    | {r.K: k, r.VALUE: value, r.SE: se, r.EXACT: float(exact[image]), r.Z: z}
                    | {r.KHAT: k_hat, r.RELIABLE: reliable}
                )
    return rows


def khat_passes(estimators) -> np.ndarray:
    """Per row of a ``vqvae_estimators`` frame, whether its image's label k-hat passes the suite's rule
    for a plain mean of its run's ``draws`` weights (the K of the run's importance-sampling rows)."""
    keys = [r.BACKEND, r.OBJECTIVE]
    importance = estimators[estimators[r.ESTIMATOR] == r.IMPORTANCE]
    draws = importance.groupby(keys)[r.K].max()
    runs = estimators.set_index(keys).index
    return np.array(
        [
            finite_variance_reliability(k_hat, int(draws.loc[run]))[0] == "reliable"
            for run, k_hat in zip(runs, estimators[r.KHAT], strict=True)
        ],
        dtype=bool,
    )


def calibration_rows(estimators) -> list[dict]:
    """The ``vqvae_calibration`` rows from a ``vqvae_estimators`` frame: per backend, objective,
    estimator and K, over the images whose label k-hat passes the suite's rule (``khat_passes``), the
    z-scores' mean and sd and the count |z| > 4; and the count of images it does not pass. Every
    importance-sampling row is labelled unreliable whatever its k-hat (module docstring): its z-scores
    here are the measurement behind that label, not SEs to be read."""
    rows = []
    keys = [r.BACKEND, r.OBJECTIVE, r.ESTIMATOR, r.K]
    estimators = estimators.assign(_passes=khat_passes(estimators))
    for key, group in estimators.groupby(keys, sort=False):
        passing = group[group["_passes"]]
        z = passing[r.Z].to_numpy(dtype=float)
        spread = float(np.nanstd(z, ddof=1)) if z.size > 1 else np.nan
        rows.append(
            dict(zip(keys, key, strict=True))
            | {
                r.N_IMAGES: len(passing),
                r.Z_MEAN: float(np.nanmean(z)) if z.size else np.nan,
                r.Z_SD: spread,
            }
            | {r.ABOVE_4: int(np.sum(np.abs(z) > 4)), r.UNRELIABLE: len(group) - len(passing)}
        )
    return rows
