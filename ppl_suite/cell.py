"""One cell of the comparison matrix and its outcome: plain data, importable without torch or JAX."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ppl_suite.backends import SVIConfig


@dataclass(frozen=True)
class Cell:
    """Plain, hashable description of one fit-and-evaluate job."""

    model: str
    backend: str
    guide: str
    data_seed: int = 0
    seed: int = 0
    overrides: tuple[tuple[str, Any], ...] = ()
    svi: SVIConfig = field(default_factory=SVIConfig)
    eval_samples: int = 10_000
    estimators: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()  # (name, settings) pairs

    @property
    def key(self) -> str:
        """Deterministic name: model[k=v,...]/backend/guide/data<seed>/seed<seed>."""
        params = ",".join(f"{k}={v}" for k, v in sorted(self.overrides))
        model = f"{self.model}[{params}]" if params else self.model
        return f"{model}/{self.backend}/{self.guide}/data{self.data_seed}/seed{self.seed}"


@dataclass
class Record:
    """The outcome of one cell: a flat row, the training trace, and named arrays for the report."""

    row: dict[str, Any]
    losses: np.ndarray
    artifacts: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.row["status"] == "ok"
