"""The one error the Python API raises for bad input: a list of problems, one sentence each."""

from __future__ import annotations


class InputProblem(Exception):
    """User input that cannot be used; ``problems`` holds one sentence per problem, each naming the
    file, site or key and what is valid."""

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)
