"""A batch progress bar: rows done, rate, spend so far, ETA.

A widget in notebook kernels, plain text in terminals.  (Not ``tqdm.auto``:
it picks the widget whenever ``ipykernel`` is imported, even in a script.)
Updates arrive per row from the dispatcher's loop thread; they are folded
into the bar at most every ``interval_s`` so the bar costs nothing per row.
"""

from __future__ import annotations

import threading
import time

from ..spend.render import money


class Progress:
    """Counts rows and dollars; refreshes the bar at most every ``interval_s``."""

    def __init__(self, total: int, *, enabled: bool = True, desc: str = "batch", interval_s: float = 0.2,
                 done: int = 0):
        self.total = total
        self.spent_usd = 0.0
        self.failed = 0
        self.projected_usd: float | None = None  # the batch's revised total cost, when known
        self._pending = 0
        self._interval = interval_s
        self._last = 0.0
        self._lock = threading.Lock()
        self.bar = None
        if enabled and total:
            self.bar = _tqdm_class()(total=total, desc=desc, unit="row", dynamic_ncols=True, smoothing=0.05,
                            initial=done)

    def update(self, cost_usd: float = 0.0, failed: bool = False, n: int = 1) -> None:
        with self._lock:
            self._pending += n
            self.spent_usd += cost_usd
            self.failed += int(failed)
            if self.bar is None:
                return
            now = time.monotonic()
            if now - self._last >= self._interval:
                self._last = now
                self._flush()

    def _flush(self) -> None:
        post = f"spent {money(self.spent_usd)}"
        if self.projected_usd is not None:
            post += f" of ~{money(self.projected_usd)} projected"
        if self.failed:
            post += f", {self.failed} failed"
        self.bar.set_postfix_str(post, refresh=False)
        self.bar.update(self._pending)
        self._pending = 0

    def close(self) -> None:
        with self._lock:
            if self.bar is not None:
                self._flush()
                self.bar.close()
                self.bar = None


def _tqdm_class():
    """tqdm's notebook widget inside a Jupyter kernel (with ipywidgets), else the text bar."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":
        try:
            from tqdm.notebook import IProgress, tqdm as notebook_tqdm

            if IProgress is not None:
                return notebook_tqdm
        except ImportError:
            pass
    from tqdm.std import tqdm

    return tqdm
