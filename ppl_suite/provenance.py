"""Where a run's numbers came from, for the manifest: Python's and the packages' versions, the
suite's git commit and the host."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

OTHER_VERSIONED = ("ppl-suite", "pandas", "dask")  # in the manifest beside the numerical packages


def versions() -> dict[str, str]:
    """Python's and the packages' versions, for the manifest."""
    from ppl_suite.store import package_versions

    found = {"python": platform.python_version(), **package_versions()}
    for package in OTHER_VERSIONED:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "absent"
    return found


def git_commit() -> str | None:
    """The commit of the suite's checkout (None outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def host() -> str:
    """The machine's network name."""
    return platform.node()
