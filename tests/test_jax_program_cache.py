"""Traced JAX programs kept on disk (``backends.jax_program_cache``, through ``programs.compiled``): a
later process deserializes a kept program instead of tracing it and gets the same numbers; the key
changes with the program, its source, the data and the settings; a damaged file, a function JAX
cannot export, a full disk and the cache turned off cost a tracing, never a failure or a wrong
number."""

from __future__ import annotations

import errno
import re
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest

from ppl_suite.backends import jax_program_cache, kept_programs, programs
from ppl_suite.problem import Problem

X = jnp.linspace(0.5, 2.0, 12).reshape(4, 3)
Y = jnp.linspace(-1.0, 1.0, 6).reshape(3, 2)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh program folder, and no program of another test in this process's store."""
    monkeypatch.setenv("PPL_SUITE_XLA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(programs, "_programs", programs.OrderedDict())
    return tmp_path / "cache" / jax_program_cache.FOLDER


class Build:
    """``build`` for ``compiled``: counts how often the function is traced (built)."""

    def __init__(self, function=None) -> None:
        self.traced = 0
        self.function = function or (lambda x, y: jnp.tanh(jnp.sin(x) @ y).sum(axis=0) * 3.0)

    def __call__(self):
        self.traced += 1
        return self.function


def _another_process() -> None:
    """What a new process has: an empty in-process store."""
    programs._programs.clear()


def _without_locations(hlo: str) -> str:
    """A compiled program's HLO text without its source locations (its metadata and their tables)."""
    tables = re.compile(r"(FileNames|FunctionNames|FileLocations|StackFrames)$|\d+ ")
    lines = [line for line in hlo.splitlines() if not tables.match(line)]
    return re.sub(r", metadata=\{[^}]*\}", "", "\n".join(lines))


def _kept(cache) -> list[str]:
    return sorted(path.name for path in cache.glob(f"*{jax_program_cache.SUFFIX}")) if cache.exists() else []


def test_a_kept_program_is_loaded_by_the_next_process_and_gives_the_same_numbers(cache):
    build = Build()
    first, _ = programs.compiled(("test", "toy"), build, X, Y, source="code 1")
    assert build.traced == 1 and len(_kept(cache)) == 1
    _another_process()
    again, _ = programs.compiled(("test", "toy"), build, X, Y, source="code 1")
    assert build.traced == 1  # deserialized, not traced
    # the tracing process compiled the exported form too: the same program, but for source locations
    assert _without_locations(again.as_text()) == _without_locations(first.as_text())
    np.testing.assert_array_equal(np.asarray(again(X, Y)), np.asarray(first(X, Y)))
    # the numbers of the function compiled directly, without a source (nothing kept)
    _another_process()
    direct, _ = programs.compiled(("test", "toy"), build, X, Y)
    assert build.traced == 2 and len(_kept(cache)) == 1
    np.testing.assert_array_equal(np.asarray(direct(X, Y)), np.asarray(first(X, Y)))


def test_another_program_source_or_jax_setting_is_traced_and_kept_apart(cache):
    build = Build()
    programs.compiled(("test", "toy"), build, X, Y, source="code 1")
    _another_process()
    programs.compiled(("test", "toy", "other settings"), build, X, Y, source="code 1")
    _another_process()
    programs.compiled(("test", "toy"), build, X, Y, source="code 2")  # the model's code changed
    _another_process()
    with jax.default_matmul_precision("highest"):  # a JAX setting the traced program holds
        programs.compiled(("test", "toy"), build, X, Y, source="code 1")
    assert build.traced == 4 and len(_kept(cache)) == 4


def test_the_in_process_store_holds_a_program_per_setting(cache):
    build = Build()
    programs.compiled(("test", "toy"), build, X, Y)
    with jax.default_matmul_precision("highest"):
        programs.compiled(("test", "toy"), build, X, Y)
    assert programs.compiled(("test", "toy"), build, X, Y)[1] == 0.0  # the first one, still held
    assert build.traced == 2


@pytest.mark.parametrize("damage", ["not a program", "one byte flipped"])
def test_a_damaged_file_is_traced_afresh_and_replaced(cache, damage):
    build = Build()
    first, _ = programs.compiled(("test", "toy"), build, X, Y, source="code 1")
    (path,) = cache.glob(f"*{jax_program_cache.SUFFIX}")
    if damage == "not a program":
        path.write_bytes(b"not a program")
    else:  # a byte of the program (its constants, say): it would still deserialize and run
        payload = bytearray(path.read_bytes())
        payload[len(payload) // 2] ^= 0x01
        path.write_bytes(bytes(payload))
    assert jax_program_cache.load(path.name.removesuffix(jax_program_cache.SUFFIX)) is None
    _another_process()
    again, _ = programs.compiled(("test", "toy"), build, X, Y, source="code 1")
    assert build.traced == 2
    np.testing.assert_array_equal(np.asarray(again(X, Y)), np.asarray(first(X, Y)))
    assert jax_program_cache.load(path.name.removesuffix(jax_program_cache.SUFFIX)) is not None


def test_a_function_jax_cannot_export_is_traced_each_time_and_nothing_is_kept(cache):
    def with_callback(x, y):  # a host callback: export refuses it
        return jax.pure_callback(np.sin, jax.ShapeDtypeStruct(x.shape, x.dtype), x) @ y

    build = Build(with_callback)
    first, _ = programs.compiled(("test", "callback"), build, X, Y, source="code 1")
    _another_process()
    again, _ = programs.compiled(("test", "callback"), build, X, Y, source="code 1")
    assert build.traced == 4 and _kept(cache) == []  # each process tries to export it, then traces it
    np.testing.assert_allclose(np.asarray(again(X, Y)), np.sin(np.asarray(X)) @ np.asarray(Y), rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(again(X, Y)), np.asarray(first(X, Y)))


def test_with_the_cache_off_nothing_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("PPL_SUITE_XLA_CACHE", "off")
    monkeypatch.setattr(programs, "_programs", programs.OrderedDict())
    monkeypatch.chdir(tmp_path)
    exported = []
    export = jax.export.export
    monkeypatch.setattr(jax.export, "export", lambda *a, **k: exported.append(1) or export(*a, **k))
    build = Build()
    programs.compiled(("test", "toy"), build, X, Y, source="code 1")
    _another_process()
    programs.compiled(("test", "toy"), build, X, Y, source="code 1")
    assert build.traced == 2 and not jax_program_cache.enabled() and exported == []
    assert list(tmp_path.iterdir()) == []


def test_a_program_that_cannot_be_written_costs_nothing_but_the_next_tracing(cache, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    build = Build()
    with monkeypatch.context() as patched:
        patched.setattr(kept_programs.os, "replace", full_disk)
        first, _ = programs.compiled(("test", "toy"), build, X, Y, source="code 1")
    assert _kept(cache) == [] and [path for path in cache.iterdir()] == []  # no partial file left
    _another_process()
    again, _ = programs.compiled(("test", "toy"), build, X, Y, source="code 1")
    assert build.traced == 2 and len(_kept(cache)) == 1  # traced again, and kept this time
    np.testing.assert_array_equal(np.asarray(again(X, Y)), np.asarray(first(X, Y)))


def test_a_kept_program_that_does_not_lower_for_the_arguments_is_traced_afresh(cache):
    """A file that deserializes but holds another program (a damaged or colliding one) is replaced."""
    other = jax.export.export(jax.jit(lambda x: x + 1.0))(jnp.zeros(7)).serialize()
    name = jax_program_cache.file_key(("test", "toy"), "code 1")
    jax_program_cache.keep(name, other)
    build = Build()
    program, _ = programs.compiled(("test", "toy"), build, X, Y, source="code 1")
    assert build.traced == 1
    np.testing.assert_array_equal(np.asarray(program(X, Y)), np.asarray(jax.jit(build.function)(X, Y)))
    assert jax_program_cache.load(name).in_avals == jax.export.export(jax.jit(build.function))(X, Y).in_avals


def test_what_a_program_is_traced_from_holds_the_data_and_not_a_model_defined_outside_its_folder():
    problem = Problem.build("normal_normal", 0, {"n": 20})
    sources = {
        jax_program_cache.traced_from(problem, "mean_field"),
        jax_program_cache.traced_from(Problem.build("normal_normal", 1, {"n": 20}), "mean_field"),
    }
    assert len(sources) == 2 and None not in sources  # the guide is in the program's own key
    assert jax_program_cache.traced_from(problem, "mean_field") == jax_program_cache.traced_from(
        Problem.build("normal_normal", 0, {"n": 20}), "mean_field"
    )
    outside = replace(problem, spec=replace(problem.spec, module=""))  # a user's model in a script
    assert jax_program_cache.traced_from(outside, "mean_field") is None


def test_a_model_registered_beside_a_copied_spec_is_not_kept(monkeypatch):
    """A user's NumPyro implementation registered with a zoo model's spec (its folder named): the
    folder's hash does not cover the user's function, so its programs are traced in every process."""
    from ppl_suite import registry

    def users_model(data, params):
        return None

    problem = Problem.build("normal_normal", 0, {"n": 20})
    implementation = registry.implementation
    monkeypatch.setattr(
        registry,
        "implementation",
        lambda name, backend: users_model if backend == "numpyro" else implementation(name, backend),
    )
    assert jax_program_cache.traced_from(problem, "mean_field") is None


def test_the_file_key_changes_with_jax_and_numpyro_settings():
    name = jax_program_cache.file_key(("test", "toy"), "code 1")
    with jax.default_matmul_precision("highest"):
        assert jax_program_cache.file_key(("test", "toy"), "code 1") != name
    validating = numpyro.distributions.Distribution._validate_args
    try:
        numpyro.enable_validation(not validating)
        assert jax_program_cache.file_key(("test", "toy"), "code 1") != name
    finally:
        numpyro.enable_validation(validating)
    assert jax_program_cache.file_key(("test", "toy"), "code 1") == name


def test_a_programs_key_tells_apart_fixed_arrays_whose_reprs_are_the_same():
    """A model's fixed parameters are constants of its programs: two arrays that differ only where
    NumPy's repr elides them (past 1 000 elements) are two programs."""
    base = np.zeros(2000)
    changed = base.copy()
    changed[1000] = 1.0
    assert repr(base) == repr(changed)
    problem = Problem.build("normal_normal", 0, {"n": 20})
    keys = [programs.program_key(replace(problem, params={"w": w}), "fit") for w in (base, changed)]
    assert keys[0] != keys[1]
    assert programs.program_key(replace(problem, params={"w": base.copy()}), "fit") == keys[0]
