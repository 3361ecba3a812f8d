"""Batches over frames: one call per row through the dispatcher, with estimate, progress and results."""

from .runner import BatchStats, map, run_batch

__all__ = ["BatchStats", "map", "run_batch"]
