"""What every Target adapter reads from its problem: the model's name, latent sites and oracle."""

from __future__ import annotations

from functools import cached_property

from ppl_suite.problem import Problem
from ppl_suite.spec import ExactPosterior, Site


class OfProblem:
    """Mixin for adapters that hold a ``problem``: ``name``, ``sites`` and ``exact`` from it."""

    problem: Problem

    @property
    def name(self) -> str:
        return self.problem.spec.name

    @cached_property
    def sites(self) -> tuple[Site, ...]:
        return self.problem.sites

    @cached_property
    def exact(self) -> ExactPosterior | None:
        return self.problem.exact()
