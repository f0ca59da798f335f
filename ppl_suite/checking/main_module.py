"""Worker processes of a check never re-run the user's script.

``multiprocessing``'s spawn start method prepares each child from the parent's ``__main__``
(``multiprocessing.spawn.get_preparation_data``): a script's path (``init_main_from_path``) or a
module's name (``init_main_from_name``, ``python -m``) is run again in the child as ``__mp_main__``.
A script calling ``ppl_suite.check`` without an ``if __name__ == "__main__":`` guard would then call
it again in every worker, which fails as the folder is locked ("worker lost"). A check's workers
need nothing of ``__main__`` (cells are plain data, models are imported by file), so while they are
started the main module's spec reads as ``__main__`` itself, which spawn treats as a package's
``__main__.py``: nothing is run (``multiprocessing.spawn._fixup_main_from_name``).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from importlib.machinery import ModuleSpec

_MISSING = object()


@contextlib.contextmanager
def not_rerun_by_workers() -> Iterator[None]:
    """Within, spawned processes do not run the ``__main__`` module again; its spec is restored after."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = main.__dict__.get("__spec__", _MISSING)
    main.__spec__ = ModuleSpec("__main__", None)
    try:
        yield
    finally:
        if saved is _MISSING:
            del main.__spec__
        else:
            main.__spec__ = saved
