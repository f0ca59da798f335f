"""A re-check skips ``verify``'s work (the reference load, the NumPyro and Pyro log joints compared)
only where its results folder's stamp proves the same verification passed (``checking.verified``):
the same reference file, model sources, data, settings and checking code. Any change does the work
again."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import ppl_suite
from ppl_suite.checking import api, verified
from ppl_suite.references.cache import VARIABLE, reference_path, summary_path
from ppl_suite.references.settings import settings_for
from ppl_suite.store import ResultsStore

NUTS = {"chains": 2, "warmup": 100, "draws": 200, "ess_min": 100, "remedies": False}
NUMPYRO_MODEL = """
import numpyro
import numpyro.distributions as dist


def model(x=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    numpyro.sample("x", dist.Normal(mu, 1.0).expand([3]).to_event(1), obs=x)
"""
PYRO_MODEL = """
import pyro
import pyro.distributions as dist


def model(x=None):
    mu = pyro.sample("mu", dist.Normal(0.0, {scale}))
    pyro.sample("x", dist.Normal(mu, 1.0).expand([3]).to_event(1), obs=x)
"""


class Stored:
    """Stands for the reference store: ``reference_for`` writes the file under the real key's path
    (bytes of its own, no NUTS run) and returns its draws; counts the loads and the comparisons.
    ``work``: raise WorkDone instead (``verify`` went to its work)."""

    def __init__(self, monkeypatch) -> None:
        import ppl_suite.checking.agreement as agreement
        import ppl_suite.references.reference as reference

        self.loads = self.comparisons = 0
        self.work = False
        compare = agreement.compare

        def load(problem, settings=None, **options):
            if self.work:
                raise WorkDone
            self.loads += 1
            path = reference_path(problem, settings or settings_for(problem.spec))
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"a reference of " + path.name.encode())
                summary_path(path).write_text("{}")
            draws = {"mu": np.random.default_rng(0).normal(size=agreement.DRAWS)}
            return SimpleNamespace(path=path, draws=draws)

        def counted_compare(*args, **kwargs):
            self.comparisons += 1
            return compare(*args, **kwargs)

        monkeypatch.setattr(reference, "reference_for", load)
        monkeypatch.setattr(agreement, "compare", counted_compare)

    def take(self) -> tuple[int, int]:
        found, self.loads, self.comparisons = (self.loads, self.comparisons), 0, 0
        return found


class WorkDone(Exception):
    """Raised in place of loading a reference."""


def _prepared(tmp_path: Path, scale: float = 1.0, x: float = 0.5):
    code = tmp_path / f"code-{scale}"
    code.mkdir(exist_ok=True)
    (code / "numpyro_model.py").write_text(NUMPYRO_MODEL)
    (code / "pyro_model.py").write_text(PYRO_MODEL.format(scale=scale))
    user, _ = api.prepare(
        None, None, numpyro=f"{code / 'numpyro_model.py'}:model", pyro=f"{code / 'pyro_model.py'}:model",
        kwargs={"x": np.full(3, x)}, name="verified_twice", nuts=NUTS,
        data_file=tmp_path / f"data-{scale}-{x}.npz",
    )  # fmt: skip
    return user


def test_verify_is_skipped_only_where_the_stamp_matches_and_redone_on_any_change(tmp_path, monkeypatch):
    """The reference file, the data, either version's source and the checking code are in the digest;
    a missing or damaged stamp proves nothing."""
    monkeypatch.setenv(VARIABLE, str(tmp_path / "references"))
    calls = Stored(monkeypatch)
    results = tmp_path / "results"
    user = _prepared(tmp_path)
    digest = api.verify(user)
    assert api.verify(user, results=results) == digest and digest is not None
    assert calls.take() == (2, 2)  # no stamp: the reference loaded and the versions compared, twice
    verified.keep(ResultsStore(results), digest)
    assert verified.stamped(results) == digest
    assert api.verify(user, results=results) == digest and calls.take() == (0, 0)

    with monkeypatch.context() as patched:  # other checking code
        patched.setattr(verified, "CODE_ROOTS", ("ppl_suite.checking.agreement",))
        assert api.verify(user, results=results) != digest and calls.take() == (1, 1)

    reference = verified.reference_file(user)
    copy = tmp_path / reference.name
    content = bytearray(reference.read_bytes())
    content[-1] ^= 0xFF  # another reference file under the same key (one byte, the size kept)
    copy.write_bytes(bytes(content))
    assert verified.verification_digest(user, reference) == digest
    assert verified.verification_digest(user, copy) != digest

    summary = summary_path(reference)
    summary.unlink()  # the summary copy missing: the reference is loaded (which rewrites it)
    assert verified.verification_digest(user, reference) is None
    summary.write_text("{}")
    assert verified.verification_digest(user, reference) == digest

    calls.work = True
    for changed in (_prepared(tmp_path, x=0.7), _prepared(tmp_path, scale=2.0)):  # other data; Pyro edited
        assert verified.reference_file(changed) != reference  # another reference key
        with pytest.raises(WorkDone):
            api.verify(changed, results=results)
    (results / "kept" / "check" / "verified.json").write_text("{not json")  # a damaged stamp: no proof
    assert verified.stamped(results) is None
    with pytest.raises(WorkDone):
        api.verify(user, results=results)


@pytest.mark.slow
def test_a_recheck_keeps_the_stamp_and_skips_verify_with_the_same_table(tmp_path, monkeypatch):
    """A check writes the stamp as a step of its run (``--fresh`` removes it first and the run writes it
    again); checking again reuses every cell and skips verify's work: the same table."""
    import numpyro
    import numpyro.distributions as ndist
    import pyro
    import pyro.distributions as pdist

    def numpyro_model(x=None):
        mu = numpyro.sample("mu", ndist.Normal(0.0, 1.0))
        numpyro.sample("x", ndist.Normal(mu, 1.0).expand([3]).to_event(1), obs=x)

    def pyro_model(x=None):
        mu = pyro.sample("mu", pdist.Normal(0.0, 1.0))
        pyro.sample("x", pdist.Normal(mu, 1.0).expand([3]).to_event(1), obs=x)

    import ppl_suite.checking.agreement as agreement

    monkeypatch.setenv(VARIABLE, str(tmp_path / "references"))
    comparisons = []
    compare = agreement.compare
    monkeypatch.setattr(agreement, "compare", lambda *args: comparisons.append(1) or compare(*args))
    options = dict(
        numpyro=numpyro_model, pyro=pyro_model, kwargs={"x": np.full(3, 0.5)}, guides=["mean_field"],
        steps=5, estimators=["elbo"], nuts=NUTS, out=tmp_path / "results", report=False,
    )  # fmt: skip
    first = ppl_suite.check(**options)
    assert first.exit_code == 0 and len(comparisons) == 1
    stamp = verified.stamped(first.folder)
    assert stamp is not None

    def no_load(*args, **kwargs):
        raise AssertionError("the reference was loaded")

    with monkeypatch.context() as patched:  # every cell and draws file reused: nothing loads it
        patched.setattr("ppl_suite.references.reference.reference_for", no_load)
        again = ppl_suite.check(**options)
    assert len(comparisons) == 1 and again.outcome.rows is not None
    assert again.table.equals(first.table)
    fresh = ppl_suite.check(**options, fresh=True)  # refit: the stamp read before the folder is cleared
    assert len(comparisons) == 1 and verified.stamped(fresh.folder) == stamp
    assert fresh.table.drop(columns="key").equals(first.table.drop(columns="key"))
