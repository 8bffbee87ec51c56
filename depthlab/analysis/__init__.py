"""Measurements behind the defaults, runnable as `python -m depthlab.analysis.<name>`."""
