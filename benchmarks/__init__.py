"""Benchmarks: speed, scaling and overhead (never timed tests). ``python -m benchmarks`` runs the speed
benchmarks (``speed.py``)."""
