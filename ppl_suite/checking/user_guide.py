"""A user's own guide (``--guide FILE.py:GUIDE``, ``ppl_suite.check(guides=[guide])``) as a guide family.

A guide is a NumPyro or Pyro function taking the model's arguments (``guide(*args, **kwargs)``, or
``guide(data)`` / ``guide(data, params)`` beside a model of that form: ``calls.calling``), whose
``param`` sites are its variational parameters and whose sample sites are exactly the model's latent
sites, with the same shapes. It becomes a ``guides.autoguides.GuideProgram`` named after the function:
the backend of its library fits it with Trace_ELBO as it fits an autoguide, and its density is read
from the library's trace (``targets.autoguide_density``), so it is evaluated by the same estimators as
every family. Two guides of one name, one per library, are one family fitted by both backends.

Every problem (a file or function that cannot be loaded, a guide that fails to trace, a sample site
the model lacks or a latent site the guide lacks, a shape that differs, a name already taken) is a
sentence naming the guide and the site; callers refuse the input at once (exit 2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ppl_suite import guides
from ppl_suite.checking import sites as sites_module
from ppl_suite.checking.calls import DATA_FORM, calling
from ppl_suite.checking.sources import InputProblem, closest, load_function, shown
from ppl_suite.guides.autoguides import GuideProgram
from ppl_suite.spec import Site

Declared = dict[str, dict[str, str]]  # guide name -> {library: FILE.py:NAME}


def is_user_guide(guide: str | Callable[..., Any]) -> bool:
    """Whether an entry of a guide list is a user's guide (a function or ``FILE.py:NAME``), not a
    family name."""
    return callable(guide) or ".py:" in guide


def declare(texts: Sequence[str], what: str = "--guide") -> Declared:
    """The guides of ``FILE.py:NAME`` texts by name and library (the library told by the file's
    imports); raises InputProblem naming every guide that cannot be used (``what``: the option that
    gave them, as the front end spells it)."""
    declared: Declared = {}
    problems = []
    for text in texts:
        try:
            function = load_function(text, what)
        except InputProblem as error:
            problems += error.problems
            continue
        name, library = text.rpartition(":")[2], sites_module.library_of(function)
        if library is None:
            problems.append(
                f"{what} {shown(text)}: cannot tell whether it is a NumPyro or a Pyro guide "
                "(its file imports both or neither)"
            )
        elif library in declared.get(name, {}):
            problems.append(
                f"two {library} guides named {name!r}: {shown(declared[name][library])} and {shown(text)}"
            )
        elif name in guides.names() and not isinstance(guides.get(name), GuideProgram):
            problems.append(
                f"{what} {shown(text)}: {name!r} is a guide family of the suite; rename the function"
            )
        else:
            declared.setdefault(name, {})[library] = text
    if problems:
        raise InputProblem(*problems)
    return declared


def family(
    name: str, programs: Mapping[str, str], form: str = DATA_FORM, nones: Sequence[str] = ()
) -> GuideProgram:
    """The GuideProgram of one declared guide, called as its model is (``form``, ``nones``)."""
    loaded = tuple(
        (library, calling(load_function(text, "--guide"), form, nones))
        for library, text in sorted(programs.items())
    )
    origin = ", ".join(f"{library} {text}" for library, text in sorted(programs.items()))
    return GuideProgram(name=name, description=f"the user's own guide ({origin})", programs=loaded)


_registered: Declared = {}  # what this process registered under each name


def register(declared: Declared, form: str = DATA_FORM, nones: Sequence[str] = ()) -> None:
    """Register each declared guide as a guide family called as its model is (again in a process only
    as the same files and functions: a family cannot be replaced)."""
    for name, programs in declared.items():
        if _registered.get(name) == programs:
            continue
        if name in guides.names():
            raise InputProblem(
                f"guide {name!r}: another guide of that name was already checked in this process "
                "(a family cannot be replaced); rename the function"
            )
        guides.register(family(name, programs, form, nones))
        _registered[name] = dict(programs)


def site_problems(name: str, library: str, text: str, data: Mapping[str, Any], params: Mapping[str, Any],
                  model_sites: tuple[Site, ...]) -> list[str]:  # fmt: skip
    """One problem per sample site of the guide the model lacks as a latent site, per latent site the
    guide does not sample, and per shape that differs."""
    guide = guides.get(name)
    what = f"guide {name!r} ({shown(text)})"
    try:
        traced = sites_module.trace_program(guide.program(library), library, data, params, what)
    except InputProblem as error:
        return error.problems
    sampled = {
        site["name"]: site["value"].shape
        for site in traced
        if site["type"] == "sample" and not site["observed"]
    }
    latent = {site.name: site.shape for site in model_sites}
    problems = [
        f"{what} does not sample the model's latent site {site!r}; the guide samples: "
        f"{', '.join(sampled) or 'nothing'}"
        for site in latent
        if site not in sampled
    ]
    problems += [
        f"{what} samples {site!r}{closest(site, latent)}, which is not a latent site of the model (the "
        f"model's: {', '.join(latent)}): q is scored at the model's latents, so a guide samples those alone"
        for site in sampled
        if site not in latent
    ]
    problems += [
        f"{what} samples {site!r} with shape {tuple(sampled[site])}; the model's has shape {latent[site]}"
        for site in latent
        if site in sampled and tuple(sampled[site]) != tuple(latent[site])
    ]
    return problems
