"""What every command promises at its edges (issue 24): a report folder that cannot be written is bad
input (exit 2, nothing started), found by trying to create a file there, not by permission bits; a
failed `report` writes its error log outside the results folder it only reads; a command that ends
without the interpreter's teardown (issue 26) still runs every exit handler and waits for its threads."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from pathlib import Path

import pytest

from ppl_suite import cli
from ppl_suite.store import unwritable

UNWRITABLE = Path("/proc/ppl-suite-report")  # os.access says writable (to root), creating fails

needs_proc = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")


def results_folder(tmp_path: Path) -> Path:
    """A results folder as a report finds it: a manifest and an empty cells/."""
    from ppl_suite import schema

    folder = tmp_path / "results"
    (folder / "cells").mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({schema.VERSION: schema.SCHEMA_VERSION}))
    return folder


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_unwritable_tries_a_probe_file_and_leaves_nothing(tmp_path):
    assert unwritable(tmp_path) is None and unwritable(tmp_path / "new" / "deeper") is None
    assert list(tmp_path.iterdir()) == []  # the probe is removed, the folder not created
    (tmp_path / "file").write_text("")
    assert unwritable(tmp_path / "file") == f"{tmp_path / 'file'} is a file, not a folder"


@needs_proc
def test_unwritable_finds_what_permission_bits_do_not_say():
    reason = unwritable(UNWRITABLE)
    assert reason is not None and reason.startswith(f"cannot create {UNWRITABLE} (")


def test_report_out_naming_a_file_exits_2_naming_it(tmp_path, capsys):
    results, a_file = results_folder(tmp_path), tmp_path / "report.md"
    a_file.write_text("mine")
    assert cli.main(["report", str(results), "--out", str(a_file)]) == 2
    assert capsys.readouterr().err.strip() == f"ppl-suite: error: --out: {a_file} is a file, not a folder"
    assert a_file.read_text() == "mine"


@needs_proc
def test_report_out_that_cannot_be_created_exits_2(tmp_path, capsys):
    assert cli.main(["report", str(results_folder(tmp_path)), "--out", str(UNWRITABLE)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"ppl-suite: error: --out: cannot create {UNWRITABLE}")


@needs_proc
def test_run_with_a_report_folder_that_cannot_be_created_is_refused_before_any_cell(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "--models", "normal_normal", "--backends", "numpyro", "--out", str(out)]
    assert cli.main([*argv, "--report", str(UNWRITABLE)]) == 2
    assert f"--report: cannot create {UNWRITABLE}" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("report_exists", [True, False])
def test_a_failed_report_logs_its_error_outside_the_results_folder(
    tmp_path, monkeypatch, capsys, report_exists
):
    from ppl_suite.report import render

    def fails(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(render, "write_report", fails)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "temp"))
    (tmp_path / "temp").mkdir()
    results, out = results_folder(tmp_path), tmp_path / "report"
    if report_exists:
        out.mkdir()
    before = listing(results)
    assert cli.main(["report", str(results), "--out", str(out)]) == 4
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: drawing failed (traceback: " in err
    log = Path(err.split("(traceback: ")[1].rsplit(")", 1)[0])
    assert log.parent == (out if report_exists else tmp_path / "temp")
    assert "RuntimeError: drawing failed" in log.read_text()
    assert listing(results) == before  # the results folder is only read
    assert os.access(log, os.R_OK)


PLUGIN_AT_EXIT = """
import atexit, pathlib, threading

marker = pathlib.Path(__file__).with_name("{name}")
if "{name}" == "handler":
    atexit.register(marker.write_text, "ran")
else:  # a thread at work until the main thread is done: the process waits for it
    threading.Thread(target=lambda: (threading.main_thread().join(), marker.write_text("ran"))).start()
"""


@pytest.mark.parametrize("name", ["handler", "thread"])
def test_the_command_ends_without_teardown_only_after_its_exit_handlers_and_threads(tmp_path, name):
    """``ppl-suite`` ends its process without the interpreter's teardown (``cli.run_command``): the
    exit code and every line of output still come out through a pipe, an exit handler registered
    during the command runs, and a thread still at work is waited for."""
    import subprocess

    (tmp_path / f"at_exit_{name}.py").write_text(PLUGIN_AT_EXIT.format(name=name))
    argv = ["run", "--plugins", f"at_exit_{name}", "--models", "normal_normal", "--dry-run"]
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "ppl_suite.cli", *argv, "--out", str(tmp_path / "r")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    cells = [line for line in done.stdout.splitlines() if line.startswith("normal_normal/")]
    assert len(cells) == 6 and done.stdout.endswith("6 cells would run\n")
    assert (tmp_path / name).read_text() == "ran"
    bad = subprocess.run(
        [sys.executable, "-m", "ppl_suite.cli", "run", "--models", "nope"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "unknown model 'nope'" in bad.stderr


class Ended(Exception):
    """``os._exit`` called (the test's stand-in): the process would have ended here."""


def test_run_command_ends_with_os_exit_unless_a_thread_works_or_a_tracer_watches(monkeypatch):
    """After ``main``: the exit handlers (a stand-in here: the test process's own must not run), then
    ``os._exit`` with main's code; a live non-daemon thread, or a trace function (coverage,
    debuggers), gets the usual exit instead."""
    import atexit
    import threading

    calls: list[object] = []
    monkeypatch.setattr(cli, "main", lambda: 2)
    monkeypatch.setattr(atexit, "_run_exitfuncs", lambda: calls.append("handlers"))

    def end(code: int) -> None:
        calls.append(code)
        raise Ended

    monkeypatch.setattr(os, "_exit", end)
    with pytest.raises(Ended):
        cli.run_command()
    assert calls == ["handlers", 2]
    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    try:
        with pytest.raises(SystemExit) as exited:
            cli.run_command()
    finally:
        release.set()
        worker.join()
    assert exited.value.code == 2
    previous = sys.gettrace()
    sys.settrace(lambda *args: None)
    try:
        with pytest.raises(SystemExit):
            cli.run_command()
    finally:
        sys.settrace(previous)
    assert calls == ["handlers", 2]


@pytest.fixture
def closed_pipe():
    """The writing end of a pipe whose reader has gone (``ppl-suite list | head -1`` once head ends):
    every write to it fails with EPIPE."""
    read, write = os.pipe()
    os.close(read)
    yield write
    os.close(write)


@pytest.mark.parametrize(
    ("argv", "buffering"),
    [
        (["list"], {"PYTHONUNBUFFERED": "1"}),  # each line written as printed: main finds the pipe closed
        (["run", "--models", "normal_normal", "--dry-run"], {}),  # buffered: the exit's flush finds it
        (["--version"], {}),  # argparse's own exit (SystemExit), buffered
    ],
    ids=["unbuffered-list", "buffered-dry-run", "version"],
)
def test_a_command_whose_output_is_closed_ends_quietly_with_141(closed_pipe, tmp_path, argv, buffering):
    """No "internal error" line and no traceback file: a closed output stops the command as SIGPIPE
    stops a Unix command, with the shell's code for it, whether the command finds the pipe closed
    while it prints or only when its buffered output is flushed at the end."""
    import subprocess

    env = (
        {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
        | buffering
        | {"TMPDIR": str(tmp_path)}
    )
    done = subprocess.run(
        [sys.executable, "-m", "ppl_suite.cli", *argv], stdout=closed_pipe, stderr=subprocess.PIPE,
        text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (cli.OUTPUT_CLOSED, "")
    assert cli.OUTPUT_CLOSED == 141 and list(tmp_path.iterdir()) == []  # no error log, no results


def test_a_broken_pipe_that_is_not_standard_output_is_an_internal_error(monkeypatch, capfd, tmp_path):
    """A worker's or another file's broken pipe, with standard output open (here a file), exits 4
    naming its traceback's file, as any unexpected error does."""
    import tempfile

    def broken(args) -> int:
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

    monkeypatch.setattr(cli, "command_list", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert cli.main(["list"]) == 4
    assert "internal error: BrokenPipeError" in capfd.readouterr().err
    assert len(list(tmp_path.glob("ppl-suite-error-*.log"))) == 1


def test_a_runs_progress_lines_into_a_closed_pipe_stop_it_as_a_closed_pipe(closed_pipe, monkeypatch, capsys):
    """The progress bar's console (rich) ends the process with SystemExit(1) on a broken pipe, an exit
    code that means a failed cell; the printer raises BrokenPipeError instead (``cli.main``: 141), at
    every event but a stop (SIGINT, SIGTERM), whose line goes to standard error."""
    from types import SimpleNamespace

    import numpy as np

    from ppl_suite import console, runner, schema
    from ppl_suite.cell import Record

    output = open(closed_pipe, "w", closefd=False)  # noqa: SIM115 - closed below, its pipe broken
    monkeypatch.setattr(sys, "stdout", output)
    record = Record({schema.STATUS: "failed", schema.ERROR: "boom", schema.WALL_SECONDS: 1.0}, np.zeros(0))
    finished = runner.UnitFinished(SimpleNamespace(key="a/cell"), record, 1, 2, 1.0, 1.0)
    printer = console.Printer()
    try:
        with pytest.raises(BrokenPipeError):
            printer(runner.ExecutionStarted(2, 1))
            printer(finished)
        with pytest.raises(BrokenPipeError):  # and every event after it
            printer(finished)
        printer(runner.Stopped("SIGINT", 1, 2, Path("out"), False))  # but a stop, told on stderr
        assert "SIGINT: stopped; 1 of 2 cells are kept in out" in capsys.readouterr().err
    finally:
        printer.close()
        with contextlib.suppress(BrokenPipeError):  # what is still buffered for the closed pipe
            output.close()
