"""The one place that orders the report: every module of this package is imported (its sections
register themselves), then the sections are sorted by their module's place in ORDER.

A new topic is one new module here that calls ``document.register``: it is found by discovery, and
placed where ORDER has ``*`` (before backend agreement) until ORDER names it. A study's section lives
with the study (``Study.report``, ``ppl_suite.studies``), is imported after this package's modules and
placed by the study's name.
"""

from __future__ import annotations

import importlib
import pkgutil

from ppl_suite import studies
from ppl_suite.report import document

PACKAGE = "ppl_suite.report"
# report order, by module (the last part of its name); "*" is where modules ORDER does not name go
ORDER = (
    "opening",  # the question, answered with this run's numbers: every section's headline
    "glossary",  # reading this report: the words and the backends
    "identity",  # log p(x) = ELBO + KL, cell by cell
    "training",  # how the ELBO rises during SVI, for fixed and learned θ
    "estimators",  # estimators of log p(x) against the exact value, the IWAE bound over K
    "posterior",  # q's marginals and correlations against the posterior; PSIS k-hat
    "references",  # models without a closed form, against their NUTS reference
    "vae",  # the VAE: evidence by AIS, the inference gaps
    "draws_files",  # bring your own model: the draws and references as files
    "*",
    "agreement",  # backends against each other, libraries against the suite
    "cost",
    "failures",
    "facts",
)


def discover() -> None:
    """Import every module of the report package, then every study's report module, so that each
    registers its sections."""
    package = importlib.import_module(PACKAGE)
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{PACKAGE}.{module.name}")
    for name in studies.names():
        if (module := studies.get(name).report) is not None:
            importlib.import_module(module)


def rank(module: str) -> int:
    """A module's place in ORDER (``*``'s place for a module ORDER does not name); a study's report
    module is placed by the study's name."""
    by_study = {studies.get(name).report: name for name in studies.names()}
    name = by_study.get(module) or module.rsplit(".", 1)[-1]
    return ORDER.index(name) if name in ORDER else ORDER.index("*")


def sections() -> list[document.Section]:
    """Every registered section, by its module's rank, in registration order within a module."""
    discover()
    registered = document.registered()
    return sorted(registered, key=lambda section: rank(type(section).__module__))
