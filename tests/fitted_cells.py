"""Fitted cells shared by every test module of one session: a cell at default settings is fitted once
and read by every test that asserts something of it (test_fit's properties, each model's own file)."""

from __future__ import annotations

import functools
from types import MappingProxyType
from typing import Any

from ppl_suite.cell import Cell
from ppl_suite.execute import execute


@functools.cache
def fitted_row(model: str, backend: str, guide: str, data_seed: int = 0, seed: int = 0) -> MappingProxyType:
    """The row of `Cell(model, backend, guide, data_seed, seed)` at default settings, read-only, fitted once
    per session; a failed cell's row is returned as well (tests assert its status)."""
    row: dict[str, Any] = execute(Cell(model, backend, guide, data_seed=data_seed, seed=seed)).row
    return MappingProxyType(row)
