"""``python -m benchmarks [--quick]``: the speed benchmarks (``benchmarks/speed.py``)."""

import sys

from benchmarks.speed import main

sys.exit(main())
