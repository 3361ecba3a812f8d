"""Exact, online sharing of held wall-clock time between concurrent calls.

Each instant during which k calls are in flight on one lane is split 1/k to
each, so the shares of all calls add up to the union of their intervals: the
time the backend was actually held.  A call's share is known the moment it
finishes, because every call that overlapped it had started by then.
"""

from __future__ import annotations

import itertools
import threading
import time


class HeldClock:
    """Tracks in-flight calls of one lane and hands out held-time shares."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._active: dict[int, float] = {}
        # change points: (time, active count after the change)
        self._events: list[tuple[float, int]] = []

    def start(self, now: float | None = None) -> int:
        t = time.time() if now is None else now
        with self._lock:
            token = next(self._ids)
            self._active[token] = t
            self._events.append((t, len(self._active)))
            return token

    def finish(self, token: int, now: float | None = None) -> float:
        """End call ``token``; return its share of held seconds."""
        t = time.time() if now is None else now
        with self._lock:
            start = self._active.pop(token)
            share = 0.0
            prev_t, prev_k = None, 0
            for et, k in self._events:
                if prev_t is not None and prev_k > 0:
                    a, b = max(prev_t, start), min(et, t)
                    if b > a:
                        share += (b - a) / prev_k
                prev_t, prev_k = et, k
            if prev_t is not None and prev_k > 0:
                a = max(prev_t, start)
                if t > a:
                    share += (t - a) / prev_k
            self._events.append((t, len(self._active)))
            self._prune()
            return share

    def _prune(self) -> None:
        if not self._active:
            self._events = self._events[-1:]
            return
        oldest = min(self._active.values())
        i = 0
        while i + 1 < len(self._events) and self._events[i + 1][0] <= oldest:
            i += 1
        if i:
            del self._events[:i]
