"""What keeps a repeated ``check`` quick without changing what it does: the report's spawned figure
processes never re-run the user's script (a script without a ``__main__`` guard would run its
whole check again in each), a re-check verifies its draws files by the sha256 kept beside them
instead of parsing them, and the model's first trace finds its programs in the compilation cache."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ppl_suite.checking import draws as draws_module


def _spec_while_writing(monkeypatch, calls: list) -> None:
    import ppl_suite.report.render as render

    def write_report(results, out, formats=("md", "html"), processes=None):
        calls.append(getattr(sys.modules["__main__"], "__spec__", None))
        return {}

    monkeypatch.setattr(render, "write_report", write_report)


def test_the_reports_figure_processes_do_not_rerun_the_users_script(tmp_path, monkeypatch):
    """The report of a check (written by the runner, after the check's draws) and ``CheckResult.report``
    are written while the main module's spec reads as a package's ``__main__``: spawned figure
    processes run nothing of the user's script. A Pyro-only model kept in this process, with a small
    NUTS reference (its density through the torch bridge)."""
    import ppl_suite

    def model(x=None):
        import pyro
        import pyro.distributions as dist

        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(mu, 1.0).expand([3]).to_event(1), obs=x)

    calls: list = []
    _spec_while_writing(monkeypatch, calls)
    before = getattr(sys.modules["__main__"], "__spec__", None)
    result = ppl_suite.check(
        pyro=model, kwargs={"x": np.zeros(3)}, guides=["mean_field"], steps=5, estimators=["elbo"],
        nuts={"chains": 2, "warmup": 100, "draws": 200, "ess_min": 100, "remedies": False},
        out=tmp_path / "results", report=tmp_path / "report",
    )  # fmt: skip
    result.report(tmp_path / "again")
    assert [spec.name if spec is not None else None for spec in calls] == ["__main__", "__main__"]
    assert all(spec.origin is None for spec in calls)  # spawn's preparation then runs nothing
    assert getattr(sys.modules["__main__"], "__spec__", None) is before  # restored after


def test_a_recheck_verifies_draws_files_by_their_sha256_and_redraws_a_changed_one(tmp_path, monkeypatch):
    import arviz as az

    from ppl_suite import draws_files
    from ppl_suite.store import ResultsStore

    store = ResultsStore(tmp_path)
    key = "m/numpyro/mean_field/data0/seed0"
    made = draws_module.CellDraws(
        az.from_dict(posterior={"mu": np.zeros((1, 5))}), az.from_dict(posterior={"mu": np.ones((1, 5))})
    )
    draws_module._write(made, store, key, "digest-1")
    found = draws_files.draws_files(tmp_path, key)
    marker = store.kept_file(draws_files.STUDY, *draws_files.cell_parts(key, draws_files.DIGEST))
    digest, hashes = draws_module._stamp(marker.read_text())
    assert digest == "digest-1" and set(hashes) == {"q", "reference"}
    assert draws_module._changed(found, hashes, store, key) == []
    reference = Path(found["reference"])
    content = bytearray(reference.read_bytes())
    content[-1] ^= 0xFF  # one byte changed, the size kept
    reference.write_bytes(bytes(content))
    changed = draws_module._changed(found, hashes, store, key)
    assert len(changed) == 1 and "reference.nc is damaged (not the file written)" in changed[0]
    assert draws_module._stamp("digest-1") is None  # an earlier version's marker: drawn again


def _string_hash(queue) -> None:
    queue.put(hash("theta"))


def _hashes_of_two_spawned_processes() -> set[int]:
    import multiprocessing

    from ppl_suite.executors.local import _hash_seed

    context = multiprocessing.get_context("spawn")
    queue, found = context.Queue(), set()
    for _ in range(2):
        process = context.Process(target=_string_hash, args=(queue,))
        with _hash_seed():
            process.start()
        found.add(queue.get(timeout=60))
        process.join()
    return found


def test_workers_get_one_string_hash_seed_unless_the_user_set_one_and_the_environment_is_restored(
    monkeypatch,
):
    import os

    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    assert len(_hashes_of_two_spawned_processes()) == 1  # the same set order in every worker
    assert "PYTHONHASHSEED" not in os.environ
    monkeypatch.setenv("PYTHONHASHSEED", "7")
    from ppl_suite.executors.local import _hash_seed

    with _hash_seed():
        assert os.environ["PYTHONHASHSEED"] == "7"
    assert os.environ["PYTHONHASHSEED"] == "7"


def test_the_model_is_first_traced_in_float64_with_the_compilation_cache_on(tmp_path):
    """``prepare`` registers (traces) the model under the numerics its cells run with, so the eager
    operations of that trace are compiled once and found in the persistent cache by every later
    check (before, the first trace ran in float32 before the cache was on: about 30 programs compiled
    again in every check); ``kept_session`` restores the caller's settings after."""
    import jax
    import numpyro
    import numpyro.distributions as dist

    from ppl_suite.checking.api import prepare
    from ppl_suite.numerics import kept_session

    seen = []

    def model(x=None):
        seen.append((jax.config.jax_enable_x64, jax.config.jax_compilation_cache_dir))
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        numpyro.sample("x", dist.Normal(mu, 1.0), obs=x)

    with kept_session():
        jax.config.update("jax_enable_x64", False)
        jax.config.update("jax_compilation_cache_dir", None)
        data_file = tmp_path / "data.npz"
        prepare(None, None, numpyro=model, kwargs={"x": np.zeros(3)}, name="traced", data_file=data_file)
    assert seen and all(x64 and cache is not None for x64, cache in seen), seen


def test_write_draws_loads_a_reference_once_and_copies_its_file_to_the_other_cells(tmp_path, monkeypatch):
    """The cells of one problem share its NUTS reference: ``write_draws`` loads it once and writes its
    NetCDF once; the other cells' ``reference.nc`` are byte-for-byte copies (the same bytes a write
    of the same InferenceData gives)."""
    from types import SimpleNamespace

    import arviz as az

    from ppl_suite import draws_files
    from ppl_suite.store import ResultsStore

    reference = az.from_dict(posterior={"mu": np.arange(10.0).reshape(2, 5)})
    loads, writes = [], []
    monkeypatch.setattr(draws_module, "_nuts_reference", lambda problem: loads.append(problem) or reference)
    write = reference.to_netcdf
    monkeypatch.setattr(reference, "to_netcdf", lambda path: writes.append(path) or write(path))
    references = draws_module._References()
    problem = SimpleNamespace(spec=SimpleNamespace(name="m"), data_seed=0, params={"n": 3})
    other = SimpleNamespace(spec=SimpleNamespace(name="m"), data_seed=1, params={"n": 3})
    assert references(problem) is references(problem) is reference and len(loads) == 1
    references(other)
    assert len(loads) == 2  # another data seed: another reference
    store = ResultsStore(tmp_path)
    keys = [
        "m/numpyro/mean_field/data0/seed0",
        "m/pyro/mean_field/data0/seed0",
        "m/pyro/full_rank/data0/seed0",
    ]
    for key in keys:
        q = az.from_dict(posterior={"mu": np.zeros((1, 5))})
        draws_module._write(draws_module.CellDraws(q, references(problem)), store, key, "digest", references)
    assert len(writes) == 1
    found = [draws_files.draws_files(tmp_path, key)["reference"].read_bytes() for key in keys]
    alone = tmp_path / "alone.nc"
    write(str(alone))
    assert found[0] == found[1] == found[2] == alone.read_bytes()


def test_draws_computed_while_the_cells_run_are_written_where_the_row_is_unchanged(tmp_path, monkeypatch):
    """``DrawsAhead`` draws each queued cell in its own thread as it is queued (before ``write_draws``
    is called), writing its files to a folder of its own; ``write_draws`` copies them in for a row that
    still has the digest they were drawn from, and draws again, in the caller's thread, a cell whose
    row changed since or that failed ahead; ``close`` removes the thread's folder."""
    import threading

    import arviz as az
    import pandas as pd

    from ppl_suite import draws_files, results, schema
    from ppl_suite.checking import stored

    keys = {guide: f"m/numpyro/{guide}/data0/seed0" for guide in ("mean_field", "full_rank", "conjugate")}
    rows = pd.DataFrame(
        [{schema.KEY: key, schema.STATUS: schema.OK, schema.DIGEST: f"d-{g}"} for g, key in keys.items()]
    )
    now = rows.copy()  # the rows write_draws reads: one cell refit since it was drawn ahead
    now.loc[now[schema.KEY] == keys["full_rank"], schema.DIGEST] = "d-refit"

    def load(folder):
        return rows if threading.current_thread().name == "ppl-suite-draws" else now

    monkeypatch.setattr(results, "load", load)
    monkeypatch.setattr(stored, "register_stored", lambda *args: None)
    drawn_in, all_ahead = [], threading.Event()

    def row_draws(folder, row, n, seed, references):
        thread = threading.current_thread().name
        drawn_in.append((row[schema.KEY], row[schema.DIGEST], thread))
        if len(drawn_in) == len(keys):
            all_ahead.set()
        if row[schema.KEY] == keys["conjugate"] and thread == "ppl-suite-draws":
            raise RuntimeError("failed ahead")
        posterior = {"mu": np.full((1, 5), float(len(drawn_in)))}
        return draws_module.CellDraws(az.from_dict(posterior=posterior), az.from_dict(posterior=posterior))

    monkeypatch.setattr(draws_module, "_row_draws", row_draws)
    ahead = draws_module.DrawsAhead(tmp_path)
    for key in keys.values():
        ahead.draw(key)
    assert all_ahead.wait(timeout=60)  # drawn while the caller went on
    scratch = Path(ahead._scratch.name)
    assert sorted(p.name for p in scratch.rglob("*.nc")) == ["q.nc", "q.nc", "reference.nc", "reference.nc"]
    written = draws_module.write_draws(tmp_path, ahead=ahead)
    ahead.close()
    assert not scratch.exists()
    main = threading.current_thread().name
    assert drawn_in == [
        (keys["mean_field"], "d-mean_field", "ppl-suite-draws"),
        (keys["full_rank"], "d-full_rank", "ppl-suite-draws"),
        (keys["conjugate"], "d-conjugate", "ppl-suite-draws"),
        (keys["full_rank"], "d-refit", main),
        (keys["conjugate"], "d-conjugate", main),
    ]
    assert set(written) == set(keys.values()) and not ahead._thread.is_alive()
    means = {
        guide: float(az.from_netcdf(str(draws_files.draws_files(tmp_path, key)["q"])).posterior["mu"].mean())
        for guide, key in keys.items()
    }
    assert means == {"mean_field": 1.0, "full_rank": 4.0, "conjugate": 5.0}
