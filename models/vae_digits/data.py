"""The binarized digits and their fixed train/test split.

1797 images of 8x8 pixels (counts 0..16), read from ``digits.csv.gz`` beside this file (source and
license in README.md there); a pixel is on (1) when its count is at least ``THRESHOLD`` = 8, half its
range. The split is fixed, the same for every seed: ``np.random.default_rng(0).permutation(1797)``,
its first ``TEST_SIZE`` = 500 images the test set, the other 1297 the training set (both in the
permutation's order).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

DATA_FILE = "digits.csv.gz"
PIXELS = 64
THRESHOLD = 8
TEST_SIZE = 500
SPLIT_SEED = 0


@dataclass(frozen=True)
class VAEData:
    """Binary images (float64 0/1, one row per image, 64 pixels row by row) and their digit labels."""

    train: np.ndarray
    test: np.ndarray
    train_labels: np.ndarray
    test_labels: np.ndarray


@cache
def _table() -> np.ndarray:
    """The shipped file as integers, (1797, 65): 64 pixel counts then the label; read once."""
    with resources.files(__package__).joinpath(DATA_FILE).open("rb") as raw, gzip.open(raw, "rt") as text:
        return np.loadtxt(text, delimiter=",", dtype=np.int64, ndmin=2)


def load() -> VAEData:
    """The binarized images split into train (1297) and test (500); fresh arrays on every call."""
    table = _table()
    images = (table[:, :PIXELS] >= THRESHOLD).astype(np.float64)
    labels = table[:, PIXELS].copy()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(table))
    test, train = order[:TEST_SIZE], order[TEST_SIZE:]
    return VAEData(
        train=images[train], test=images[test], train_labels=labels[train], test_labels=labels[test]
    )
