"""Reading results folders, for people who analyse results themselves.

from ppl_suite.results import load
rows = load("results/default")   # one row per finished cell; columns documented in README
"""

from ppl_suite.store import ResultsStore, load

__all__ = ["ResultsStore", "load"]
