"""The calibration study's settings: a profile's ``[calibration]`` section or ``ppl-suite calibrate``'s
flags (``models``, ``estimators``, ``replicates``, ``level``), checked with one message per problem."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ppl_suite.calibration.tables import DEFAULT_REPLICATES, LEVEL
from ppl_suite.errors import InputProblem

KEYS = ("models", "estimators", "replicates", "level")


@dataclass(frozen=True)
class Settings:
    """What to calibrate: ``models`` and ``estimators`` (empty: every one calibration applies to),
    ``replicates`` R per estimator and regime, the ``level`` of each acceptance interval."""

    models: tuple[str, ...] = ()
    estimators: tuple[str, ...] = ()
    replicates: int = DEFAULT_REPLICATES
    level: float = LEVEL


def problems(settings: Settings, option: Callable[[str], str]) -> list[str]:
    """Every problem with ``settings``, one message each; ``option(key)`` names a setting as the user
    gave it (``--replicates`` on the command line)."""
    from ppl_suite import calibrate, sizes  # the models and estimators: loaded when checking

    found = []
    valid_models = calibrate.calibratable_models()
    if unknown := [m for m in settings.models if m not in valid_models]:
        found.append(
            f"cannot calibrate on model(s) {', '.join(map(repr, unknown))} (calibration needs an exact "
            f"Gaussian posterior that a guide family of the model holds); valid: {', '.join(valid_models)}"
        )
    valid_estimators = calibrate.estimator_names()
    if unknown := [n for n in settings.estimators if n not in valid_estimators]:
        found.append(
            f"unknown estimator(s) {', '.join(map(repr, unknown))}; valid: {', '.join(valid_estimators)}"
        )
    replicates = option("replicates")
    if settings.replicates < 2:
        found.append(f"{replicates} must be at least 2 (an sd needs two), got {settings.replicates}")
    elif too_many := sizes.over_budget(replicates, settings.replicates, 1, "per replicate (its estimate)"):
        found.append(too_many)
    if not 0 < settings.level < 1:
        found.append(f"{option('level')} must lie in (0, 1), got {settings.level}")
    return found


def chosen(models: Sequence[str] | None, estimators: Sequence[str] | None, replicates: int | None,
           level: float | None) -> Settings:  # fmt: skip
    """Settings from optional values (None: the default), each name once in the order given."""
    return Settings(
        models=tuple(dict.fromkeys(models or ())),
        estimators=tuple(dict.fromkeys(estimators or ())),
        replicates=DEFAULT_REPLICATES if replicates is None else replicates,
        level=LEVEL if level is None else level,
    )


def from_table(table: Any) -> Settings:
    """The settings of a ``[calibration]`` section; ``InputProblem`` lists every problem."""
    if not isinstance(table, Mapping):
        raise InputProblem(f"[calibration] must be a table, got {type(table).__name__}")
    found = [
        f"[calibration] has no setting {key!r}; valid: {', '.join(KEYS)}" for key in table if key not in KEYS
    ]
    mistyped = []
    for key, kind in (("models", list), ("estimators", list), ("replicates", int), ("level", (int, float))):
        value = table.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            mistyped.append(
                f"[calibration] {key} must be {'a list of names' if kind is list else 'a number'}: {value!r}"
            )
    found += mistyped
    if not mistyped:  # the values themselves, once each has its type
        settings = chosen(
            table.get("models"), table.get("estimators"), table.get("replicates"), table.get("level")
        )
        found += problems(settings, lambda key: f"[calibration] {key}")
    if found:
        raise InputProblem(*found)
    return settings
