"""What every Target adapter reads from its problem: the model's name, latent sites and oracle, and
the smallest KL a guide family can reach."""

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

    def family_minimum(self, family: str) -> float | None:
        """The family's best KL: the model's own answer (``ModelSpec.kl_family_min``) first, else the
        generic closed forms of ``estimators.kl.kl_family_minimum``; None without an oracle."""
        from ppl_suite.estimators.kl import kl_family_minimum  # the estimators import this package

        if self.exact is None:
            return None
        problem = self.problem
        if problem.spec.kl_family_min is not None:
            known = problem.spec.kl_family_min(family, problem.data, problem.params)
            if known is not None:
                return known
        return kl_family_minimum(problem.sites, family, self.exact)
