"""Fitted cells shared by every test module of one session: a cell at given settings (the defaults unless
named) is fitted once and read by every test that asserts something of it (test_fit's properties, each
model's own file)."""

from __future__ import annotations

import functools
from types import MappingProxyType
from typing import Any

from ppl_suite.backends import SVIConfig
from ppl_suite.cell import Cell
from ppl_suite.execute import execute

DEFAULT_SVI = SVIConfig()


def fitted_row(
    model: str,
    backend: str,
    guide: str,
    data_seed: int = 0,
    seed: int = 0,
    svi: SVIConfig = DEFAULT_SVI,
    eval_samples: int = Cell.eval_samples,
) -> MappingProxyType:
    """The row of `Cell(model, backend, guide, data_seed, seed, svi=svi, eval_samples=eval_samples)`,
    read-only, fitted once per session however the call names its arguments; a failed cell's row is
    returned as well (tests assert its status)."""
    return _row_of(
        Cell(model, backend, guide, data_seed=data_seed, seed=seed, svi=svi, eval_samples=eval_samples)
    )


@functools.cache
def _row_of(cell: Cell) -> MappingProxyType:
    row: dict[str, Any] = execute(cell).row
    return MappingProxyType(row)
