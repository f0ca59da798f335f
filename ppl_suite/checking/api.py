"""``ppl_suite.check``: is my VI right, for my model? The whole runner on one user model.

    result = ppl_suite.check("my_model.py:model", "data.npz", guides=["mean_field"])
    result.table                      # per guide and backend: ELBO, log p(x), KL, moment errors, k-hat
    result.draws(result.table.key[0]) # q's and the reference's draws as InferenceData

The steps: register the model (``checking.user_model``: sites from one trace, no oracle), build its
NUTS reference and AIS evidence (``ppl_suite.references``, cached on disk), compare the NumPyro and
Pyro versions' log joints at reference draws when both are given (``checking.agreement``), then run
the cells exactly as ``ppl-suite run`` does (the ``references`` profile's estimators and SVI settings:
ELBO, KL = AIS log p(x) - ELBO, importance sampling, PSIS k-hat, posterior moment errors,
2-Wasserstein), into a results folder that ``ppl_suite.results`` reads; then q's and the reference's
draws of every finished cell are written there as NetCDF (``checking.draws.write_draws``) and the
report, which links them, is written.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ppl_suite import paths
from ppl_suite.checking import sites as sites_module
from ppl_suite.checking import stored, user_guide
from ppl_suite.checking.sources import InputProblem, load_data, split_reference
from ppl_suite.checking.user_model import (
    ENVIRONMENT,
    PLUGIN,
    UserModel,
    environment_value,
    fingerprint,
    register,
)

if TYPE_CHECKING:
    from ppl_suite.runner import OnEvent, Outcome, Plan
    from ppl_suite.store import ResultsStore

PROFILE = "references"  # the estimators and SVI settings of a check: those of models without an oracle
DEFAULT_GUIDES = ("mean_field", "full_rank")
Model = str | Callable[..., Any]


class CheckFailed(Exception):
    """A correctness check failed before any cell ran: the NUTS reference failed its gates, or the
    NumPyro and Pyro versions' log joints differ (the message names the largest difference and its site)."""


def reference_text(model: Model, what: str) -> str:
    """``FILE.py:NAME`` of a model given as such or as a function defined at the top of a file."""
    if isinstance(model, str):
        file, name = split_reference(model, what)
        return f"{file.resolve()}:{name}"
    function = inspect.unwrap(model)
    try:
        file = inspect.getsourcefile(function)
    except TypeError:
        file = None
    module = inspect.getmodule(function)
    if file is None or module is None or getattr(module, function.__name__, None) is not function:
        raise InputProblem(
            f"{what} {function!r}: define it at the top level of a Python file (workers import it from there)"
        )
    return f"{Path(file).resolve()}:{function.__name__}"


def _libraries(model: Model | None, pyro: Model | None, numpyro: Model | None) -> dict[str, str]:
    """{library: FILE.py:NAME} of the models given; ``model``'s library read from what its file imports."""
    given = {"numpyro": numpyro, "pyro": pyro}
    found = {library: reference_text(m, f"--{library}") for library, m in given.items() if m is not None}
    if model is not None:
        text = reference_text(model, "model")
        from ppl_suite.checking.sources import load_function

        library = sites_module.library_of(load_function(text, "model"))
        if library is None:
            raise InputProblem(
                f"model {text}: cannot tell whether it is a NumPyro or a Pyro model (its file imports both "
                "or neither); pass it as --numpyro or --pyro"
            )
        if library in found:
            raise InputProblem(f"two {library} models given ({found[library]} and {text})")
        found[library] = text
    return found


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a check: its results folder, the command line's exit code of the run (0 ok, 1
    some cell failed, 3 a correctness check failed), the model's name, the report's files and the
    runner's outcome (``runner.Outcome``: status, failed checks, units that did not finish)."""

    folder: Path
    exit_code: int
    model: str
    report_files: dict[str, Path] = field(default_factory=dict)
    outcome: Outcome | None = None

    @property
    def status(self) -> str | None:
        """The runner's status: ``ok``, ``failed`` (some cell), ``checks failed``, ``stopped``."""
        return self.outcome.status if self.outcome is not None else None

    @cached_property
    def rows(self):
        """The cell table (``ppl_suite.results.load``)."""
        from ppl_suite import results

        return results.load(self.folder)

    @cached_property
    def estimates(self):
        """The long estimates table (``ppl_suite.results.estimates``)."""
        from ppl_suite import results

        return results.estimates(self.folder)

    @cached_property
    def table(self):
        """One row per cell (guide, backend, seed): ELBO ± SE, the reference log p(x) ± SE, KL by the
        identity KL = log p(x) - ELBO ± SE, the largest standardized errors of q's posterior means and
        sds against the reference (with their coordinates and SEs) and the PSIS k-hat of q."""
        from ppl_suite.checking.table import check_table

        return check_table(self.rows, self.estimates)

    def draws(self, key: str, n: int = 4000, seed: int = 0):
        """q's and the reference's draws of cell ``key`` as InferenceData (``checking.draws``)."""
        from ppl_suite.checking.draws import cell_draws

        return cell_draws(self.folder, key, n, seed)

    def reference(self):
        """The NUTS reference posterior, with its sampler statistics, as InferenceData."""
        from ppl_suite.problem import Problem
        from ppl_suite.references import reference_for

        problem = Problem.build(self.model, 0)
        return reference_for(problem).idata

    def report(self, path: str | Path, formats: Sequence[str] = ("md", "html")) -> dict[str, Path]:
        """Write the report of the check's results folder into ``path``; returns its files by kind."""
        from ppl_suite.report.render import write_report

        return write_report(self.folder, Path(path), tuple(formats))


@contextlib.contextmanager
def _environment(users: list[UserModel]) -> Iterator[None]:
    """``PPL_SUITE_CHECK_MODELS`` set for the worker processes started within, restored after."""
    previous = os.environ.get(ENVIRONMENT)
    os.environ[ENVIRONMENT] = environment_value(users)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(ENVIRONMENT, None)
        else:
            os.environ[ENVIRONMENT] = previous


def _name(models: dict[str, str]) -> str:
    file = Path(next(iter(models.values())).rpartition(":")[0])
    return "".join(c if c.isalnum() else "_" for c in file.stem).lower()


def prepare(
    model: Model | None,
    data: str | Mapping[str, Any],
    *,
    pyro: Model | None = None,
    numpyro: Model | None = None,
    guides: Sequence[str | Callable[..., Any]] | None = None,
    backends: Sequence[str] | None = None,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    nuts: Mapping[str, Any] | None = None,
    data_file: Path,
) -> tuple[UserModel, list[str]]:
    """The UserModel of a check (its data saved to ``data_file``) and the backends to fit with;
    raises InputProblem listing every problem found."""
    from ppl_suite import backends as backend_registry
    from ppl_suite import guides as guide_registry

    problems: list[str] = []
    models: dict[str, str] = {}
    try:
        models = _libraries(model, pyro, numpyro)
    except InputProblem as error:
        problems += error.problems
    loaded = None
    try:
        loaded = load_data(data)
    except InputProblem as error:
        problems += error.problems
    own_guides = {}
    try:
        own_guides = user_guide.declare(
            [reference_text(g, "guide") for g in guides or () if user_guide.is_user_guide(g)]
        )
    except InputProblem as error:
        problems += error.problems
    chosen_guides = [g for g in guides or DEFAULT_GUIDES if not user_guide.is_user_guide(g)] + list(
        own_guides
    )
    unknown = [g for g in chosen_guides if g not in guide_registry.names() and g not in own_guides]
    if unknown:
        problems.append(
            f"unknown guide {', '.join(map(repr, unknown))}; valid: {', '.join(guide_registry.names())}"
        )
    chosen_backends = list(backends or [library for library in sites_module.LIBRARIES if library in models])
    unknown = [b for b in chosen_backends if b not in backend_registry.names()]
    if unknown:
        problems.append(
            f"unknown backend {', '.join(map(repr, unknown))}; valid: {', '.join(backend_registry.names())}"
        )
    for guide, programs in own_guides.items():
        unfit = [b for b in chosen_backends if b not in programs]
        if unfit:
            problems.append(
                f"guide {guide!r} is written for {', '.join(programs)} only: the {', '.join(unfit)} backend "
                f"cannot fit it; choose --backends {' '.join(programs)}, or give a version for each library "
                f"under the same name"
            )
    if name is not None and not name.isidentifier():
        problems.append(f"--name {name!r}: a model name is letters, digits and underscores")
    if nuts:
        from ppl_suite.references import NUTSSettings

        try:
            NUTSSettings(**dict(nuts))
        except (TypeError, ValueError) as error:
            problems.append(f"NUTS settings: {error}")
    if problems or loaded is None:
        raise InputProblem(*problems)
    stored.save_data(loaded, data_file)
    origin = ", ".join(f"{library} {text}" for library, text in models.items())
    user = UserModel(
        name=name or _name(models),
        data=str(data_file),
        numpyro=models.get("numpyro"),
        pyro=models.get("pyro"),
        params=dict(params or {}),
        guides=tuple(chosen_guides),
        own_guides=own_guides,
        reference=dict(nuts or {}),
        description=f"checked with ppl-suite check: {origin}",
    )
    register(user)  # traces the model(s): every site problem is raised here
    return user, chosen_backends


def verify(user: UserModel, on_event: OnEvent | None = None) -> None:
    """Build (or load) the NUTS reference (each step of a build told to ``on_event`` as a
    ``runner.StudyProgress`` of ``"reference"``) and, when both versions are given, compare their log
    joints at its draws; raises CheckFailed naming what failed."""
    from ppl_suite import registry, runner
    from ppl_suite.checking.agreement import compare
    from ppl_suite.compilation_cache import enable_compilation_cache
    from ppl_suite.numerics import setup
    from ppl_suite.problem import Problem

    if user.numpyro is None:
        return  # NUTS runs on the NumPyro model: a Pyro-only check has no reference
    setup()
    enable_compilation_cache()
    from ppl_suite.references import ReferenceGateError, reference_for

    problem = Problem.build(user.name, 0)
    try:
        tell = on_event or runner.ignore
        reference = reference_for(
            problem, on_progress=lambda step: tell(runner.StudyProgress("reference", step.text))
        )
    except ReferenceGateError as error:
        raise CheckFailed(str(error)) from None
    if user.pyro is None:
        return
    agreement = compare(
        registry.implementation(user.name, "numpyro"),
        registry.implementation(user.name, "pyro"),
        problem.data,
        problem.params,
        reference.draws,
    )
    if not agreement.ok:
        raise CheckFailed(agreement.problem())


def check(
    model: Model | None = None,
    data: str | Mapping[str, Any] | None = None,
    *,
    pyro: Model | None = None,
    numpyro: Model | None = None,
    guides: Sequence[str | Callable[..., Any]] | None = None,
    backend: str | Sequence[str] | None = None,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    seeds: Sequence[int] = (0,),
    steps: int | None = None,
    estimators: Sequence[str] | None = None,
    nuts: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    report: str | Path | bool | None = None,
    jobs: int | None = None,
    fresh: bool = False,
    progress: bool = False,
) -> CheckResult:
    """Fit ``guides`` to a user's model with each backend and evaluate every fit against the model's
    NUTS reference: log p(x) = ELBO + KL(q || p(z | x)), with log p(x) by AIS.

    model: a NumPyro or Pyro ``model(data)`` / ``model(data, params)``, as a function defined at the
        top of a file or as ``"FILE.py:NAME"``; or give ``numpyro=`` and/or ``pyro=`` (both: their log
        joints are compared at reference draws first).
    data: a dict of arrays, a ``.npz`` or ``.json`` file, or ``"FILE.py:FUNCTION"`` returning a dict.
    guides: guide families (default mean_field and full_rank) and/or the user's own guides, each a
        NumPyro or Pyro ``guide(data)`` / ``guide(data, params)`` sampling exactly the model's latent
        sites (a top-level function or ``"FILE.py:NAME"``; ``checking.user_guide``); backend: one or
        several backends (default: the library of each model given); params: fixed values passed as
        ``params``;
    seeds, steps, estimators: as ``ppl-suite run`` (default: the ``references`` profile's settings);
    nuts: ``NUTSSettings`` fields for the reference (e.g. ``{"draws": 500, "ess_min": 400}``);
    out: the results folder (default ``results/check-<name>``); report: its folder (default
        ``reports/check-<name>``; False: none); jobs: worker processes; fresh: refit every cell;
    progress: print the run's progress as ``ppl-suite check`` does (``ppl_suite.console``); by default
        nothing is printed.

    Raises InputProblem (a ValueError-like list of problems, nothing run) or CheckFailed (the reference
    failed its gates, or the two versions disagree); cells that fail are in the result (exit code 1).
    """
    from ppl_suite import runner
    from ppl_suite.checking.draws import write_draws
    from ppl_suite.console import Printer
    from ppl_suite.store import ResultsStore

    backends = [backend] if isinstance(backend, str) else backend
    if data is None:
        raise InputProblem("no data given: a dict of arrays, a .npz or .json file, or FILE.py:FUNCTION")
    printer = Printer() if progress else None
    on_event = printer or runner.ignore
    with tempfile.TemporaryDirectory(prefix="ppl-suite-check-") as scratch:
        user, chosen = prepare(
            model, data, pyro=pyro, numpyro=numpyro, guides=guides, backends=backends, name=name,
            params=params, nuts=nuts, data_file=Path(scratch) / stored.DATA,
        )  # fmt: skip
        store = ResultsStore(Path(out) if out is not None else Path("results") / f"check-{user.name}")
        report_folder = report if report not in (None, True) else Path("reports") / f"check-{user.name}"
        previous = stored.stored_fingerprint(store.path)
        plan = runner.Plan(
            profile=PROFILE, models=[user.name], backends=chosen, guides=user.guides,
            seeds=list(seeds) or [0], steps=steps, estimators=estimators, jobs=jobs, plugins=[PLUGIN],
            fresh=fresh or (previous is not None and previous != fingerprint(user)),
            report=None if report_folder is False else Path(report_folder),
        )  # fmt: skip
        try:
            outcome = _run(user, plan, store, on_event)
        finally:
            if printer is not None:
                printer.close()
        stored.store(store.path, user)
    if outcome.status == runner.STOPPED:  # SIGINT or SIGTERM: finished cells kept, nothing more started
        return CheckResult(store.path, outcome.exit_code, user.name, {}, outcome)
    write_draws(store.path)  # before the report, which links them
    files = {}
    if plan.report is not None:
        from ppl_suite.report.render import write_report

        files = write_report(store.path, plan.report)
        on_event(runner.ReportWritten(files))
    return CheckResult(store.path, outcome.exit_code, user.name, files, outcome)


def _run(user: UserModel, plan: Plan, store: ResultsStore, on_event: OnEvent) -> Outcome:
    """Validate the run (InputProblem), verify the model (CheckFailed), run the cells without the
    report (written after the draws); the runner's Outcome."""
    from ppl_suite import runner

    problems = runner.run_problems(plan, store) + paths.links(store.path, (stored.FOLDER, stored.DRAWS))
    if problems:
        raise InputProblem(*problems)
    verify(user, on_event)
    with _environment([user]):
        outcome = runner.run(replace(plan, report=None), store, on_event=on_event)
    if outcome.status == runner.BAD_INPUT:
        raise InputProblem(*outcome.problems)
    return outcome
