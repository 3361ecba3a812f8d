"""One background asyncio loop per process.

Notebook kernels already run an event loop in the main thread, so
``asyncio.run`` cannot be used from a cell.  hybridnb runs its async work on
a daemon thread's loop instead; clients (httpx pools) stay bound to it and are
reused across cells.  A KeyboardInterrupt while waiting cancels the work and
lets its cleanup (ledger records for in-flight calls) finish.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def get_loop() -> asyncio.AbstractEventLoop:
    """The shared background loop, started on first use."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            t = threading.Thread(target=loop.run_forever, name="hybridnb-loop", daemon=True)
            t.start()
            _loop = loop
        return _loop


def run_sync(coro: Coroutine[Any, Any, T], cancel_grace_s: float = 5.0) -> T:
    """Run ``coro`` on the background loop and wait for its result."""
    loop = get_loop()
    if threading.current_thread() is getattr(loop, "_thread", None):  # pragma: no cover
        raise RuntimeError("run_sync called from the hybridnb loop itself")
    fut = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return fut.result()
    except KeyboardInterrupt:
        fut.cancel()
        try:
            fut.result(timeout=cancel_grace_s)
        except (concurrent.futures.CancelledError, concurrent.futures.TimeoutError, Exception):
            pass
        raise
