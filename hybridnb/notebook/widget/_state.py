"""The widget's aggregate state: built from the ledger, then updated per record.

Pure Python, no widget machinery, so it is cheap to test and to update from
the dispatcher's thread.  :meth:`SpendState.view` returns the JSON-able
values the widget syncs to the front end.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from ...store.ledger import AGGREGATES, connect

#: calls kept in "last calls"
RECENT = 8
#: points kept in the spend-over-time series
SERIES_POINTS = 120

GROUP_SQL = (
    "SELECT route, backend, model, " + AGGREGATES + ",\n"
    "       coalesce(sum(cost_usd) FILTER (WHERE pricing = 'compute'), 0) AS compute_usd,\n"
    "       coalesce(bool_or(pricing = 'compute'), false) AS compute\n"
    "FROM ledger {where} GROUP BY ALL"
)

RECENT_SQL = """
SELECT ts, route, backend, model, status, input_tokens, output_tokens, cost_usd,
       saved_usd, latency_s, held_s, busy_s, gpus, pricing, error_class
FROM ledger {where} ORDER BY ts DESC LIMIT {n}
"""

SERIES_SQL = """
WITH c AS (
  SELECT ts, sum(cost_usd) OVER (ORDER BY ts, id ROWS UNBOUNDED PRECEDING) AS cum FROM ledger {where}
), b AS (
  SELECT min(ts) AS t0, greatest(max(ts) - min(ts), 1e-9) AS span FROM c
)
SELECT max(ts) AS ts, max(cum) AS cum FROM c, b
GROUP BY floor((ts - t0) / span * {n}) ORDER BY 1
"""

_NUM = ("calls", "cache_hits", "errors", "input_tokens", "output_tokens", "cost_usd",
        "saved_usd", "held_s", "busy_s", "compute_usd")


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
    def from_ledger(cls, home: Path | str, where: str | None = None) -> "SpendState":
        """Aggregate every ledger row under ``home`` (DuckDB)."""
        s = cls()
        w = f"WHERE {where}" if where else ""
        con = connect(home)
        try:
            rel = con.sql(GROUP_SQL.format(where=w))
            for row in rel.fetchall():
                d = dict(zip(rel.columns, row))
                s.groups[(d["route"], d["backend"], d["model"])] = d
            rel = con.sql(RECENT_SQL.format(where=w, n=RECENT))
            rows = [dict(zip(rel.columns, r)) for r in rel.fetchall()]
            s.recent.extend(_recent_row(r) for r in reversed(rows))
            s.series = [[t, c] for t, c in con.sql(SERIES_SQL.format(where=w, n=SERIES_POINTS)).fetchall()]
        finally:
            con.close()
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
        g["calls"] += not cached
        g["cache_hits"] += cached
        g["errors"] += r["status"] == "error"
        for k in ("input_tokens", "output_tokens", "cost_usd", "saved_usd", "held_s", "busy_s"):
            g[k] += r.get(k) or 0
        if r.get("pricing") == "compute":
            g["compute"] = True
            g["compute_usd"] += r.get("cost_usd") or 0
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
        return sorted(routes.values(), key=lambda d: (-d["cost_usd"], d["route"]))

    def by_model(self) -> list[dict[str, Any]]:
        out = []
        for g in self.groups.values():
            d = dict(g)
            util = (g["busy_s"] / g["held_s"]) if g["held_s"] else None
            d["utilisation"] = util
            d["idle_usd"] = g["compute_usd"] * (1 - util) if util is not None else 0.0
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
            "recent": list(reversed(self.recent)),
            "series": [list(p) for p in self.series],
        }
