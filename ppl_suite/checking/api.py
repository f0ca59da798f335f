"""``ppl_suite.check``: is my VI right, for my model? The whole runner on one user model.

    result = ppl_suite.check(model, args=(x, group, n_groups), kwargs={"y": y})
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
import dataclasses
import functools
import inspect
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ppl_suite import paths
from ppl_suite.checking import sites as sites_module
from ppl_suite.checking import stored, user_guide
from ppl_suite.checking.calls import CALL_FORM, Bound, resolve
from ppl_suite.checking.sources import (
    InputProblem,
    Option,
    closest,
    function_text,
    in_process,
    load_function,
    python_option,
    read_source,
    running_main,
    shown,
    split_reference,
)
from ppl_suite.checking.user_model import (
    ENVIRONMENT,
    PLUGIN,
    UserModel,
    environment_value,
    fingerprint,
    register,
    user_names,
)
from ppl_suite.errors import CheckFailed
from ppl_suite.numerics import kept_session

if TYPE_CHECKING:
    from ppl_suite.checking import memo as memo_module
    from ppl_suite.checking.draws import DrawsAhead
    from ppl_suite.runner import OnEvent, Outcome, Plan
    from ppl_suite.store import ResultsStore

PROFILE = "references"  # the estimators and SVI settings of a check: those of models without an oracle
DEFAULT_GUIDES = ("mean_field", "full_rank")
IN_PROCESS = "in_process"  # the executor a manifest names for cells run in the caller's process (no timeout)
Model = str | Callable[..., Any]


class CheckStopped(KeyboardInterrupt):
    """A SIGINT (Ctrl-C) or SIGTERM stopped ``check`` while its cells ran: the finished cells are kept
    in ``result.folder`` (no draws, no report); ``result.exit_code`` is 130 or 143. A KeyboardInterrupt,
    so a script or a notebook stops as Python's convention has it, whichever signal came."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(f"check stopped; the finished cells are kept in {result.folder}")
        self.result = result


def model_text(model: Model, what: str) -> str:
    """The text naming a model or guide: ``FILE.py:NAME`` given as such (checked) or a function
    (``sources.function_text``); one of the running script's own file is a function kept here."""
    if isinstance(model, str):
        file, name = split_reference(model, what)
        if running_main(file) is None:
            return f"{file.resolve()}:{name}"
        model = load_function(f"{file.resolve()}:{name}", what)  # never imported again: kept here
    if not callable(model):
        raise InputProblem(f"{what} {model!r}: expected a function or FILE.py:NAME")
    return function_text(model)


def _libraries(
    model: Model | None, pyro: Model | None, numpyro: Model | None, option: Option
) -> dict[str, str]:
    """{library: text} of the models given; ``model``'s library read from what its module imports;
    messages name the options as ``option`` spells them."""
    given = {"numpyro": numpyro, "pyro": pyro}
    found = {library: model_text(m, option(library)) for library, m in given.items() if m is not None}
    if model is not None:
        text = model_text(model, "model")
        library = sites_module.library_of(load_function(text, "model"))
        if library is None:
            raise InputProblem(
                f"model {shown(text)}: cannot tell whether it is a NumPyro or a Pyro model (its module "
                f"imports both or neither); pass it as {option('numpyro')} or {option('pyro')}"
            )
        if library in found:
            raise InputProblem(f"two {library} models given ({shown(found[library])} and {shown(text)})")
        found[library] = text
    if not found:
        raise InputProblem(
            "no model given: a NumPyro or Pyro model function, "
            f"or {option('numpyro')} and/or {option('pyro')}"
        )
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
        """q's and the reference's draws of cell ``key`` as InferenceData (``checking.draws``); a key
        of no cell, or of a cell that did not finish, is an InputProblem saying so."""
        from ppl_suite import schema
        from ppl_suite.checking.draws import cell_draws

        rows = self.rows
        keys = list(rows[schema.KEY]) if not rows.empty else []
        if key not in keys:
            raise InputProblem(f"no cell {key!r}{closest(key, keys)}; cells: {', '.join(keys) or 'none'}")
        row = rows[rows[schema.KEY] == key].iloc[0]
        if row[schema.STATUS] != schema.OK:
            error = str(row.get(schema.ERROR) or "").strip().splitlines()
            raise InputProblem(
                f"cell {key!r} {row[schema.STATUS]}: {error[-1] if error else 'no error recorded'}; it has "
                "no fitted q to draw from: fix the cause and check again (finished cells are reused)"
            )
        return cell_draws(self.folder, key, n, seed)

    def reference(self):
        """The NUTS reference posterior, with its sampler statistics, as InferenceData."""
        from ppl_suite.problem import Problem
        from ppl_suite.references import reference_for

        problem = Problem.build(self.model, 0)
        return reference_for(problem).idata

    def report(self, path: str | Path, formats: Sequence[str] = ("md", "html")) -> dict[str, Path]:
        """Write the report of the check's results folder into ``path``; returns its files by kind."""
        from ppl_suite.checking.main_module import not_rerun_by_workers
        from ppl_suite.report.render import write_report

        with not_rerun_by_workers():  # its figure processes are spawned
            return write_report(self.folder, Path(path), tuple(formats))


@contextlib.contextmanager
def _environment(users: list[UserModel]) -> Iterator[None]:
    """``PPL_SUITE_CHECK_MODELS`` set for the worker processes started within, restored after (the
    workers' fixed hash seed is the local executor's, ``executors.local.HASH_SEED``)."""
    settings = {ENVIRONMENT: environment_value(users)}
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _name(models: dict[str, str]) -> str:
    """The default name of a check: its model file's stem (for a function kept in this process, the
    stem of the script defining it, else the function's name), with ``_user`` appended where that is
    the name of a model the suite ships (a user's ``eight_schools_centered.py`` is not the zoo's)."""
    from ppl_suite import registry

    name = _stem(models)
    return f"{name}_user" if name in registry.names() and name not in user_names() else name


def _stem(models: dict[str, str]) -> str:
    text = next(iter(models.values()))
    if in_process(text):
        function = load_function(text, "model")
        try:
            file = inspect.getsourcefile(inspect.unwrap(function))
        except TypeError:
            file = None
        stem = Path(file).stem if file and Path(file).is_file() else text.rpartition(":")[2]
    else:
        stem = Path(text.rpartition(":")[0]).stem
    return "".join(c if c.isalnum() else "_" for c in stem).lower()


def _collect(problems: list[str], function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``, or None with its InputProblem's problems added to ``problems``."""
    try:
        return function(*args)
    except InputProblem as error:
        problems += error.problems
        return None


def _bind(
    models: dict[str, str],
    data: Any,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    params: Mapping[str, Any],
    option: Option,
) -> Bound:
    """The arguments bound to each model given (``calls.resolve``: both versions must take them
    alike); in the call form, ``params`` must name the model's parameters too."""
    bound = {
        library: resolve(
            load_function(text, option(library)), data, args, kwargs, f"{library} model {shown(text)}", option
        )
        for library, text in models.items()
    }
    first, *others = bound.values()
    shape = (first.form, sorted(first.data), sorted(first.params))
    if any((b.form, sorted(b.data), sorted(b.params)) != shape for b in others):
        raise InputProblem(
            "the NumPyro and Pyro models take different arguments; give both the same signature"
        )
    if first.form == CALL_FORM and params:
        function = load_function(next(iter(models.values())), "model")
        names = inspect.signature(function).parameters
        takes_any = any(p.kind == p.VAR_KEYWORD for p in names.values())
        unknown = [name for name in params if name not in names and not takes_any]
        if unknown:
            raise InputProblem(
                *(f"{option('params')} {name!r}{closest(name, names)}: the model has no such parameter; "
                  f"its parameters: {', '.join(names)}" for name in unknown)
            )  # fmt: skip
    return first


def _guides(
    guides: Sequence[str | Callable[..., Any]] | None, problems: list[str], option: Option
) -> tuple[list[str], dict]:
    """(the guide families and own guides chosen, the own guides declared); problems added."""
    from ppl_suite import guides as guide_registry

    own = [model_text(g, option("guides")) for g in guides or () if user_guide.is_user_guide(g)]
    own_guides = _collect(problems, user_guide.declare, own, option("guides")) or {}
    chosen = [g for g in guides or DEFAULT_GUIDES if not user_guide.is_user_guide(g)] + list(own_guides)
    valid = guide_registry.names()
    problems += [
        f"unknown guide {g!r}{closest(g, valid)}; valid: {', '.join(valid)}"
        for g in chosen
        if g not in valid and g not in own_guides
    ]
    return chosen, own_guides


def _backends(
    backends: Sequence[str] | None, models: dict[str, str], problems: list[str], option: Option
) -> list[str]:
    """The backends chosen (default: the library of each model given); problems added: an unknown
    backend, or a library's backend without a model of that library."""
    from ppl_suite import backends as backend_registry

    chosen = list(backends or [library for library in sites_module.LIBRARIES if library in models])
    valid = backend_registry.names()
    for backend in chosen:
        if backend not in valid:
            problems.append(
                f"unknown backend {backend!r}{closest(backend, valid)}; valid: {', '.join(valid)}"
            )
        elif backend in sites_module.LIBRARIES and models and backend not in models:
            given = " and ".join(models)
            problems.append(
                f"backend {backend!r} fits a {backend} model, and only a {given} model is given: pass the "
                f"{backend} version as {option(backend)}, or choose {option('backends', list(models))}"
            )
    return chosen


def prepare(
    model: Model | None,
    data: Any,
    *,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    pyro: Model | None = None,
    numpyro: Model | None = None,
    guides: Sequence[str | Callable[..., Any]] | None = None,
    backends: Sequence[str] | None = None,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    nuts: Mapping[str, Any] | None = None,
    data_file: Path,
    option: Option = python_option,
) -> tuple[UserModel, list[str]]:
    """The UserModel of a check (its numeric arguments saved to ``data_file``) and the backends to fit
    with; raises InputProblem listing every problem found, each naming the options as ``option``
    spells them (``name=``, or the command line's ``--name``)."""
    problems: list[str] = []
    models = _collect(problems, _libraries, model, pyro, numpyro, option) or {}
    bound = None
    if models:
        bound = _collect(problems, _bind, models, data, args, kwargs, dict(params or {}), option)
    elif data is not None:
        _collect(problems, read_source, data, option)  # the data's own problems, with no model to bind
    chosen_guides, own_guides = _guides(guides, problems, option)
    chosen_backends = _backends(backends, models, problems, option)
    for guide, programs in own_guides.items():
        unfit = [b for b in chosen_backends if b not in programs]
        if unfit:
            problems.append(
                f"guide {guide!r} is written for {', '.join(programs)} only: the {', '.join(unfit)} backend "
                f"cannot fit it; choose {option('backends', list(programs))}, or give a version for each "
                "library under the same name"
            )
    if name is not None and not name.isidentifier():
        problems.append(f"{option('name')} {name!r}: a model name is letters, digits and underscores")
    problems += _nuts_problems(nuts)
    if problems or bound is None:
        raise InputProblem(*problems)
    stored.save_data(bound.data, data_file)
    origin = ", ".join(f"{library} {text}" for library, text in models.items())
    user = UserModel(
        name=name or _name(models), data=str(data_file), numpyro=models.get("numpyro"),
        pyro=models.get("pyro"), params={**bound.params, **dict(params or {})}, guides=tuple(chosen_guides),
        own_guides=own_guides, reference=dict(nuts or {}), form=bound.form, nones=bound.nones,
        description=f"checked with ppl-suite check: {origin}",
    )  # fmt: skip
    with kept_session():  # the caller's numerics restored after
        _numerics()  # traced as the cells run it, its programs from the compilation cache
        register(user)  # traces the model(s): every site problem is raised here
    return user, chosen_backends


def _numerics() -> None:
    """float64 in JAX and torch and the persistent compilation cache on, as the cells run (``prepare``
    traces the model so: the eager operations of that trace compile once for every later check); the
    caller restores its settings (``kept_session``)."""
    from ppl_suite.compilation_cache import enable_compilation_cache
    from ppl_suite.numerics import setup

    setup(own_process=False)
    enable_compilation_cache()


def _nuts_problems(nuts: Mapping[str, Any] | None) -> list[str]:
    if not nuts:
        return []
    from ppl_suite.references import NUTSSettings

    try:
        NUTSSettings(**dict(nuts))
    except (TypeError, ValueError) as error:
        return [f"NUTS settings: {error}"]
    return []


def verify(
    user: UserModel,
    on_event: OnEvent | None = None,
    results: Path | None = None,
    start_workers: Callable[[], None] | None = None,
) -> str | None:
    """Build (or load) the NUTS reference (each step of a build told to ``on_event`` as a
    ``runner.StudyProgress`` of ``"reference"``) and, when both versions are given, compare their log
    joints at its draws; raises CheckFailed naming what failed. Returns the digest of this outcome
    (``checking.verified``; None when the reference file cannot be read back). With ``results``, a
    check's results folder whose stamp holds the digest computed now (the same reference file, model
    sources, data, settings and checking code): nothing is loaded or compared again. Otherwise
    ``start_workers`` is called first: the run's workers set up while this process verifies."""
    from ppl_suite import registry, runner
    from ppl_suite.checking import verified
    from ppl_suite.checking.agreement import compare
    from ppl_suite.problem import Problem

    _numerics()
    stamp = verified.stamped(results) if results is not None else None
    if stamp is not None and verified.verification_digest(user, verified.reference_file(user)) == stamp:
        return stamp  # hashed only where a stamp can be matched
    if start_workers is not None:
        start_workers()
    from ppl_suite.references import reference_for

    problem = Problem.build(user.name, 0)
    tell = on_event or runner.ignore
    # a failed gate raises ReferenceGateError, a CheckFailed
    reference = reference_for(
        problem, on_progress=lambda step: tell(runner.StudyProgress("reference", step.text))
    )
    if user.pyro is not None and user.numpyro is not None:
        agreement = compare(
            registry.implementation(user.name, "numpyro"),
            registry.implementation(user.name, "pyro"),
            problem.data,
            problem.params,
            reference.draws,
        )
        if not agreement.ok:
            raise CheckFailed(agreement.problem())
    return verified.verification_digest(user, reference.path)


def check(
    model: Model | None = None,
    data: Any = None,
    *,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    pyro: Model | None = None,
    numpyro: Model | None = None,
    guides: Sequence[str | Callable[..., Any]] | None = None,
    backend: str | Sequence[str] | None = None,
    backends: Sequence[str] | None = None,
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
    recheck: bool = False,
    progress: bool = False,
    option: Option = python_option,
) -> CheckResult:
    """Fit ``guides`` to a user's model with each backend and evaluate every fit against the model's
    NUTS reference: log p(x) = ELBO + KL(q || p(z | x)), with log p(x) by AIS (``docs/api.md``).

    model (or numpyro= and/or pyro=: both are compared at reference draws first): a NumPyro or Pyro
        function or ``"FILE.py:NAME"``, called ``model(*args, **kwargs)`` as ``MCMC.run`` calls it;
        observed sites are those given ``obs``. One defined in a script or notebook runs in this process.
    args, kwargs, or data (a dict of keyword arguments, a DataFrame's columns, a .npz/.json file,
        ``"FILE.py:FUNCTION"`` returning ``(args, kwargs)`` or a dict; a ``model(data)`` gets the dict);
    guides (families, default mean_field and full_rank, and/or the user's guides), backend or backends
        (default: the library of each model), params (fixed keyword arguments), seeds, steps,
        estimators (as ``ppl-suite run``), nuts (``NUTSSettings`` fields), out (``results/check-<name>``),
        report (``reports/check-<name>``; False: none), jobs, fresh (refit every cell), recheck (check
        in full, ignoring the memo), progress (print as ``ppl-suite check`` does), option (messages'
        spelling: ``name=``, or the CLI's ``--name``).

    A check that changed nothing since the last one into the same results folder (the same call, the
    user's files and the modules of theirs they import, the suite's code and the versions of the
    libraries; an import of theirs that cannot be so accounted for means no memo) returns that check's
    result from its memo, importing none of the user's files (``checking.memo``); ``recheck=True``
    checks in full whatever the memo says.

    Raises InputProblem (every problem of the input, nothing run), CheckFailed (the reference failed its
    gates, or the versions disagree), CheckStopped (a KeyboardInterrupt: SIGINT/SIGTERM; cells kept)."""
    from ppl_suite.checking import memo

    arguments = {
        "model": model, "data": data, "args": args, "kwargs": kwargs, "pyro": pyro, "numpyro": numpyro,
        "guides": guides, "backend": backend, "backends": backends, "name": name, "params": params,
        "seeds": seeds, "steps": steps, "estimators": estimators, "nuts": nuts, "out": out, "report": report,
        "jobs": jobs, "fresh": fresh, "progress": progress, "option": option,
    }  # fmt: skip
    call = memo.describe(arguments, _name)
    if call is not None and not (fresh or recheck):
        found = _recalled(call, progress)
        if found is not None:
            return found
    result = _check_in_full(**arguments)
    if call is not None:
        memo.remember(call, result.folder, result.model, result.report_files, result.outcome)
    return result


def _recalled(call: memo_module.Call, progress: bool) -> CheckResult | None:
    """The result recorded by the memo of ``call`` (``checking.memo``), its events printed as
    ``ppl-suite check`` prints them with ``progress``; None where the memo does not hold it, or where
    the folders or caches have a problem that the full check refuses (it says which, exit 2)."""
    from ppl_suite import runner
    from ppl_suite.checking import memo
    from ppl_suite.console import Printer
    from ppl_suite.store import ResultsStore

    if runner.folder_problems(ResultsStore(call.out), call.report):
        return None
    printer = Printer() if progress else None
    try:
        recalled = memo.recall(call, printer)
    finally:
        if printer is not None:
            printer.close()
    if recalled is None:
        return None
    outcome, model = recalled
    return CheckResult(
        ResultsStore(call.out).path, outcome.exit_code, model, dict(outcome.report_files), outcome
    )


@kept_session()
def _check_in_full(
    model: Model | None,
    data: Any,
    *,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    pyro: Model | None,
    numpyro: Model | None,
    guides: Sequence[str | Callable[..., Any]] | None,
    backend: str | Sequence[str] | None,
    backends: Sequence[str] | None,
    name: str | None,
    params: Mapping[str, Any] | None,
    seeds: Sequence[int],
    steps: int | None,
    estimators: Sequence[str] | None,
    nuts: Mapping[str, Any] | None,
    out: str | Path | None,
    report: str | Path | bool | None,
    jobs: int | None,
    fresh: bool,
    progress: bool,
    option: Option,
) -> CheckResult:
    """``check`` run in full: prepare, verify, run the cells and the report (in float64 with the
    compilation cache on; the caller's numerics restored after: ``kept_session``)."""
    from ppl_suite import runner
    from ppl_suite.console import Printer

    chosen = _backend_option(backend, backends)
    on_event = printer = Printer() if progress else None
    try:
        with tempfile.TemporaryDirectory(prefix="ppl-suite-check-") as scratch:
            user, fitted = prepare(
                model, data, args=args, kwargs=kwargs, pyro=pyro, numpyro=numpyro, guides=guides,
                backends=chosen, name=name, params=params, nuts=nuts, data_file=Path(scratch) / stored.DATA,
                option=option,
            )  # fmt: skip
            options = dict(seeds=seeds, steps=steps, estimators=estimators, jobs=jobs, fresh=fresh)
            store, plan = _plan(user, fitted, out, report, options)
            outcome = _run(user, plan, store, on_event or runner.ignore)
    finally:
        if printer is not None:
            printer.close()
    return _finish(user, store.path, outcome)


def _backend_option(backend: str | Sequence[str] | None, backends: Sequence[str] | None) -> list[str] | None:
    """The backends asked for, by ``backend`` (one or several) or ``backends``."""
    if backend is not None and backends is not None:
        raise InputProblem("give backend= or backends=, not both")
    chosen = [backend] if isinstance(backend, str) else backend if backend is not None else backends
    return list(chosen) if chosen is not None else None


def _plan(
    user: UserModel, backends: list[str], out: str | Path | None, report: Any, options: dict[str, Any]
) -> tuple[ResultsStore, Plan]:
    """The results store and the runner's Plan of a check: every cell refit when the stored check's
    fingerprint differs; one job, no plug-in and the executor named ``in_process`` (the manifest says
    so, with no cell timeout) for a model kept in this process."""
    from ppl_suite import runner
    from ppl_suite.store import ResultsStore

    store = ResultsStore(Path(out) if out is not None else Path("results") / f"check-{user.name}")
    report_folder = report if report not in (None, True) else Path("reports") / f"check-{user.name}"
    previous = stored.stored_fingerprint(store.path)
    here = user.in_process()
    plan = runner.Plan(
        profile=PROFILE, models=[user.name], backends=backends, guides=user.guides,
        seeds=list(options["seeds"]) or [0], steps=options["steps"], estimators=options["estimators"],
        jobs=1 if here else options["jobs"], plugins=[] if here else [PLUGIN],
        executor=IN_PROCESS if here else "local",
        fresh=options["fresh"] or (previous is not None and previous != fingerprint(user)),
        report=None if report_folder is False else Path(report_folder),
    )  # fmt: skip
    return store, plan


def _keep(
    user: UserModel, store: ResultsStore, verification: str | None = None, ahead: DrawsAhead | None = None
) -> None:
    """The check's own step of the run, under the folder's lock after the cells, before the report
    (which links the draws): the model's declaration, the stamp of its verification
    (``checking.verified``; ``verification``: its digest), then the draws of every finished cell (the
    files of those drawn ``ahead`` while the cells ran copied in)."""
    from ppl_suite.checking import verified
    from ppl_suite.checking.draws import write_draws

    stored.store(store, user)
    if verification is not None:
        verified.keep(store, verification)
    write_draws(store.path, ahead=ahead)


def _finish(user: UserModel, folder: Path, outcome: Outcome) -> CheckResult:
    """The CheckResult of a run; a stopped run raises CheckStopped carrying it."""
    from ppl_suite import runner

    result = CheckResult(folder, outcome.exit_code, user.name, dict(outcome.report_files), outcome)
    if outcome.status == runner.STOPPED:  # SIGINT or SIGTERM: finished cells kept, nothing more started
        raise CheckStopped(result)
    return result


def _run(user: UserModel, plan: Plan, store: ResultsStore, on_event: OnEvent) -> Outcome:
    """Validate the run (InputProblem), verify the model (CheckFailed; skipped where the results folder's
    stamp proves it passed: ``checking.verified``), run the cells, the check's own step (``_keep``)
    and the report: in worker processes, which do not re-run the user's script
    (``checking.main_module``: nor do the report's figure processes), or in this process for a model
    kept here (``checking.in_process``); the runner's Outcome."""
    from ppl_suite import runner

    problems = runner.run_problems(plan, store) + paths.links(store.path, (stored.FOLDER, stored.DRAWS))
    if problems:
        raise InputProblem(*problems)
    verification: str | None = None  # the digest of the verification, once the run has made it

    def preparing(start_workers: Callable[[], None]) -> None:
        nonlocal verification
        verification = verify(user, on_event, store.path, start_workers)

    def finishing(store: ResultsStore, ahead: DrawsAhead | None = None) -> None:
        _keep(user, store, verification, ahead)

    plan = dataclasses.replace(plan, preparing=preparing, finishing=finishing)
    from ppl_suite.checking.main_module import not_rerun_by_workers

    if user.in_process():
        from ppl_suite.checking.in_process import InProcessExecutor

        with not_rerun_by_workers():
            outcome = runner.run(plan, store, InProcessExecutor(), on_event=on_event)
    else:
        from ppl_suite.cell import Cell
        from ppl_suite.checking.draws import DrawsAhead

        ahead = DrawsAhead(store.path)  # each cell's draws computed while the others run
        plan = dataclasses.replace(plan, finishing=functools.partial(plan.finishing, ahead=ahead))

        def on_run_event(event: runner.Event) -> None:
            on_event(event)
            if isinstance(event, runner.UnitFinished) and event.record.ok and isinstance(event.unit, Cell):
                ahead.draw(event.unit.key)

        try:
            with _environment([user]), not_rerun_by_workers():
                outcome = runner.run(plan, store, on_event=on_run_event)
        finally:
            ahead.close()
    if outcome.status == runner.BAD_INPUT:
        raise InputProblem(*outcome.problems)
    return outcome
