"""A model bound to its parameters and one simulated data set: the unit everything runs on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ppl_suite import registry
from ppl_suite.spec import ExactPosterior, ModelSpec, Site


@dataclass(frozen=True)
class Problem:
    spec: ModelSpec
    params: Mapping[str, Any]
    data: Mapping[str, np.ndarray]
    data_seed: int

    @classmethod
    def build(cls, model: str, data_seed: int, overrides: Mapping[str, Any] | None = None) -> Problem:
        """The model's data for ``data_seed``; parameters outside their domains are one ValueError,
        raised before any data are made."""
        spec = registry.get(model)
        params = spec.params(overrides)
        return cls(spec, params, spec.data(data_seed, params), data_seed)

    @cached_property
    def sites(self) -> tuple[Site, ...]:
        return self.spec.sites(self.params)

    def with_params(self, updates: Mapping[str, Any]) -> Problem:
        """The same data under updated parameters (e.g. learned theta after a fit)."""
        return Problem(self.spec, {**self.params, **updates}, self.data, self.data_seed)

    def exact(self) -> ExactPosterior | None:
        """The exact posterior and evidence, when the model has an oracle."""
        return None if self.spec.oracle is None else self.spec.oracle(self.data, self.params)
