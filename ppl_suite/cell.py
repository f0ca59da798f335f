"""Units of work of the comparison matrix and their outcome: plain data, importable without torch or JAX.

Two kinds of unit, run, cached and stored alike:

- a ``Cell`` fits one guide with one backend and evaluates it (model x data x backend x guide x seed);
- a ``ProblemUnit`` runs the guide-free estimators (AIS, BDMC, Laplace, harmonic mean) of one problem
  (model x parameters x data set) once; the problem's cells refer to it by ``Cell.problem_key``.

Executors and the store see a unit through ``Unit`` only: its key, what it computes on (model and
overrides, which decide the compiled programs a worker can reuse) and the identity columns of its row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ppl_suite import schema
from ppl_suite.backends import SVIConfig

Overrides = tuple[tuple[str, Any], ...]
EstimatorSettings = tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]  # (name, settings) pairs


class Unit(Protocol):
    """What executors and the store need of a unit of work."""

    model: str
    overrides: Overrides

    @property
    def key(self) -> str: ...

    def identity(self) -> dict[str, Any]:
        """The identity columns of the unit's row (schema names), whatever its outcome."""


def model_label(model: str, overrides: Overrides) -> str:
    """``model`` or ``model[k=v,...]`` when parameters are overridden: the first part of every key."""
    params = ",".join(f"{k}={v}" for k, v in sorted(overrides))
    return f"{model}[{params}]" if params else model


def _params(overrides: Overrides) -> str:
    return json.dumps(dict(overrides), sort_keys=True)


@dataclass(frozen=True)
class Cell:
    """Plain, hashable description of one fit-and-evaluate job. ``estimators`` are run on the fitted
    guide; ``problem_key`` names the ProblemUnit holding the problem's guide-free estimates, if any."""

    model: str
    backend: str
    guide: str
    data_seed: int = 0
    seed: int = 0
    overrides: Overrides = ()
    svi: SVIConfig = field(default_factory=SVIConfig)
    eval_samples: int = 10_000
    estimators: EstimatorSettings = ()
    problem_key: str | None = None

    @property
    def key(self) -> str:
        """Deterministic name: model[k=v,...]/backend/guide/data<seed>/seed<seed>."""
        label = model_label(self.model, self.overrides)
        return f"{label}/{self.backend}/{self.guide}/data{self.data_seed}/seed{self.seed}"

    def identity(self) -> dict[str, Any]:
        return {
            schema.KEY: self.key,
            schema.MODEL: self.model,
            schema.BACKEND: self.backend,
            schema.GUIDE: self.guide,
            schema.DATA_SEED: self.data_seed,
            schema.SEED: self.seed,
            schema.PARAMS: _params(self.overrides),
            schema.PROBLEM_KEY: self.problem_key,
        }


@dataclass(frozen=True)
class ProblemUnit:
    """The guide-free estimators of one problem, run once on the data set ``data_seed`` (also their
    seed): their values do not depend on any fit (model parameters fixed)."""

    model: str
    data_seed: int = 0
    overrides: Overrides = ()
    estimators: EstimatorSettings = ()

    @property
    def key(self) -> str:
        """Deterministic name: model[k=v,...]/data<seed>."""
        return f"{model_label(self.model, self.overrides)}/data{self.data_seed}"

    def identity(self) -> dict[str, Any]:
        return {
            schema.KEY: self.key,
            schema.MODEL: self.model,
            schema.DATA_SEED: self.data_seed,
            schema.PARAMS: _params(self.overrides),
            schema.ESTIMATORS: json.dumps([name for name, _ in self.estimators]),
        }


@dataclass
class Record:
    """The outcome of one unit: a flat row (its table's columns), the training trace (cells), named
    arrays (cells: draws, curves, fitted parameters) and rows of the estimates table."""

    row: dict[str, Any]
    losses: np.ndarray
    artifacts: dict[str, np.ndarray] = field(default_factory=dict)
    estimates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.row[schema.STATUS] == schema.OK
