"""Upper bounds of the sizes a user sets (SVI steps and particles, evaluation draws, estimator counts
such as K, chains and temperatures, the VAE study's steps and images), derived from one memory budget,
as a problem's size is bounded by ``spec.MAX_PROBLEM_SIZE``: a size is refused at validation, in one
line, before anything is allocated or run, instead of failing a cell that asks for terabytes.

Every size makes the suite keep at least ``per_unit`` float64 numbers per unit (a loss per SVI step,
log p and log q per evaluation draw, a copy of the problem's data and latents per SVI particle), so

    size * per_unit * 8 bytes <= MEMORY_BUDGET_BYTES

is necessary for the cell to fit in a worker's memory. It is not sufficient (the bound leaves
everything else out): it refuses what cannot run, not what might run slowly.
"""

from __future__ import annotations

MEMORY_BUDGET_BYTES = 2 * 1024**3  # one worker's share of a laptop's memory
FLOAT64_BYTES = 8
MAX_NUMBERS = MEMORY_BUDGET_BYTES // FLOAT64_BYTES  # 268,435,456 float64 numbers


def largest(per_unit: int = 1) -> int:
    """The largest size whose ``per_unit`` numbers per unit fit the budget."""
    return MAX_NUMBERS // max(per_unit, 1)


def over_budget(name: str, size: object, per_unit: int, unit: str) -> str | None:
    """Why ``size`` units of ``per_unit`` numbers each exceed the memory budget (a sentence), or None
    (also when ``size`` is not an integer: its domain says so)."""
    if not isinstance(size, int) or isinstance(size, bool) or size <= largest(per_unit):
        return None
    numbers = "number" if per_unit == 1 else "numbers"
    return (
        f"{name} = {size:,} is too large: at {per_unit:,} float64 {numbers} {unit}, that is "
        f"{size * per_unit * FLOAT64_BYTES / 1024**3:,.0f} GiB, more than the memory budget of "
        f"{MEMORY_BUDGET_BYTES / 1024**3:g} GiB (at most {largest(per_unit):,})"
    )
