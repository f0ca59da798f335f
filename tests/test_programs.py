"""The per-process program store compiles with the suite's XLA options where the jaxlib has them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from ppl_suite.backends import programs

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the options are XLA:CPU's")


def summed(x: jax.Array) -> jax.Array:
    """Fused elementwise operations and reductions, which the two XLA:CPU emitters compile apart."""
    return jnp.exp(x).sum(axis=1) * 2.0 + jnp.log(x).sum()


X = jnp.linspace(0.5, 2.0, 150).reshape(50, 3)


@pytest.mark.parametrize("optimize", [True, False])
def test_programs_are_compiled_with_the_suites_xla_options(optimize):
    key = ("test_programs", "suite's options", optimize)
    program, _ = programs.compiled(key, lambda: summed, X, optimize=optimize)
    lowered = jax.jit(summed).lower(X)
    chosen = programs.options(optimize)
    assert chosen == ({**programs.COMPILER_OPTIONS, **({} if optimize else programs.UNOPTIMIZED)})
    text = program.as_text()
    assert text is not None
    # the store's program is the one these options give, and they change what XLA makes of it: when
    # they no longer do (XLA kept one emitter), COMPILER_OPTIONS has no reason left to exist
    assert text == lowered.compile(chosen).as_text()
    assert text != lowered.compile({} if optimize else programs.UNOPTIMIZED).as_text()
    assert programs.compiled(key, lambda: summed, X, optimize=optimize) == (program, 0.0)


def test_a_jaxlib_without_the_options_compiles_with_its_defaults(monkeypatch):
    """XLA rejects an option it does not know; the store then compiles this and every later program
    with XLA's defaults instead of failing every fit."""
    monkeypatch.setattr(programs, "COMPILER_OPTIONS", {"xla_option_no_jaxlib_has": True})
    monkeypatch.setattr(programs, "_compiler_options_known", True)
    program, _ = programs.compiled(("test_programs", "unknown option"), lambda: summed, X)
    assert not programs._compiler_options_known and programs.options() == {}
    assert program.as_text() == jax.jit(summed).lower(X).compile().as_text()
    assert bool(jnp.array_equal(program(X), jax.jit(summed)(X)))
