"""Live operator metrics: queue depth, in-flight, wait, latency, throughput.

The dispatcher reports every request's life (queued → started → finished) to
the process-wide :data:`tracker`; the widget and ``hybridnb.signals()`` read
snapshots from it.  Everything here is plain data and thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

#: how many recent finished calls the latency/throughput window keeps
WINDOW = 2048


@dataclass
class _Lane:
    """Counters for one (route, backend) pair."""

    queued: int = 0
    in_flight: int = 0
    max_concurrency: int = 0
    finished: int = 0
    errors: int = 0
    waits: deque = field(default_factory=lambda: deque(maxlen=WINDOW))
    latencies: deque = field(default_factory=lambda: deque(maxlen=WINDOW))
    done_at: deque = field(default_factory=lambda: deque(maxlen=WINDOW))


def _pct(values, q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    i = min(len(s) - 1, max(0, round(q * (len(s) - 1))))
    return s[i]


class Tracker:
    """Process-wide live counters, one lane per (route, backend)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self.backend_metrics: dict[tuple[str, str], dict[str, Any]] = {}

    def _lane(self, route: str, backend: str) -> _Lane:
        key = (route, backend)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        return lane

    def enqueued(self, route: str, backend: str, n: int, max_concurrency: int) -> None:
        with self._lock:
            lane = self._lane(route, backend)
            lane.queued += n
            lane.max_concurrency = max_concurrency

    def started(self, route: str, backend: str, n: int, wait_s: float) -> None:
        with self._lock:
            lane = self._lane(route, backend)
            lane.queued = max(0, lane.queued - n)
            lane.in_flight += n
            lane.waits.extend([wait_s] * n)

    def finished(self, route: str, backend: str, latency_s: float, error: bool) -> None:
        with self._lock:
            lane = self._lane(route, backend)
            lane.in_flight = max(0, lane.in_flight - 1)
            lane.finished += 1
            lane.errors += int(error)
            lane.latencies.append(latency_s)
            lane.done_at.append(time.monotonic())

    def dropped(self, route: str, backend: str, n: int) -> None:
        """Requests that left the queue without running (cancelled, cached)."""
        with self._lock:
            lane = self._lane(route, backend)
            lane.queued = max(0, lane.queued - n)

    def set_backend_metrics(self, route: str, backend: str, metrics: dict | None) -> None:
        with self._lock:
            if metrics is None:
                self.backend_metrics.pop((route, backend), None)
            else:
                self.backend_metrics[(route, backend)] = dict(metrics)

    def snapshot(self, window_s: float = 60.0) -> list[dict[str, Any]]:
        """One dict per lane: queue depth, in-flight, wait/latency percentiles, rate."""
        now = time.monotonic()
        out = []
        with self._lock:
            for (route, backend), lane in sorted(self._lanes.items()):
                recent = [t for t in lane.done_at if now - t <= window_s]
                span = (now - recent[0]) if len(recent) > 1 else 0.0
                out.append(
                    {
                        "route": route,
                        "backend": backend,
                        "queue_depth": lane.queued,
                        "in_flight": lane.in_flight,
                        "max_concurrency": lane.max_concurrency,
                        "saturation": (
                            lane.in_flight / lane.max_concurrency if lane.max_concurrency else 0.0
                        ),
                        "finished": lane.finished,
                        "errors": lane.errors,
                        "wait_p50_s": _pct(lane.waits, 0.5),
                        "wait_p95_s": _pct(lane.waits, 0.95),
                        "latency_p50_s": _pct(lane.latencies, 0.5),
                        "latency_p95_s": _pct(lane.latencies, 0.95),
                        "throughput_rps": (len(recent) / span) if span > 0 else 0.0,
                        "backend_metrics": self.backend_metrics.get((route, backend)),
                    }
                )
        return out

    def reset(self) -> None:
        with self._lock:
            self._lanes.clear()
            self.backend_metrics.clear()


#: the process-wide tracker the dispatcher reports to
tracker = Tracker()


def signals(
    home=None,
    thresholds=None,
    remaining_rows: int | None = None,
    window_s: float = 60.0,
) -> dict[str, Any]:
    """Live operator signals as plain data: lanes, totals and advice.

    ``lanes`` holds one dict per (route, backend): queue depth, in-flight,
    wait and latency p50/p95, throughput, saturation and the backend's own
    metrics (vLLM ``/metrics`` where present).  ``advice`` is a list of dicts
    (kind, title, message, numbers) from :mod:`hybridnb.spend.advice`, computed over
    the ledger under ``home`` (default: the configured home) and these lanes.
    """
    from ..store.ledger import connect
    from .advice import compute_advice
    from ..config import get_settings
    from ..errors import LedgerError

    lanes = tracker.snapshot(window_s)
    errors = []
    try:
        con = connect(home if home is not None else get_settings().home)
    except LedgerError as e:
        con, errors = None, [str(e)]
    try:
        advice = compute_advice(con, lanes, thresholds, remaining_rows)
    finally:
        if con is not None:
            con.close()
    return {
        "ts": time.time(),
        "lanes": lanes,
        "queue_depth": sum(lane["queue_depth"] for lane in lanes),
        "in_flight": sum(lane["in_flight"] for lane in lanes),
        "throughput_rps": sum(lane["throughput_rps"] for lane in lanes),
        "advice": [a.to_dict() for a in advice],
        "errors": errors,
    }
