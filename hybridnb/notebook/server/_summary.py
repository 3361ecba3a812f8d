"""The state the JupyterLab extension polls: one JSON-able dict built from the ledger.

Everything here is plain functions over a DuckDB connection on the ledger, so
the handler stays thin and the numbers can be checked against a direct query.
A missing, unreadable or half-written ledger gives an empty but valid state
with a ``note``; this module never raises for bad ledger data.
"""

from __future__ import annotations

import math
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from ...store.ledger import AGGREGATES

#: schema version of the JSON the front end reads
VERSION = 1
#: recent calls returned to the panel
RECENT = 20
#: window (seconds) for the per-lane rate and latency figures
LANE_WINDOW_S = 300.0

_SUMS = AGGREGATES
_NUMERIC = ("calls", "cache_hits", "errors", "input_tokens", "output_tokens",
            "cost_usd", "saved_usd", "gpu_hours", "held_s", "busy_s")
_RECENT_COLS = ("ts", "route", "backend", "model", "status", "input_tokens", "output_tokens",
                "cost_usd", "saved_usd", "latency_s", "cached", "notebook", "cell", "session",
                "error_class")


def _clean(v: Any) -> Any:
    """JSON-safe scalars: no NaN/inf (JSON.parse rejects them), no numpy types."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (str, int, bool)) or v is None:
        return v
    if isinstance(v, Decimal):  # a Parquet segment written with DECIMAL columns
        return _clean(float(v))
    if hasattr(v, "item"):
        return _clean(v.item())
    return str(v)


def _rows(con, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [{k: _clean(v) for k, v in zip(names, row)} for row in cur.fetchall()]


def _with_derived(row: dict[str, Any]) -> dict[str, Any]:
    for k in _NUMERIC:
        row[k] = row.get(k) or 0
    row["tokens"] = row["input_tokens"] + row["output_tokens"]
    row["utilisation"] = (row["busy_s"] / row["held_s"]) if row["held_s"] > 0 else None
    return row


def empty_totals() -> dict[str, Any]:
    return _with_derived({})


def scope_filter(kernel: str | None, session: str | None, notebook: str | None):
    """SQL predicate + params selecting the current notebook's rows, or None."""
    parts, params = [], []
    for key in (kernel, session):
        if key:
            parts.append("(session = ? OR contains(session, ?) OR notebook = ?)")
            params += [key, key, key]
    if notebook:
        # the lab's path is relative to its root; a ledger tag may be absolute, or the reverse
        parts.append("(notebook = ? OR ends_with(notebook, '/' || ?)"
                     " OR (notebook <> '' AND ends_with(?, '/' || notebook)))")
        params += [notebook, notebook, notebook]
    if not parts:
        return None, []
    return "(" + " OR ".join(parts) + ")", params


def _totals(con, where: str = "", params: list | None = None) -> dict[str, Any]:
    sql = f"SELECT {_SUMS}, min(ts) AS first_ts, max(ts) AS last_ts FROM ledger"
    rows = _rows(con, sql + (f" WHERE {where}" if where else ""), params)
    return _with_derived(rows[0] if rows else {})


def _breakdown(con, where: str = "", params: list | None = None) -> list[dict[str, Any]]:
    sql = f"""SELECT route, backend, model, {_SUMS}, bool_or(simulated) AS simulated,
                     bool_or(unpriced) AS unpriced, any_value(reference_model) AS reference_model
              FROM ledger {'WHERE ' + where if where else ''}
              GROUP BY ALL ORDER BY cost_usd DESC, route, backend, model"""
    return [_with_derived(r) for r in _rows(con, sql, params)]


def _group(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Re-aggregate route/backend/model rows by a subset of their keys."""
    out: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        k = tuple(r.get(x) for x in keys)
        acc = out.setdefault(k, {**{x: r.get(x) for x in keys}, **{n: 0 for n in _NUMERIC}})
        for n in _NUMERIC:
            acc[n] += r.get(n) or 0
    return sorted((_with_derived(v) for v in out.values()), key=lambda r: -r["cost_usd"])


def _sessions(con, running: dict[str, str]) -> list[dict[str, Any]]:
    sql = f"""SELECT session, arg_max(notebook, ts) AS notebook, {_SUMS},
                     min(ts) AS first_ts, max(ts) AS last_ts
              FROM ledger GROUP BY session ORDER BY last_ts DESC LIMIT 200"""
    rows = [_with_derived(r) for r in _rows(con, sql)]
    for r in rows:
        kid = next((k for k in running if k and k in (r.get("session") or "")), None)
        r["kernel"] = kid
        r["running"] = kid is not None
        if kid and not r.get("notebook"):
            r["notebook"] = running[kid]
    return rows


def _lanes(con, now: float) -> list[dict[str, Any]]:
    """Per (route, backend) over the last LANE_WINDOW_S: rate, latency, errors, utilisation."""
    sql = """SELECT route, backend,
                 count(*) AS calls,
                 count(*) FILTER (WHERE status = 'error') AS errors,
                 count(*) FILTER (WHERE status = 'cached') AS cache_hits,
                 quantile_cont(latency_s, 0.5) FILTER (WHERE status <> 'cached') AS latency_p50_s,
                 quantile_cont(latency_s, 0.95) FILTER (WHERE status <> 'cached') AS latency_p95_s,
                 coalesce(sum(held_s) FILTER (WHERE pricing = 'compute'), 0) AS held_s,
                 coalesce(sum(busy_s) FILTER (WHERE pricing = 'compute'), 0) AS busy_s,
                 max(ts) AS last_ts
              FROM ledger WHERE ts >= ? GROUP BY route, backend ORDER BY route, backend"""
    rows = _rows(con, sql, [now - LANE_WINDOW_S])
    for r in rows:
        r["calls_per_min"] = r["calls"] * 60.0 / LANE_WINDOW_S
        r["utilisation"] = (r["busy_s"] / r["held_s"]) if r["held_s"] else None
        r["window_s"] = LANE_WINDOW_S
    return rows


def _recent(con, where: str = "", params: list | None = None) -> list[dict[str, Any]]:
    cols = ", ".join(_RECENT_COLS)
    sql = f"SELECT {cols} FROM ledger {'WHERE ' + where if where else ''} ORDER BY ts DESC LIMIT {RECENT}"
    return _rows(con, sql, params)


def budget_state(spent: float, limit: float | None, warn_fraction: float = 0.8) -> dict[str, Any]:
    """``state`` is none | ok | warn | over; the colour the status bar shows."""
    if not limit or limit <= 0:
        return {"limit_usd": None, "spent_usd": spent, "remaining_usd": None,
                "fraction": None, "warn_fraction": warn_fraction, "state": "none"}
    frac = spent / limit
    state = "over" if frac >= 1.0 else "warn" if frac >= warn_fraction else "ok"
    return {"limit_usd": limit, "spent_usd": spent, "remaining_usd": max(0.0, limit - spent),
            "fraction": frac, "warn_fraction": warn_fraction, "state": state}


def start_of_today(now: float) -> float:
    t = time.localtime(now)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))


def empty_state(home: Path | str, note: str = "") -> dict[str, Any]:
    now = time.time()
    return {
        "version": VERSION, "generated_at": now, "home": str(home), "note": note,
        "totals": empty_totals(), "today": empty_totals(), "current": None,
        "budget": budget_state(0.0, None), "by_route": [], "by_backend": [], "by_model": [],
        "sessions": [], "lanes": [], "recent": [], "advice": [], "markdown": "",
    }


def build_state(
    home: Path | str,
    *,
    kernel: str | None = None,
    session: str | None = None,
    notebook: str | None = None,
    budget_usd: float | None = None,
    warn_fraction: float = 0.8,
    running: dict[str, str] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The full state for ``home``; ``kernel``/``session``/``notebook`` scope ``current``."""
    from ...store.ledger import connect, ledger_files  # (hybridnb.ledger the attribute is a function)

    now = time.time() if now is None else now
    state = empty_state(home)
    state["generated_at"] = now
    where, params = scope_filter(kernel, session, notebook)
    if where:
        state["current"] = {**empty_totals(), "today": empty_totals(), "by_model": [],
                            "kernel": kernel, "session": session, "notebook": notebook}
    live, sealed = ledger_files(home)
    if not live and not sealed:
        state["note"] = f"no ledger yet under {Path(home) / 'ledger'}"
        state["budget"] = budget_state(0.0, budget_usd, warn_fraction)
        return state
    con = connect(home)
    try:
        state["totals"] = _totals(con)
        state["today"] = _totals(con, "ts >= ?", [start_of_today(now)])
        rows = _breakdown(con)
        state["by_model"] = rows
        state["by_route"] = _group(rows, ("route",))
        state["by_backend"] = _group(rows, ("route", "backend"))
        state["sessions"] = _sessions(con, running or {})
        state["lanes"] = _lanes(con, now)
        state["recent"] = _recent(con)
        if where:
            cur = _totals(con, where, params)
            cur["today"] = _totals(con, f"{where} AND ts >= ?", params + [start_of_today(now)])
            cur["by_model"] = _breakdown(con, where, params)
            cur["kernel"], cur["session"], cur["notebook"] = kernel, session, notebook
            state["current"] = cur
    finally:
        con.close()
    state["budget"] = budget_state(state["totals"]["cost_usd"], budget_usd, warn_fraction)
    return state
