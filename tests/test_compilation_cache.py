"""Where the persistent compilation cache lives, and that a program loaded from it gives the same numbers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ppl_suite.compilation_cache import VARIABLE, cache_dir

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("setting", ["off", "OFF", "0", "none"])
def test_the_cache_can_be_turned_off(monkeypatch, setting):
    monkeypatch.setenv(VARIABLE, setting)
    assert cache_dir() is None


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(VARIABLE, str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(VARIABLE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "ppl-suite" / "xla"


FIT = """
import jax.monitoring
misses = []
jax.monitoring.register_event_listener(lambda event, **_: misses.append(event.endswith("cache_misses")))
from ppl_suite.executors.worker import configure
configure()
import jax.export
exported, export = [], jax.export.export
jax.export.export = lambda *args, **kwargs: exported.append(1) or export(*args, **kwargs)
from ppl_suite.backends import SVIConfig, get
from ppl_suite.problem import Problem
problem = Problem.build("normal_normal", 0, {"n": 20})
fit = get("numpyro").fit(problem, "mean_field", SVIConfig(steps=50, eval_particles=100), 0)
print(repr(fit.losses.tolist()), repr({k: v.tolist() for k, v in fit.phi.items()}))
print(repr((fit.library_elbo.value, fit.library_elbo.se)))
print("traced", len(exported), "misses", sum(misses))
"""


def test_a_cached_program_gives_bitwise_the_same_fit(tmp_path):
    """Two processes share a fresh cache: the first traces, compiles and stores the SVI loop and the
    library's ELBO (``backends.programs``, JAX's cache), the second loads both, traces
    neither, and gives bitwise the first one's numbers."""
    env = {"PATH": "", VARIABLE: str(tmp_path / "cache"), "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    runs = [
        subprocess.run([sys.executable, "-c", FIT], capture_output=True, text=True, env=env, cwd=ROOT)
        for _ in range(2)
    ]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr + runs[1].stderr
    (first, first_counts), (second, second_counts) = (run.stdout.rsplit("traced", 1) for run in runs)
    (first_traced, first_misses), (second_traced, second_misses) = (
        [int(word) for word in counts.split() if word.isdigit()] for counts in (first_counts, second_counts)
    )
    assert (first_traced, second_traced) == (2, 0)  # the SVI loop and the library's ELBO
    # the second process loads (nearly) everything the first compiled; a few tiny programs may differ
    assert second_misses < first_misses / 2
    assert first == second
