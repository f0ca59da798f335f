"""The per-process program store compiles with the suite's XLA options, which this jaxlib accepts."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from ppl_suite.backends.programs import COMPILER_OPTIONS, UNOPTIMIZED, compiled


def summed(x):
    """Reductions that XLA's fusion emitters tile into reduce-windows and its elemental ones do not."""
    return jnp.exp(x).sum(axis=1) * 2.0 + jnp.log(x).sum()


@pytest.mark.parametrize("optimize", [True, False])
def test_programs_are_compiled_with_the_suites_xla_options(optimize):
    x = jnp.linspace(0.5, 2.0, 150).reshape(50, 3)
    program, seconds = compiled(("test_programs", optimize), lambda: summed, x, optimize=optimize)
    assert seconds > 0
    options = COMPILER_OPTIONS if optimize else {**COMPILER_OPTIONS, **UNOPTIMIZED}
    lowered = jax.jit(summed).lower(x)
    # the store's program is the one these options give, and they change what XLA makes of it: when
    # they no longer do (XLA made both emitters one), COMPILER_OPTIONS has no reason left to exist
    assert program.as_text() == lowered.compile(options).as_text()
    defaults = {key: value for key, value in options.items() if key not in COMPILER_OPTIONS}
    assert program.as_text() != lowered.compile(defaults or None).as_text()
    assert compiled(("test_programs", optimize), lambda: summed, x, optimize=optimize) == (program, 0.0)
