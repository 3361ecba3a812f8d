"""The state the JupyterLab extension polls: one :class:`~hybridnb.spend.report.SpendReport`
(the active notebook's, with its kernel's budget) plus the operator's activity view.

The spend numbers, the budget and every displayed amount come from the report and
:mod:`hybridnb.spend.render`; this module adds only what the panel alone shows
(lanes over the last minutes, kernels, recent calls).  A missing or unreadable
ledger gives an empty but valid state with a ``note``; this module never raises.
"""

from __future__ import annotations

import math
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from ...spend import render
from ...spend.kernel import read_kernel_file
from ...spend.report import Budget, Scope, SpendReport, budget_in, build_report, utilisation, warn_fraction_of
from ...store.ledger import AGGREGATES, ledger_files, query

#: schema version of the JSON the front end reads
VERSION = 2
#: recent calls returned to the panel
RECENT = 20
#: window (seconds) for the per-lane rate and latency figures
LANE_WINDOW_S = 300.0

_RECENT_COLS = ("ts", "route", "backend", "model", "status", "input_tokens", "output_tokens",
                "cost_usd", "saved_usd", "latency_s", "cached", "notebook", "cell", "session",
                "error_class", "kind")


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


def sessions(con, running: dict[str, str]) -> list[dict[str, Any]]:
    """Spend per kernel session (latest first), marked running when its kernel is."""
    sql = f"""SELECT session, arg_max(notebook, ts) AS notebook, {AGGREGATES},
                     min(ts) AS first_ts, max(ts) AS last_ts
              FROM ledger GROUP BY session ORDER BY last_ts DESC LIMIT 200"""
    rows = _rows(con, sql)
    for r in rows:
        kid = next((k for k in running if k and k in (r.get("session") or "")), None)
        r["kernel"], r["running"] = kid, kid is not None
        if kid and not r.get("notebook"):
            r["notebook"] = running[kid]
        r["tokens"] = (r["input_tokens"] or 0) + (r["output_tokens"] or 0)
        r["cost"] = render.money(r["cost_usd"])
    return rows


def lanes(con, now: float) -> list[dict[str, Any]]:
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
        r["utilisation"] = utilisation(r["busy_s"], r["held_s"])
        r["window_s"] = LANE_WINDOW_S
    return rows


def recent(con) -> list[dict[str, Any]]:
    cols = ", ".join(_RECENT_COLS)
    rows = _rows(con, f"SELECT {cols} FROM ledger ORDER BY ts DESC LIMIT {RECENT}")
    for r in rows:
        r["cost"] = render.money(r["cost_usd"])
    return rows


def scope_and_budget(home: Path, kernel: str | None, notebook: str | None,
                     settings_budget: tuple[float | None, str, float]) -> tuple[Scope, Budget]:
    """The report's scope and the budget to show: the kernel's own (its published file).

    Without a notebook the server's settings give the budget, labelled as such.
    """
    info = read_kernel_file(home, kernel=kernel, notebook=notebook) if (kernel or notebook) else None
    if info:
        nb = info.get("notebook") or notebook
        scope = Scope("notebook", session=info.get("session"), notebook=nb, kernel=kernel) if nb \
            else Scope("session", session=info.get("session"), kernel=kernel)
        budget = budget_in(home, info.get("budget_usd"), info.get("budget_per") or "session",
                           session=info.get("session"), notebook=nb,
                           warn_fraction=warn_fraction_of(info.get("budget_warn_fraction")))
        return scope, budget
    if notebook:
        return Scope("notebook", notebook=notebook, kernel=kernel), Budget(None, source="no kernel budget")
    if kernel:
        return Scope("kernel", kernel=kernel), Budget(None, source="no kernel budget")
    limit, per, warn = settings_budget
    if limit and per in ("day", "total"):
        return Scope("total"), budget_in(home, limit, per, warn_fraction=warn, source="settings")
    return Scope("total"), Budget(None, source="settings")


def _totals_view(rep: SpendReport) -> dict[str, Any]:
    t = rep.totals
    return {**t, "cost": render.money(t["cost_usd"]), "saved": render.money(t["saved_usd"])}


def empty_state(home: Path | str, note: str = "") -> dict[str, Any]:
    rep = SpendReport(Scope("total"), str(home), [], Budget(None), note=note)
    empty = _totals_view(rep)
    return {"version": VERSION, "generated_at": rep.generated_at, "home": str(home), "note": note,
            "report": rep.to_dict(), "today": empty, "all": empty, "sessions": [], "lanes": [],
            "recent": [], "markdown": render.to_markdown(rep)}


def build_state(home: Path | str, *, kernel: str | None = None, notebook: str | None = None,
                settings_budget: tuple[float | None, str, float] = (None, "session", 0.8),
                running: dict[str, str] | None = None, now: float | None = None,
                advice: bool = True) -> dict[str, Any]:
    """The full state for ``home``; ``kernel``/``notebook`` choose the report's scope and budget."""
    home = Path(home)
    now = time.time() if now is None else now
    scope, budget = scope_and_budget(home, kernel, notebook, settings_budget)
    rep = build_report(home, scope, budget, advice=advice)
    state = empty_state(home)
    state["generated_at"] = rep.generated_at
    live, sealed = ledger_files(home)
    if not live and not sealed:
        rep.note = f"no ledger yet under {home / 'ledger'}"
    else:
        state["today"] = _totals_view(build_report(home, Scope("day"), advice=False))
        state["all"] = _totals_view(build_report(home, Scope("total"), advice=False))
        state["sessions"], state["lanes"], state["recent"] = query(
            home, lambda con: (sessions(con, running or {}), lanes(con, now), recent(con)))
    state["note"] = rep.note
    state["report"] = rep.to_dict()
    state["markdown"] = render.to_markdown(rep)
    return state
