"""A path inside a folder: every file the suite opens, writes or deletes inside a results or report
folder is named relative to that folder and resolved here.

    path = inside(results, "cells", f"{digest}.json")   # results/cells/<digest>.json, or OutsideFolder

A relative name may not be absolute nor hold ``..`` (or an empty or ``.`` part), and no part of it
that exists may be a symbolic link (a link to a subfolder, ``logs -> /home/me``, or to a file): the
suite follows no link inside a folder it reads or writes, so nothing outside the folder is read,
written or deleted through it. The folder itself is the user's to name and may be a link.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path, PurePath

from ppl_suite.errors import InputProblem


class OutsideFolder(InputProblem):
    """A path that would leave its folder (``..``, an absolute name, a symbolic link on the way)."""


def inside(folder: str | Path, *parts: str | PurePath) -> Path:
    """``folder/parts`` when it stays inside ``folder`` (module docstring); raises OutsideFolder
    naming the path and why otherwise."""
    root = Path(folder)
    names = [name for part in parts for name in PurePath(part).parts]
    if any(PurePath(part).is_absolute() for part in parts) or any(n in ("", ".", "..") for n in names):
        raise OutsideFolder(f"{PurePath(*parts)} is not a name inside {root} (an absolute path or '..')")
    path = root
    for name in names:
        path = path / name
        if path.is_symlink():
            raise OutsideFolder(
                f"{path} is a symbolic link (to {os.readlink(path)}); the suite follows no link inside "
                f"{root}: remove the link (or replace it by a real folder or file) and rerun"
            )
    return path


def links(folder: str | Path, names: Iterator[str] | tuple[str, ...] | list[str]) -> list[str]:
    """One sentence per name in ``names`` (relative to ``folder``) that is a symbolic link or lies
    under one: what ``inside`` would refuse."""
    problems = []
    for name in names:
        try:
            inside(folder, name)
        except OutsideFolder as error:
            problems.append(str(error))
    return problems


def is_own_file(path: Path) -> bool:
    """True for a regular file (not a link, folder, device or pipe): the only kind the suite removes."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def files(folder: str | Path, subfolder: str, pattern: re.Pattern[str]) -> list[Path]:
    """The regular files of ``folder/subfolder`` (a real folder inside ``folder``) whose names match
    ``pattern`` in full, sorted; [] when the subfolder is missing."""
    place = inside(folder, subfolder) if subfolder else Path(folder)
    if not place.is_dir():
        return []
    return sorted(p for p in place.iterdir() if pattern.fullmatch(p.name) and is_own_file(p))


def remove(folder: str | Path, *parts: str) -> bool:
    """Remove the regular file ``folder/parts`` (checked by ``inside``); a link, folder or missing
    file is left alone. Returns whether a file was removed."""
    path = inside(folder, *parts)
    if not is_own_file(path):
        return False
    path.unlink()
    return True
