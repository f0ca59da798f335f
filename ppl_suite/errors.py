"""The errors the Python API raises: ``InputProblem`` for bad input (a list of problems, one sentence
each), ``CheckFailed`` for a correctness check that failed (``ReferenceGateError``, a reference that
failed its gates, is one)."""

from __future__ import annotations


class InputProblem(Exception):
    """User input that cannot be used; ``problems`` holds one sentence per problem, each naming the
    file, site or key and what is valid."""

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


class CheckFailed(Exception):
    """A correctness check failed before any fit was judged: the NUTS reference failed its gates
    (``references.ReferenceGateError``, a subclass: the message names every failed gate, its value and
    what was tried), or the NumPyro and Pyro versions' log joints differ (the message names the largest
    difference and its site). ``check`` and ``diagnose`` raise it; catch this one type."""
