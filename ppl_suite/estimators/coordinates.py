"""Latents as a matrix of named scalar coordinates: sites flattened and concatenated in declaration
order, named as ArviZ names them ("mu", "theta[0]", "W[0, 1]")."""

from __future__ import annotations

import numpy as np

from ppl_suite.spec import Latents, Site


def coordinate_names(sites: tuple[Site, ...]) -> list[str]:
    """One name per scalar coordinate, in the column order of ``coordinates``."""
    names = []
    for site in sites:
        for index in np.ndindex(*site.shape):
            names.append(f"{site.name}[{', '.join(map(str, index))}]" if index else site.name)
    return names


def coordinates(sites: tuple[Site, ...], latents: Latents) -> np.ndarray:
    """(n, number of coordinates) float64 matrix of constrained draws."""
    columns = [np.asarray(latents[s.name], dtype=float).reshape(-1, s.size) for s in sites]
    return np.concatenate(columns, axis=1) if columns else np.zeros((0, 0))
