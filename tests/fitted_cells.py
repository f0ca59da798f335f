"""Fitted cells shared by every test module of one session: a cell at given settings (the defaults unless
named) is fitted once and read by every test that asserts something of it (test_fit's properties, each
model's own file)."""

from __future__ import annotations

import functools
from types import MappingProxyType

from ppl_suite.backends import SVIConfig
from ppl_suite.cell import Cell, Record
from ppl_suite.execute import execute

DEFAULT_SVI = SVIConfig()


def fitted_record(
    model: str,
    backend: str,
    guide: str,
    data_seed: int = 0,
    seed: int = 0,
    svi: SVIConfig = DEFAULT_SVI,
    eval_samples: int = Cell.eval_samples,
) -> Record:
    """The Record (row, losses, artifacts, estimates) of `Cell(model, backend, guide, data_seed, seed,
    svi=svi, eval_samples=eval_samples)`, executed once per session however the call names its
    arguments; a failed cell's record is returned as well (tests assert its status). Read it, never
    change it: every test of the session shares it."""
    return _record_of(
        Cell(model, backend, guide, data_seed=data_seed, seed=seed, svi=svi, eval_samples=eval_samples)
    )


def fitted_row(
    model: str,
    backend: str,
    guide: str,
    data_seed: int = 0,
    seed: int = 0,
    svi: SVIConfig = DEFAULT_SVI,
    eval_samples: int = Cell.eval_samples,
) -> MappingProxyType:
    """The row of ``fitted_record(...)`` (the same arguments), read-only."""
    return MappingProxyType(fitted_record(model, backend, guide, data_seed, seed, svi, eval_samples).row)


@functools.cache
def _record_of(cell: Cell) -> Record:
    return execute(cell)
