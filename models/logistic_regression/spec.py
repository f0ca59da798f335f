"""Bayesian logistic regression on the Breast Cancer Wisconsin (Diagnostic) data (10 features).

    beta_k ~ Normal(0, prior_scale^2),          k = 0..d   (beta_0: intercept)
    y_i | beta ~ Bernoulli(sigmoid(beta_0 + x_i . beta_{1:d})),  i = 1..n

Data (fixed, the same for every seed): ``X`` (n, d) = (569, 10), each column standardized to mean 0
and standard deviation 1 (population sd, ddof 0), and ``y`` (n,), 1 for a malignant mass; read from
``breast_cancer_wisconsin.csv`` beside this file (source, license and the choice of columns in
README.md there). Latent site ``beta`` (real, shape (d + 1,)): the intercept then the coefficients,
one vector so that a full-rank guide holds all their correlations.

No closed form: the posterior is log-concave and close to Gaussian, but not Gaussian (the Laplace
approximation is exact only as n -> infinity).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np

from ppl_suite.guides.autoguides import autoguide_names
from ppl_suite.lazy_module import lazy_module
from ppl_suite.spec import Data, DistSpec, Domain, Latents, ModelSpec, Params, Site

stats = lazy_module("scipy.stats")  # imported when first used: naming a model loads no SciPy

DATA_FILE = "breast_cancer_wisconsin.csv"
TARGET = "malignant"


@cache
def _table() -> tuple[tuple[str, ...], np.ndarray]:
    """The shipped file: its column names and its values (rows x columns), read once."""
    with resources.files(__package__).joinpath(DATA_FILE).open() as handle:
        header = handle.readline().strip().split(",")
        values = np.loadtxt(handle, delimiter=",", dtype=np.float64, ndmin=2)
    return tuple(header), values


def feature_names() -> tuple[str, ...]:
    """The d feature columns, in the order of beta[1:]."""
    return tuple(name for name in _table()[0] if name != TARGET)


def standardized(features: np.ndarray) -> np.ndarray:
    """(x - mean) / sd per column, sd with ddof 0."""
    return (features - features.mean(axis=0)) / features.std(axis=0)


def generate_data(rng: np.random.Generator, params: Params) -> dict[str, np.ndarray]:
    """The shipped data set; ``rng`` is not used (every seed gives the same data)."""
    header, values = _table()
    target = header.index(TARGET)
    X = standardized(np.delete(values, target, axis=1))
    return {"X": X, "y": values[:, target].copy()}


def sites(params: Params) -> tuple[Site, ...]:
    size = len(feature_names()) + 1
    prior = DistSpec(
        "Normal", {"loc": np.zeros(size), "scale": np.full(size, float(params["prior_scale"]))}, event_dims=1
    )
    return (Site("beta", shape=(size,), prior=prior),)


def log_joint(latents: Latents, data: Data, params: Params) -> np.ndarray:
    beta = np.asarray(latents["beta"], dtype=np.float64)
    X, y = np.asarray(data["X"], dtype=np.float64), np.asarray(data["y"], dtype=np.float64)
    logits = beta[:, :1] + beta[:, 1:] @ X.T
    log_lik = (y * logits - np.logaddexp(0.0, logits)).sum(axis=1)  # log Bernoulli(y; sigmoid(logits))
    return stats.norm.logpdf(beta, 0.0, params["prior_scale"]).sum(axis=1) + log_lik


def problem_size(params: Params) -> int:
    """X (n, d), y (n,) and beta (d + 1,)."""
    n, d = _table()[1].shape[0], len(feature_names())
    return n * (d + 1) + d + 1


SPEC = ModelSpec(
    name="logistic_regression",
    description="Logistic regression, Breast Cancer Wisconsin (569 x 10, standardized); no closed form.",
    defaults={"prior_scale": 2.5},
    domains={"prior_scale": Domain.positive()},
    problem_size=problem_size,
    sites=sites,
    generate_data=generate_data,
    log_joint=log_joint,
    guides=("full_rank", "mean_field", *autoguide_names()),
    fixed_data=True,
    module=__package__,
)
