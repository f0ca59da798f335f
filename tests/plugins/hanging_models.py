"""A user-registered model whose fits never end, loaded with ``--plugins tests.plugins.hanging_models``.

- ``hanging``: Normal-Normal whose Pyro and NumPyro implementations, when called (inside a fit, so
  never in the parent process), hang the worst way a worker can: in native code (libc ``sleep``
  through ``ctypes.PyDLL``, which keeps the GIL, so no Python thread of the process runs again) with
  SIGTERM ignored (through libc, as Python's ``signal`` works only in the main thread and Dask runs
  tasks in others), so that only SIGKILL can end it. It sleeps, so a hung cell costs no CPU.
"""

import ctypes
import signal
from dataclasses import replace

import models
from models.normal_normal import spec

HANG_SECONDS = 3600
SIG_IGN = 1  # <signal.h>: the handler value that ignores a signal


def _hangs(data, params):
    libc = ctypes.PyDLL(None)
    libc.signal.argtypes = (ctypes.c_int, ctypes.c_void_p)
    libc.signal(signal.SIGTERM, SIG_IGN)
    libc.sleep(HANG_SECONDS)


def hanging_task(cell, plugins):
    _hangs({}, {})


if "hanging" not in models.names():
    models.register(
        replace(spec.SPEC, name="hanging", module="", guides=("mean_field",)),
        pyro_model=_hangs,
        numpyro_model=_hangs,
    )
