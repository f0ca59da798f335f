"""A results or report folder opens no door and survives damage (issue 24). One test per situation:

- --fresh never follows a symlinked subfolder (logs/, problems/, vae/...) nor deletes behind it: exit 2
- a report deletes only the figures it wrote (figures.txt lists name and sha256), nothing at ../
- results.fitted_params reads only the cell's own artifacts/<digest>.npz
- only the suite's own temporary files (.<name>.XXXXXXXX.ppl-suite-partial) are removed
- run.lock as a symbolic link: one clear line, exit 2
- cell_draws never imports the code a check's results folder names; the user passes it again
- a damaged, foreign or newer manifest is named as such (exit 2), never rewritten
- a damaged cell row is not reused; damaged check and draws files are named and redone
- PPL_SUITE_REFERENCE_CACHE naming a file: exit 2; results readers on a missing folder raise
- a property: random damage, links and foreign files never make the suite touch a path outside
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ppl_suite
from ppl_suite import cli, paths, results, schema
from ppl_suite.cell import Cell, Record
from ppl_suite.checking import stored as check_stored
from ppl_suite.errors import InputProblem
from ppl_suite.report.render import forget_stale_figures
from ppl_suite.store import PARTIAL, SCHEMA_VERSION, ResultsStore

CELL = Cell(model="normal_normal", backend="handrolled", guide="mean_field")


def write_folder(path: Path) -> tuple[ResultsStore, str]:
    """A results folder of one finished cell, written by the store as a run writes it (no fit): its
    manifest, row, trace, fitted parameters and estimates. Returns the store and the cell's digest."""
    store = ResultsStore(path)
    row = {**CELL.identity(), schema.STATUS: schema.OK}
    arrays = {f"{schema.PHI_PREFIX}loc": np.array([0.5]), f"{schema.THETA_PREFIX}w": np.array([1.0])}
    store.write(CELL, Record(row=row, losses=np.arange(3.0), artifacts=arrays))
    digest = store.stored(CELL).digest
    store.write_manifest({schema.MANIFEST_CELLS: [CELL.key], schema.MANIFEST_DIGESTS: [digest]})
    return store, digest


@pytest.fixture
def folder(tmp_path) -> tuple[ResultsStore, str]:
    return write_folder(tmp_path / "results")


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder of the user's beside the results folder, with a file in it."""
    place = tmp_path / "outside"
    place.mkdir()
    (place / "error-2000-01-01T00-00-00.log").write_text("the user's")
    (place / "0123456789abcdef.json").write_text("the user's")
    return place


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` with its bytes and modification time."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


def run_argv(out: Path, *extra: str) -> list[str]:
    cell = ["--models", "normal_normal", "--backends", "handrolled", "--guides", "mean_field", "--seeds", "0"]
    return ["run", *cell, "--steps", "50", "--out", str(out), "--jobs", "1", "--no-report", *extra]


# ----------------------------------------------------------------------------------- paths inside
@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../x"])
def test_a_name_leaving_the_folder_is_refused(tmp_path, name):
    with pytest.raises(paths.OutsideFolder):
        paths.inside(tmp_path, name)


@pytest.mark.parametrize("subfolder", ["logs", "cells", "problems", "vae", "vae/parts"])
def test_fresh_never_follows_a_symlinked_subfolder(folder, outside, subfolder, capsys):
    store, _ = folder
    if (store.path / subfolder).exists():
        shutil.rmtree(store.path / subfolder)
    (store.path / subfolder).parent.mkdir(parents=True, exist_ok=True)
    (store.path / subfolder).symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    assert cli.main(run_argv(store.path, "--fresh")) == 2
    err = capsys.readouterr().err
    assert f"{subfolder} is a symbolic link" in err and len(err.splitlines()) == 1
    assert snapshot(outside) == before
    with pytest.raises(paths.OutsideFolder):
        store.discard()
    assert snapshot(outside) == before


def test_run_lock_as_a_symbolic_link_is_refused_with_exit_2(folder, outside, capsys):
    store, _ = folder
    (store.path / "run.lock").unlink(missing_ok=True)
    (store.path / "run.lock").symlink_to(outside / "0123456789abcdef.json")
    before = snapshot(outside)
    assert cli.main(run_argv(store.path)) == 2
    assert "run.lock is a symbolic link" in capsys.readouterr().err
    assert snapshot(outside) == before


def test_a_report_removes_only_figures_it_wrote_inside_its_folder(tmp_path, outside):
    figures = tmp_path / "rep" / "figures"
    figures.mkdir(parents=True)
    (figures / "old-figure.png").write_bytes(b"drawn by an earlier report")
    forget_stale_figures(figures, {"old-figure.png"})  # lists it with its sha256
    (figures / "mine.png").write_text("the user's figure")
    listing = (figures / "figures.txt").read_text()
    (figures / "figures.txt").write_text(
        listing + f"../../outside/0123456789abcdef.json {'0' * 64}\nmine.png {'0' * 64}\n"
    )
    before = snapshot(outside)
    forget_stale_figures(figures, set())
    assert not (figures / "old-figure.png").exists()  # the suite's own: removed
    assert (figures / "mine.png").read_text() == "the user's figure"
    assert snapshot(outside) == before


def test_a_report_folder_with_a_linked_figures_folder_is_refused_before_drawing(
    folder, tmp_path, outside, capsys
):
    store, _ = folder
    (tmp_path / "rep").mkdir()
    (tmp_path / "rep" / "figures").symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    assert cli.main(["report", str(store.path), "--out", str(tmp_path / "rep"), "--format", "md"]) == 2
    assert "figures is a symbolic link" in capsys.readouterr().err
    assert snapshot(outside) == before


def test_a_figure_replaced_by_the_user_is_kept(tmp_path):
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "a.png").write_bytes(b"drawn")
    forget_stale_figures(figures, {"a.png"})
    (figures / "a.png").write_bytes(b"the user's own a.png")
    forget_stale_figures(figures, set())
    assert (figures / "a.png").read_bytes() == b"the user's own a.png"


def test_fitted_params_reads_only_the_cells_own_file(folder, tmp_path):
    store, digest = folder
    phi, theta = results.fitted_params(store.path, CELL.key)
    assert phi["loc"].tolist() == [0.5] and theta["w"].tolist() == [1.0]
    secret = tmp_path / "secret"
    secret.mkdir()
    np.savez(secret / "other.npz", **{f"{schema.PHI_PREFIX}stolen": np.ones(1)})
    row_file = store.path / "cells" / f"{digest}.json"
    row = json.loads(row_file.read_text())
    row_file.write_text(json.dumps(row | {schema.FITTED_PARAMS: "../secret/other.npz"}))
    with pytest.raises(InputProblem, match=r"fitted parameters '\.\./secret/other\.npz'"):
        results.fitted_params(store.path, CELL.key)


def test_only_the_suites_own_temporary_files_are_removed(folder):
    store, digest = folder
    ours = [
        store.path / f".manifest.json.k2j_9x0a{PARTIAL}",
        store.path / "cells" / f".{digest}.json.abcd1234{PARTIAL}",
    ]
    users = [
        store.path / ".manifest.json.original",
        store.path / ".rows.parquet.20240101",
        store.path / "cells" / f".{digest}.json.mybackup",
        store.path / "cells" / f".notes.txt.abcd1234{PARTIAL}",
    ]
    for path in ours + users:
        path.write_text("x")
    assert store.clean_temporary() == 2
    assert not any(p.exists() for p in ours) and all(p.read_text() == "x" for p in users)


def test_temporary_files_of_killed_kept_writes_are_removed_at_any_depth_no_link_followed(folder, outside):
    store, _ = folder
    draws = store.path / "kept" / "check" / "draws" / "m" / "numpyro" / "mean_field" / "0"
    draws.mkdir(parents=True)
    ours = [
        draws / f".q.nc.ab12cd34{PARTIAL}",
        store.path / "kept" / "check" / f".model.json.x1y2z3w4{PARTIAL}",
    ]
    users = [draws / f".Notes.txt.ab12cd34{PARTIAL}", draws / ".q.nc.backup"]
    (store.path / "kept" / "linked").symlink_to(outside)
    behind = outside / f".q.nc.ab12cd34{PARTIAL}"
    for path in ours + users + [behind]:
        path.write_text("x")
    assert store.clean_temporary() == 2
    assert not any(p.exists() for p in ours) and all(p.read_text() == "x" for p in [*users, behind])


def test_fresh_removes_the_kept_files_the_suite_wrote_and_only_those(folder, outside):
    store, _ = folder
    written = [
        store.write_kept("check", ("model.json",), lambda path: path.write_text("{}")),
        store.write_kept("check", ("draws", "m", "0", "q.nc"), lambda path: path.write_bytes(b"nc")),
        store.write_kept("check", ("draws", "m", "0", "digest"), lambda path: path.write_text("{}")),
    ]
    users = [
        store.path / "kept" / "check" / "Notes.txt",
        store.path / "kept" / "check" / "draws" / "mine.csv",
    ]
    for path in users:
        path.write_text("the user's")
    (store.path / "kept" / "check" / "linked").symlink_to(outside)
    (outside / "q.nc").write_text("the user's, behind a link")
    with pytest.raises(ValueError, match="a kept file's name"):
        store.write_kept("check", ("Notes.txt",), lambda path: path.write_text(""))
    store.discard()
    assert (
        not any(path.exists() for path in written)
        and not (store.path / "kept" / "check" / "draws" / "m").exists()
    )
    assert all(path.read_text() == "the user's" for path in users)
    assert (outside / "q.nc").read_text() == "the user's, behind a link"


def test_a_checks_declaration_is_written_through_the_kept_files(tmp_path, monkeypatch):
    """model.json, data.npz and fingerprint.json are kept files: each a temporary file renamed, so a
    write killed half-way leaves the earlier file whole and a temporary file the next run removes."""
    folder, _ = check_folder(tmp_path)
    kept = folder / check_stored.FOLDER
    assert {p.name for p in kept.iterdir()} == {"model.json", "data.npz", "fingerprint.json"}
    before = {name: (kept / name).read_bytes() for name in ("model.json", "fingerprint.json")}
    user = check_stored.stored_model(folder)
    write_text = Path.write_text

    def killed(path, text, *args, **kwargs):
        write_text(path, text[:5])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        check_stored.store(folder, user)
    monkeypatch.undo()
    assert {name: (kept / name).read_bytes() for name in before} == before
    assert not list(kept.glob(f"*{PARTIAL}"))


# ------------------------------------------------------------------------------ results are data
MODEL_FILE = """
import pathlib
pathlib.Path(__file__).with_name("IMPORTED").write_text("ran")

def model(data):
    import numpyro
    import numpyro.distributions as dist
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    numpyro.sample("y", dist.Normal(mu, 1.0), obs=data["y"])
"""


def check_folder(tmp_path: Path) -> tuple[Path, Path]:
    """(a results folder of a check as ``checking.stored.store`` keeps it, the model file it names)."""
    code = tmp_path / "code"
    code.mkdir()
    model = code / "model.py"
    model.write_text(textwrap.dedent(MODEL_FILE))
    np.savez(code / "data.npz", y=np.array([0.1, -0.3]))
    user = check_stored.UserModel(name="data_only", data=str(code / "data.npz"), numpyro=f"{model}:model")
    folder = tmp_path / "results"
    write_folder(folder)
    check_stored.store(folder, user)
    return folder, model


def test_cell_draws_never_imports_the_code_a_results_folder_names(tmp_path):
    folder, model = check_folder(tmp_path)
    with pytest.raises(InputProblem, match="never imported; pass the file"):
        ppl_suite.cell_draws(folder, CELL.key)
    assert not (model.parent / "IMPORTED").exists()


def test_a_stored_model_is_loaded_from_the_file_passed_again_when_its_hash_matches(tmp_path):
    folder, model = check_folder(tmp_path)
    elsewhere = tmp_path / "mine.py"
    elsewhere.write_text(model.read_text() + "\n# edited\n")
    with pytest.raises(InputProblem, match="sha256"):
        check_stored.register_stored(folder, files=[elsewhere])
    assert not (model.parent / "IMPORTED").exists() and not (tmp_path / "IMPORTED").exists()
    shutil.copy(model, elsewhere)
    user = check_stored.register_stored(folder, files=[elsewhere])
    assert user.numpyro == f"{elsewhere.resolve()}:model" and (tmp_path / "IMPORTED").exists()


def test_trusting_the_stored_code_warns_naming_the_file(tmp_path):
    folder, model = check_folder(tmp_path)
    with pytest.warns(UserWarning, match=f"importing the code named by .*{model}"):
        check_stored.register_stored(folder, trust_stored_code=True)


# ------------------------------------------------------------------------------- damaged files
@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (random.Random(0).randbytes(64) + b"\xff", "manifest.json is damaged: not"),
        (b'{"schema_version": 3, "cells": ["a"', "manifest.json is damaged: not JSON"),
        (b"[]", "manifest.json is damaged: a JSON list where an object is expected"),
        (b'{"schema_version": 3, "digests": ["../../x"]}', "manifest.json is damaged: 'digests' holds"),
    ],
    ids=["random-bytes", "truncated-json", "a-list", "a-path-out"],  # the same in every xdist worker
)
@pytest.mark.parametrize("command", ["run", "report"])
def test_a_damaged_manifest_is_named_as_damaged_with_exit_2(
    folder, tmp_path, payload, reason, command, capsys
):
    store, _ = folder
    (store.path / "manifest.json").write_bytes(payload)
    argv = (
        run_argv(store.path)
        if command == "run"
        else ["report", str(store.path), "--out", str(tmp_path / "rep")]
    )
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert reason in err and "no manifest" not in err
    assert (store.path / "manifest.json").read_bytes() == payload  # never rewritten
    with pytest.raises(InputProblem, match=r"manifest\.json is damaged"):
        results.load(store.path)


@pytest.mark.parametrize("command", ["run", "report"])
def test_a_manifest_of_a_newer_schema_is_refused_naming_both_versions(folder, tmp_path, command, capsys):
    store, _ = folder
    manifest = store.path / "manifest.json"
    manifest.write_text(json.dumps(json.loads(manifest.read_text()) | {"schema_version": 999}))
    before = manifest.read_bytes()
    argv = (
        run_argv(store.path)
        if command == "run"
        else ["report", str(store.path), "--out", str(tmp_path / "rep")]
    )
    assert cli.main(argv) == 2
    assert f"schema version 999, newer than this suite's {SCHEMA_VERSION}" in capsys.readouterr().err
    assert manifest.read_bytes() == before


def test_a_cell_row_reduced_to_its_status_is_damaged_and_rerun(folder):
    store, digest = folder
    assert store.stored(CELL).reusable
    (store.path / "cells" / f"{digest}.json").write_text('{"status": "ok"}')
    state = store.stored(CELL)
    assert not state.reusable and f"cells/{digest}.json is damaged (no key" in state.damage
    assert results.load(store.path).empty  # not a row whose key is NaN


@pytest.mark.parametrize("value", ["abc", [1, 2], True])
def test_a_cell_row_with_a_number_that_is_not_one_is_damaged_and_rerun(folder, value):
    store, digest = folder
    cell = store.path / "cells" / f"{digest}.json"
    cell.write_text(json.dumps(json.loads(cell.read_text()) | {schema.ELBO: value}))
    state = store.stored(CELL)
    assert not state.reusable and f"cells/{digest}.json is damaged (elbo not a number" in state.damage
    assert results.load(store.path).empty  # never read into the report as a finished cell


def test_a_writability_probe_left_by_a_killed_process_is_the_suites_own(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    probe = folder / ".ppl-suite-probe.abcd1234.ppl-suite-partial"
    probe.write_text("")
    (folder / ".ppl-suite-probe.notes").write_text("the user's")  # a look-alike without the marker
    store = ResultsStore(folder)
    assert probe in store.temporary_files() and len(store.temporary_files()) == 1
    assert "is not empty (.ppl-suite-probe.notes)" in store.problem()  # only the user's file is foreign
    (folder / ".ppl-suite-probe.notes").unlink()
    assert store.problem() is None  # the probe alone leaves the folder empty for a run


def test_a_damaged_check_fingerprint_is_named_and_its_cells_rerun(tmp_path):
    folder, _ = check_folder(tmp_path)
    fingerprint = folder / check_stored.FOLDER / "fingerprint.json"
    fingerprint.write_text(fingerprint.read_text()[:20])
    with pytest.warns(UserWarning, match="fingerprint.json is damaged.*cells are rerun"):
        assert check_stored.stored_fingerprint(folder) == {}  # matches no check: the cells are rerun


def test_a_damaged_draws_file_is_named_and_drawn_again(folder, monkeypatch):
    import arviz as az

    from ppl_suite.checking import draws

    store, _ = folder
    place = check_stored.draws_folder(store.path, CELL.key)
    fresh = draws.CellDraws(
        az.from_dict(posterior={"mu": np.zeros((1, 5))}), az.from_dict(posterior={"mu": np.ones((1, 5))})
    )
    monkeypatch.setattr(draws, "_row_draws", lambda *args, **kwargs: fresh)
    draws.write_draws(store.path)
    q = place / "q.nc"
    q.write_bytes(q.read_bytes()[:200])
    with pytest.warns(UserWarning, match=r"q.nc is damaged .*drawn again"):
        draws.write_draws(store.path)
    assert az.from_netcdf(str(q)).posterior["mu"].shape == (1, 5)


def test_a_reference_cache_variable_naming_a_file_exits_2(tmp_path, monkeypatch, capsys):
    file = tmp_path / "a-file"
    file.write_text("")
    monkeypatch.setenv("PPL_SUITE_REFERENCE_CACHE", str(file))
    assert cli.main(["reference", "normal_normal"]) == 2
    assert f"PPL_SUITE_REFERENCE_CACHE={file}: {file} is a file, not a folder" in capsys.readouterr().err
    out = tmp_path / "out"  # run refuses it at validation, before any cell runs
    assert cli.main(["run", "--models", "normal_normal", "--out", str(out)]) == 2
    assert f"PPL_SUITE_REFERENCE_CACHE={file}: {file} is a file, not a folder" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("reader", [results.load, results.estimates, results.problems])
def test_reading_a_missing_results_folder_raises_the_input_error(tmp_path, reader):
    with pytest.raises(InputProblem, match="no such results folder"):
        reader(tmp_path / "missing")


# ------------------------------------------------------------------------------- the property
ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["truncate", "link_folder", "link_file", "foreign", "lookalike", "garbage_row"]),
        st.sampled_from(
            [
                "manifest.json",
                "cells",
                "traces",
                "artifacts",
                "estimates",
                "logs",
                "problems",
                "vae",
                "rows.parquet",
                "run.lock",
                "run.holder.json",
                "cells/x",
            ]
        ),
    ),
    max_size=4,
)


def _damage(store: ResultsStore, digest: str, outside: Path, action: str, name: str) -> None:
    path = store.path / name
    if action == "truncate":
        for file in [path] if path.is_file() else sorted(path.glob("*")) if path.is_dir() else []:
            if file.is_file() and not file.is_symlink():
                file.write_bytes(file.read_bytes()[: len(file.read_bytes()) // 2])
    elif action in ("link_folder", "link_file") and not path.exists() and not path.is_symlink():
        path.parent.mkdir(parents=True, exist_ok=True)
        target = outside if action == "link_folder" else outside / f"{digest}.json"
        path.symlink_to(target)
    elif action == "link_folder" and path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
        path.symlink_to(outside, target_is_directory=True)
    elif action == "foreign" and path.is_dir():
        (path / "user-notes.txt").write_text("the user's")
    elif action == "lookalike" and path.parent.is_dir() and not path.parent.is_symlink():
        (path.parent / f".{path.name}.original").write_text("the user's")
    elif (
        action == "garbage_row"
        and (store.path / "cells").is_dir()
        and not (store.path / "cells").is_symlink()
    ):
        (store.path / "cells" / f"{digest}.json").write_text('{"status": "ok"}')


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=ACTIONS)
def test_no_damage_makes_the_suite_touch_a_path_outside_its_folder(tmp_path_factory, actions):
    root = tmp_path_factory.mktemp("property")
    outside = root / "outside"
    outside.mkdir()
    store, digest = write_folder(root / "results")
    for name in (f"{digest}.json", f"{digest}.npy", "error-2000-01-01T00-00-00.log", "losses.parquet"):
        (outside / name).write_bytes(b"the user's " + name.encode())
    for action, name in actions:
        _damage(store, digest, outside, action, name)
    before = snapshot(outside)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for operation in (
            store.problem, store.clean_temporary, store.rows, store.estimates, store.problems, store.finalize,
            lambda: store.stored(CELL), lambda: results.fitted_params(store.path, CELL.key),
            store.discard, lambda: store.write_manifest({}), lambda: store.log_error("x"),
        ):  # fmt: skip
            with contextlib.suppress(InputProblem, KeyError, OSError, ValueError):  # refused, unreadable
                operation()
            assert snapshot(outside) == before
