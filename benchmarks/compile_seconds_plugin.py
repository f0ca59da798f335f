"""A pytest plugin for ``benchmarks.suite_compile_share``: each test process writes, per test file,
the seconds its tests took (setup, call and teardown, as ``--durations`` counts them) and the seconds
XLA spent compiling for them.

XLA's seconds are JAX's ``/jax/core/compile/backend_compile_duration`` events (``jax.monitoring``):
each program's backend compile, or its read from the compilation cache, in this process, in wall
seconds (JAX times them with the clock, so a compile waiting for a core counts its wait). A program
is charged to the test running when it compiles (``PYTEST_CURRENT_TEST``); processes a test starts
(a run's workers, a command) are not counted. Active only when COMPILE_SECONDS_FOLDER is set; the
files go there, one per process, at the end of the session.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

COMPILE_SECONDS_FOLDER = "PPL_SUITE_COMPILE_SECONDS_FOLDER"  # where each process writes its figures
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
OUTSIDE_TESTS = "(outside a test)"  # programs compiled at collection, by a plugin's set-up, ...

_compile_seconds: Counter[str] = Counter()
_programs: Counter[str] = Counter()
_test_seconds: Counter[str] = Counter()


def _current_file() -> str:
    current = os.environ.get("PYTEST_CURRENT_TEST")
    return current.split("::")[0] if current else OUTSIDE_TESTS


def _on_duration(event: str, duration_secs: float, **_: object) -> None:
    if event == BACKEND_COMPILE_EVENT:
        file = _current_file()
        _compile_seconds[file] += duration_secs
        _programs[file] += 1


def pytest_configure(config) -> None:
    if os.environ.get(COMPILE_SECONDS_FOLDER):
        import jax.monitoring

        jax.monitoring.register_event_duration_secs_listener(_on_duration)


def pytest_runtest_logreport(report) -> None:
    # in pytest-xdist's controlling process too, which gets every worker's reports: the files written
    # by a controlling process (no PYTEST_XDIST_WORKER) are read only when no worker wrote any
    _test_seconds[report.nodeid.split("::")[0]] += report.duration


def pytest_unconfigure(config) -> None:
    folder = os.environ.get(COMPILE_SECONDS_FOLDER)
    if not folder:
        return
    times = os.times()
    figures = {
        "worker": os.environ.get("PYTEST_XDIST_WORKER"),
        "cpu_seconds": times.user + times.system,
        "test_seconds": dict(_test_seconds),
        "compile_seconds": dict(_compile_seconds),
        "programs": dict(_programs),
    }
    (Path(folder) / f"{os.getpid()}.json").write_text(json.dumps(figures))
