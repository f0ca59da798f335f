"""Every command stops the same way on SIGINT and SIGTERM (issue 24): exit 130 or 143 with one line
saying what stopped it, and no process of it left behind (a SIGTERM during `ppl-suite report` left its
figure workers and multiprocessing's resource tracker running)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from ppl_suite import cli, schema
from tests.processes import below

ROOT = Path(__file__).resolve().parent.parent
SURVIVAL_SECONDS = 10  # no process of a stopped command may outlive it by more

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and /proc")

COMMANDS = {
    "run": ["run"],
    "report": ["report", "results"],
    "check": ["check", "model.py:model", "--data", "data.npz"],
    "reference": ["reference", "normal_normal"],
    "calibrate": ["calibrate"],
    "vae": ["vae"],
}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_exits_128_plus_the_signal_with_one_line(command, signum, monkeypatch, capsys):
    """The command's work is replaced by one that signals this process and waits: what is tested is
    the stop every command shares, not the work."""

    def signalled(args) -> int:
        os.kill(os.getpid(), signum)
        time.sleep(30)  # the signal interrupts it
        return 0

    build = cli.parser

    def parser():
        top = build()
        parse = top.parse_args

        def parse_args(argv=None):
            args = parse(argv)
            args.handler = signalled
            return args

        top.parse_args = parse_args
        return top

    monkeypatch.setattr(cli, "parser", parser)
    previous = signal.getsignal(signal.SIGTERM)
    start = time.monotonic()
    assert cli.main(COMMANDS[command]) == 128 + signum
    assert time.monotonic() - start < 10
    name = signal.Signals(signum).name
    assert capsys.readouterr().err.strip().splitlines() == [
        f"ppl-suite: {name}: stopped; rerun the same command to go on"
    ]
    assert signal.getsignal(signal.SIGTERM) == previous  # the handlers are given back


# a `ppl-suite report` whose figure workers are busy when the signal comes: its sections are replaced by
# figures that take an hour, then it waits (a report of real results is over before a test could stop it)
REPORT_WITH_SLOW_FIGURES = """
import faulthandler, signal, sys, time
from pathlib import Path
from ppl_suite import cli
from ppl_suite.report import render

def build(context):
    for i in range(4):
        context.pool.submit(time.sleep, 3600)
    Path(sys.argv[2]).write_text("drawing")
    time.sleep(3600)

if __name__ == "__main__":  # the figure workers are spawned: they import this file
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks where a hung stop stands
    render.build = build
    sys.exit(cli.main(["report", sys.argv[1], "--out", sys.argv[3]]))
"""


def spawned(process: psutil.Process) -> list[psutil.Process]:
    """Processes below ``process`` that multiprocessing started: workers and the resource tracker."""
    return below(process, "multiprocessing")


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                out.append(process)
        except psutil.NoSuchProcess:
            continue
    return out


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stopped_report_leaves_no_figure_worker_nor_resource_tracker(tmp_path, signum):
    results, ready, out = tmp_path / "results", tmp_path / "ready", tmp_path / "report"
    (results / "cells").mkdir(parents=True)
    (results / "manifest.json").write_text(json.dumps({schema.VERSION: schema.SCHEMA_VERSION}))
    script = tmp_path / "report.py"
    script.write_text(textwrap.dedent(REPORT_WITH_SLOW_FIGURES))
    report = subprocess.Popen(
        [sys.executable, str(script), str(results), str(ready), str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group: a terminal's Ctrl-C goes to the whole group
    )
    parent = psutil.Process(report.pid)
    tree: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        while not (ready.exists() and len(tree := spawned(parent)) >= 2):  # a worker and the tracker
            assert report.poll() is None and time.monotonic() < deadline, report.stderr.read()
            time.sleep(0.05)
        if signum == signal.SIGINT:
            os.killpg(report.pid, signum)
        else:
            report.send_signal(signum)
        try:
            code = report.wait(timeout=60)
        except subprocess.TimeoutExpired:  # say where it hangs: every thread's stack, then fail
            report.send_signal(signal.SIGUSR1)
            time.sleep(2)
            report.kill()
            pytest.fail(f"not stopped 60 s after {signal.Signals(signum).name}:\n{report.stderr.read()}")
        deadline = time.monotonic() + SURVIVAL_SECONDS
        while alive(tree) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive(tree) == [], [p.cmdline() for p in alive(tree)]
    finally:
        for process in [parent, *tree]:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                continue
        report.wait()
    assert code == 128 + signum
    err = report.stderr.read()
    assert f"ppl-suite: {signal.Signals(signum).name}: stopped" in err and "Traceback" not in err, err


def _starts_slowly_then_guards(started: str, guarded: str) -> None:
    """A worker whose start-up (before ``guard``) takes long enough to be signalled in."""
    from ppl_suite.executors.worker import guard

    Path(started).write_text("starting")
    time.sleep(1.0)  # the imports of a worker's start-up: a signal sent now must wait for guard
    guard()
    Path(guarded).write_text("guarded")
    time.sleep(1.0)


@pytest.mark.parametrize(
    "signum, exitcode", [(signal.SIGINT, 0), (signal.SIGTERM, -signal.SIGTERM)], ids=["SIGINT", "SIGTERM"]
)
def test_a_signal_during_a_workers_start_up_waits_for_its_guard(tmp_path, signum, exitcode):
    """A Ctrl-C (SIGINT to the whole group) that reaches a worker still starting is ignored once it is
    guarded, not raised as KeyboardInterrupt in its start-up (a traceback on the user's terminal); a
    stop (SIGTERM) still stops it."""
    from ppl_suite.executors.worker import HeldSpawnContext

    started, guarded = tmp_path / "started", tmp_path / "guarded"
    process = HeldSpawnContext().Process(target=_starts_slowly_then_guards, args=(str(started), str(guarded)))
    process.start()
    deadline = time.monotonic() + 60
    while not started.exists():
        assert process.is_alive() and time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(process.pid, signum)
    process.join(timeout=60)
    assert process.exitcode == exitcode
    assert guarded.exists() == (signum == signal.SIGINT)


def test_cell_and_figure_workers_start_with_interrupts_held():
    """The processes of the local executor and of the report's figure pool are started held (a plain
    spawn would let a Ctrl-C interrupt their start-up)."""
    from ppl_suite.executors import local
    from ppl_suite.executors.worker import HeldSpawnContext, HeldSpawnProcess
    from ppl_suite.report import render

    worker = local._Worker(())
    try:
        assert isinstance(worker.process, HeldSpawnProcess)
    finally:
        local.stop([worker])
    with render._figure_pool(2) as pool:
        assert isinstance(pool._mp_context, HeldSpawnContext)
