"""The widget's aggregate state: built from the ledger, then updated per record.

Pure Python, no widget machinery, so it is cheap to test and to update from
the dispatcher's thread.  :meth:`SpendState.view` returns the JSON-able
values the widget syncs to the front end.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from ...spend import render
from ...spend.report import NOT_CALLS, finish_row, query_rows
from ...store.ledger import ledger_files, query

#: calls kept in "last calls"
RECENT = 8
#: points kept in the spend-over-time series
SERIES_POINTS = 120

RECENT_SQL = """
SELECT ts, route, backend, model, status, input_tokens, output_tokens, cost_usd,
       saved_usd, latency_s, held_s, busy_s, gpus, pricing, error_class
FROM ledger WHERE {where} ORDER BY ts DESC LIMIT {n}
"""

SERIES_SQL = """
WITH c AS (
  SELECT ts, sum(cost_usd) OVER (ORDER BY ts, id ROWS UNBOUNDED PRECEDING) AS cum FROM ledger WHERE {where}
), b AS (
  SELECT min(ts) AS t0, greatest(max(ts) - min(ts), 1e-9) AS span FROM c
)
SELECT max(ts) AS ts, max(cum) AS cum FROM c, b
GROUP BY floor((ts - t0) / span * {n}) ORDER BY 1
"""

_NUM = ("calls", "cache_hits", "errors", "input_tokens", "output_tokens", "cost_usd",
        "saved_usd", "gpu_hours", "held_s", "busy_s", "compute_usd")


def _recent_row(r: dict) -> dict[str, Any]:
    keys = ("ts", "route", "backend", "model", "status", "input_tokens", "output_tokens",
            "cost_usd", "saved_usd", "latency_s", "error_class")
    return {k: r.get(k) for k in keys}


class SpendState:
    """Totals by (route, backend, model), last calls and a cumulative spend series."""

    def __init__(self) -> None:
        self.groups: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.recent: deque = deque(maxlen=RECENT)
        self.series: list[list[float]] = []
        self.total = 0.0

    @classmethod
    def from_ledger(cls, home: Path | str, where: str | None = None,
                    params: list | None = None) -> "SpendState":
        """Aggregate the ledger rows under ``home`` matching ``where`` (the report's query)."""
        s = cls()
        live, sealed = ledger_files(home)
        if not live and not sealed:
            return s
        w, p = where or "true", list(params or [])

        def read(con):
            groups = query_rows(con, w, p)
            cur = con.execute(RECENT_SQL.format(where=w, n=RECENT), p)
            names = [c[0] for c in cur.description]
            recent = [dict(zip(names, r)) for r in cur.fetchall()]
            return groups, recent, con.execute(SERIES_SQL.format(where=w, n=SERIES_POINTS), p).fetchall()

        groups, recent, series = query(home, read)  # retried when a writer sealed a file meanwhile
        for d in groups:
            s.groups[(d["route"], d["backend"], d["model"])] = d
        s.recent.extend(_recent_row(r) for r in reversed(recent))
        s.series = [[t, c] for t, c in series]
        s.total = sum(g["cost_usd"] for g in s.groups.values())
        return s

    def apply(self, record: Any) -> None:
        """Add one ledger record (a Record or a dict with its fields)."""
        r = record if isinstance(record, dict) else vars(record)  # asdict() costs ~0.7 ms
        key = (r["route"], r["backend"], r["model"])
        g = self.groups.get(key)
        if g is None:
            g = self.groups[key] = {"route": key[0], "backend": key[1], "model": key[2],
                                    "compute": False, **{k: 0 for k in _NUM}}
        cached = r["status"] == "cached"
        g["calls"] += not cached and r.get("kind") not in NOT_CALLS
        g["cache_hits"] += cached
        g["errors"] += r["status"] == "error"
        g["unsettled"] = g.get("unsettled", 0) + (r["status"] == "unsettled")  # as store.ledger.AGGREGATES
        g["maybe_billed"] = g.get("maybe_billed", 0) + (r.get("maybe_billed") or 0)
        for k in ("input_tokens", "output_tokens", "cost_usd", "saved_usd"):
            g[k] += r.get(k) or 0
        g["gpu_hours"] += (r.get("held_s") or 0.0) * (r.get("gpus") or 0.0) / 3600.0
        if r.get("pricing") == "compute":  # held/busy count compute-priced rows only (as the ledger query)
            g["compute"] = True
            g["compute_usd"] += r.get("cost_usd") or 0
            g["held_s"] += r.get("held_s") or 0
            g["busy_s"] += r.get("busy_s") or 0
        g["simulated"] = g.get("simulated") or bool(r.get("simulated"))
        g["unpriced"] = g.get("unpriced") or bool(r.get("unpriced"))
        self.total += r.get("cost_usd") or 0
        self.recent.append(_recent_row(r))
        self._add_point(r["ts"])

    def _add_point(self, ts: float) -> None:
        if self.series and ts <= self.series[-1][0]:
            self.series[-1][1] = self.total
        else:
            self.series.append([ts, self.total])
        if len(self.series) > 2 * SERIES_POINTS:
            last = self.series[-1]
            self.series = self.series[:-1:2] + [last]

    # ---------------------------------------------------------------- view

    def totals(self) -> dict[str, Any]:
        out = {k: sum(g[k] for g in self.groups.values()) for k in _NUM}
        out["cost_usd"] = self.total
        return out

    def by_route(self) -> list[dict[str, Any]]:
        routes: dict[str, dict[str, Any]] = {}
        for g in self.groups.values():
            d = routes.setdefault(g["route"], {"route": g["route"], **{k: 0 for k in _NUM}})
            for k in _NUM:
                d[k] += g[k]
        for d in routes.values():
            d["cost"] = render.money(d["cost_usd"])
        return sorted(routes.values(), key=lambda d: (-d["cost_usd"], d["route"]))

    def by_model(self) -> list[dict[str, Any]]:
        """The report's rows (route/backend/model), with the idle cost of compute lanes."""
        out = []
        for g in self.groups.values():
            d = finish_row(dict(g))
            util = d["utilisation"]
            d["idle_usd"] = g["compute_usd"] * (1 - util) if util is not None else 0.0
            d["cost"], d["idle"] = render.money(d["cost_usd"]), render.money(d["idle_usd"])
            out.append(d)
        return sorted(out, key=lambda d: (-d["cost_usd"], d["route"], d["backend"], d["model"]))

    def view(self) -> dict[str, Any]:
        """JSON-able values for the widget's traits."""
        models = self.by_model()
        local = [m for m in models if m["compute"]]  # priced by time held
        return {
            "totals": self.totals(),
            "routes": self.by_route(),
            "models": models,
            "local": local,
            "recent": [{**r, "cost": render.money(r.get("cost_usd"))} for r in reversed(self.recent)],
            "series": [list(p) for p in self.series],
        }
