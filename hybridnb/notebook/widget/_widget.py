"""The live spend widget (anywidget: ``_esm`` file + synced traitlets)."""

from __future__ import annotations

import atexit
import math
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable

import anywidget
import traitlets

from ...spend import render
from ...spend.advice import Thresholds, add_capacity, compute_advice
from ...spend.report import Budget, Scope, SpendReport, budget_in
from ._state import SpendState

_HERE = Path(__file__).parent
#: attached widgets, stopped at interpreter exit so no poller is left inside DuckDB
_LIVE: "weakref.WeakSet[SpendWidget]" = weakref.WeakSet()


@atexit.register
def _detach_all() -> None:
    for w in list(_LIVE):
        w.detach()


def _clean(x: Any) -> Any:
    """JSON-safe copy (no NaN/inf, tuples to lists)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


class SpendWidget(anywidget.AnyWidget):
    """Spend, tokens, cache savings, budget, utilisation, signals and advice — live.

    Build it with :meth:`from_ledger`, feed it with :meth:`apply` (or
    :meth:`attach` to the dispatcher, which does so from its thread with
    trait updates throttled to ``max_rate`` per second).
    """

    _esm = _HERE / "_widget.js"
    _css = _HERE / "_widget.css"

    title = traitlets.Unicode("hybridnb").tag(sync=True)
    total_usd = traitlets.Float(0.0).tag(sync=True)
    saved_usd = traitlets.Float(0.0).tag(sync=True)
    calls = traitlets.Int(0).tag(sync=True)
    cache_hits = traitlets.Int(0).tag(sync=True)
    errors = traitlets.Int(0).tag(sync=True)
    input_tokens = traitlets.Int(0).tag(sync=True)
    output_tokens = traitlets.Int(0).tag(sync=True)
    budget_usd = traitlets.Float(None, allow_none=True).tag(sync=True)
    #: the spend in the budget's basis (session, notebook, day or total), read from the ledger
    budget_spent_usd = traitlets.Float(0.0).tag(sync=True)
    #: the budget with its basis (``Budget.to_dict()``: label, line, state, ...)
    budget = traitlets.Dict().tag(sync=True)
    #: the strings shown (``render.display_strings`` of the SpendReport): the JS never formats money
    strings = traitlets.Dict().tag(sync=True)
    routes = traitlets.List().tag(sync=True)
    models = traitlets.List().tag(sync=True)
    local = traitlets.List().tag(sync=True)
    recent = traitlets.List().tag(sync=True)
    series = traitlets.List().tag(sync=True)
    lanes = traitlets.List().tag(sync=True)
    advice = traitlets.List().tag(sync=True)
    updated = traitlets.Float(0.0).tag(sync=True)
    live = traitlets.Bool(False).tag(sync=True)

    def __init__(
        self,
        state: SpendState | None = None,
        home: Path | str | None = None,
        budget_usd: float | None = None,
        thresholds: Thresholds | None = None,
        max_rate: float = 4.0,
        scope: Scope | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(budget_usd=budget_usd, **kwargs)
        self._fixed_budget = budget_usd
        self.scope = scope or Scope("total")
        self._budget_obj = Budget(budget_usd)
        self._dispatcher: Any = None
        self.home = Path(home) if home is not None else None
        self.thresholds = thresholds or Thresholds()
        self.min_interval = 1.0 / max_rate
        self._state = state or SpendState()
        self._lock = threading.RLock()
        self._dirty = False
        self._last_flush = 0.0
        self._timer: threading.Timer | None = None
        self._advice_at = 0.0
        self._advice_cost = 0.0
        self._advice_dirty = False
        self._ledger_advice: list[dict] = []
        self._unsubscribe: Callable[[], Any] | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.flush()

    # ------------------------------------------------------------ building

    @classmethod
    def from_ledger(
        cls,
        home: Path | str | None = None,
        budget_usd: float | None = None,
        where: str | None = None,
        scope: Scope | None = None,
        **kwargs: Any,
    ) -> "SpendWidget":
        """A widget over the ledger rows of ``scope`` under ``home`` (default: this kernel's
        notebook, else its session, else all time; ``where`` is a raw SQL filter instead)."""
        from ...spend.kernel import default_scope
        from ...spend.report import resolve_home

        home = resolve_home(home)
        scope = scope or default_scope()
        w_sql, params = (where, []) if where else scope.where()
        w = cls(SpendState.from_ledger(home, w_sql, params), home=home, budget_usd=budget_usd,
                scope=scope, **kwargs)
        w.refresh_budget()
        w.refresh_advice(force=True)
        return w

    def refresh_budget(self) -> None:
        """Re-read the budget's spend in its basis from the ledger (other kernels count for day/total)."""
        if self.home is None:
            return
        from ...spend.kernel import current_budget, current_keys

        try:
            if self._fixed_budget is None:
                b = current_budget(self.home)
            else:
                from ...config import get_settings

                session, notebook = current_keys()
                b = budget_in(self.home, self._fixed_budget, get_settings().get("budget_per", "session"),
                              session=session, notebook=notebook)
        except Exception:  # a broken config or a ledger mid-rotation: keep the last one
            return
        with self._lock:
            self._budget_obj = b

    # -------------------------------------------------------------- update

    def apply(self, record: Any, flush: bool = True) -> None:
        """Add one ledger record; with ``flush`` the traits update now."""
        with self._lock:
            self._state.apply(record)
            self._count_in_budget(record)
            self._dirty = True
            self._advice_dirty = True
        if flush:
            self.flush()

    def _count_in_budget(self, record: Any) -> None:
        """This kernel's new record is in its budget's basis (its session, notebook, today, total)."""
        r = record if isinstance(record, dict) else vars(record)
        self._budget_obj.spent_usd += r.get("cost_usd") or 0.0

    def flush(self) -> None:
        """Push the aggregate state (and live lanes) to the traits."""
        from ...spend.signals import tracker

        with self._lock:
            self._timer = None
            view = self._state.view()
            lanes = tracker.snapshot()
            live_advice = [a.to_dict() for a in add_capacity(lanes, self.thresholds)]
            t = view["totals"]
            b = self._budget_obj
            rep = SpendReport(self.scope, str(self.home or ""), view["models"], b)
            self._dirty = False
            self._last_flush = time.monotonic()
            with self.hold_sync():
                self.total_usd = float(t["cost_usd"])
                self.saved_usd = float(t["saved_usd"])
                self.calls = int(t["calls"])
                self.cache_hits = int(t["cache_hits"])
                self.errors = int(t["errors"])
                self.budget_usd = b.limit_usd
                self.budget_spent_usd = float(b.spent_usd)
                self.budget = _clean(b.to_dict())
                self.strings = _clean(render.display_strings(rep))
                self.input_tokens = int(t["input_tokens"])
                self.output_tokens = int(t["output_tokens"])
                self.routes = _clean(view["routes"])
                self.models = _clean(view["models"])
                self.local = _clean(view["local"])
                self.recent = _clean(view["recent"])
                self.series = _clean(view["series"])
                self.lanes = _clean(lanes)
                self.advice = _clean(live_advice + self._ledger_advice)
                self.updated = time.time()

    def refresh_advice(self, force: bool = False, every_s: float = 5.0) -> None:
        """Recompute the ledger-based advice (DuckDB) when new records arrived.

        Runs at most every ``every_s`` and never more often than 10× its own
        last duration, so a multi-million-row ledger costs ≤ ~10 % of a core.
        """
        if self.home is None:
            return
        gap = max(every_s, 10 * self._advice_cost)
        if not force and (not self._advice_dirty or time.monotonic() - self._advice_at < gap):
            return
        from ...store.ledger import connect

        t0 = time.monotonic()
        self._advice_at = t0
        self._advice_dirty = False
        try:
            con = connect(self.home)
        except Exception:  # a ledger mid-rotation; try again next time
            self._advice_dirty = True
            return
        try:
            advice = compute_advice(con, (), self.thresholds)
        finally:
            con.close()
        self._advice_cost = time.monotonic() - t0
        with self._lock:
            self._ledger_advice = [a.to_dict() for a in advice]
        self.refresh_budget()
        self.flush()

    def _on_record(self, record: Any) -> None:
        """Dispatcher callback (any thread): apply now, flush at most ``max_rate``/s."""
        with self._lock:
            self._state.apply(record)
            self._count_in_budget(record)
            self._dirty = True
            self._advice_dirty = True
            wait = self.min_interval - (time.monotonic() - self._last_flush)
            if self._timer is not None:
                return
            if wait > 0:
                self._timer = threading.Timer(wait, self.flush)
                self._timer.daemon = True
                self._timer.start()
                return
        self.flush()

    # ---------------------------------------------------------------- live

    def attach(self, dispatcher: Any = None, poll_s: float = 1.0) -> "SpendWidget":
        """Subscribe to the dispatcher's ledger feed and poll live signals."""
        if dispatcher is None:
            from ...core.dispatcher import get_dispatcher

            dispatcher = get_dispatcher()
        self._dispatcher = dispatcher
        handle = dispatcher.subscribe(self._on_record)
        if callable(handle):
            self._unsubscribe = handle
        elif hasattr(dispatcher, "unsubscribe"):
            self._unsubscribe = lambda: dispatcher.unsubscribe(self._on_record)
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll, args=(poll_s,), daemon=True,
                                        name="hybridnb-widget")
        self._poller.start()
        _LIVE.add(self)
        self.live = True
        return self

    def _poll(self, every: float) -> None:
        from ...spend.signals import tracker

        last = None
        while not self._stop.wait(every):
            lanes = tracker.snapshot()
            busy = any(lane["queue_depth"] or lane["in_flight"] for lane in lanes)
            if lanes != last or busy:
                last = lanes
                self.flush()
            self.refresh_advice()

    def detach(self) -> None:
        """Stop the live feed (the widget keeps its last state)."""
        self._stop.set()
        _LIVE.discard(self)
        poller, self._poller = self._poller, None
        if poller is not None and poller is not threading.current_thread():
            poller.join(timeout=10)  # never leave a thread inside DuckDB at exit
        if self._unsubscribe is not None:
            try:
                self._unsubscribe()
            finally:
                self._unsubscribe = None
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self.live = False

    def close(self) -> None:
        self.detach()
        super().close()
