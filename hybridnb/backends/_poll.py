"""Polling any backend's saturation metrics into the operator signals while a batch runs."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator


@contextlib.asynccontextmanager
async def poll_metrics(backend: Any, route: str, backend_name: str | None = None,
                       interval_s: float = 1.0) -> AsyncIterator[None]:
    """While the block runs, push ``backend.metrics()`` into the signals tracker every ``interval_s``.

    Works for any Backend; stops polling (after one push of None) when the
    backend has no metrics.  One last scrape lands when the block ends.
    """
    from ..spend.signals import tracker

    name = backend_name or backend.name

    async def scrape() -> bool:
        try:
            m = await backend.metrics()
        except Exception:  # a metrics hiccup must never break a batch
            m = None
        tracker.set_backend_metrics(route, name, m)
        return m is not None or backend.metrics_state == "unreachable"

    async def loop() -> None:
        while await scrape():
            await asyncio.sleep(interval_s)

    task = asyncio.ensure_future(loop())
    try:
        yield
    finally:
        alive = not task.done()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        if alive:
            await scrape()
