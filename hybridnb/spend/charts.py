"""Altair charts over the ledger: spend over time, cost per 1K rows, break-even.

Each function takes ``home`` (default: the configured hybridnb home) and
returns an ``altair.Chart`` (or layered chart); data goes inline as values.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import altair as alt

from ..store.ledger import connect
from .advice import Thresholds, breakeven_rows, local_usd_per_row
from .report import resolve_home

SPEND_SQL = """
SELECT route, ts * 1000 AS t,
       sum(cost_usd) OVER (PARTITION BY route ORDER BY ts, id ROWS UNBOUNDED PRECEDING) AS cum_usd
FROM ledger ORDER BY ts
"""

PER_ROW_SQL = """
SELECT route, sum(coalesce(rows, 1)) AS rows, coalesce(sum(cost_usd), 0) AS cost_usd,
       coalesce(sum(cost_usd), 0) / greatest(sum(coalesce(rows, 1)), 1) * 1000 AS usd_per_1k
FROM ledger GROUP BY route ORDER BY route
"""

TOKENS_ROW_SQL = """
SELECT coalesce(sum(coalesce(rows, 1)), 0), coalesce(sum(cost_usd), 0) FROM ledger
WHERE route = $route AND status <> 'cached' {extra}
"""


def _rows(con, q: str, params: dict | None = None) -> list[dict[str, Any]]:
    rel = con.execute(q, params or {})
    cols = [d[0] for d in rel.description]
    return [dict(zip(cols, r)) for r in rel.fetchall()]


def _query(home, q: str) -> list[dict[str, Any]]:
    con = connect(resolve_home(home))
    try:
        return _rows(con, q)
    finally:
        con.close()


def spend_over_time(home: Path | str | None = None, max_points: int = 2000) -> alt.Chart:
    """Cumulative spend over time, one line per route."""
    data = _query(home, SPEND_SQL)
    if len(data) > max_points:  # keep every k-th point per route, and each route's last
        k = math.ceil(len(data) / max_points)
        last = {d["route"]: i for i, d in enumerate(data)}
        keep = set(last.values())
        data = [d for i, d in enumerate(data) if i % k == 0 or i in keep]
    return (
        alt.Chart(alt.Data(values=data), title="Spend over time by route")
        .mark_line(interpolate="step-after", point=len(data) < 60)
        .encode(
            x=alt.X("t:T", title="time"),
            y=alt.Y("cum_usd:Q", title="cumulative spend ($)"),
            color=alt.Color("route:N", title="route"),
            tooltip=["route:N", alt.Tooltip("t:T", format="%H:%M:%S"),
                     alt.Tooltip("cum_usd:Q", format="$.4f")],
        )
    )


def cost_per_1k_rows(home: Path | str | None = None) -> alt.Chart:
    """Dollars per 1,000 rows of work (a compute record counts its ``rows``) by route."""
    data = _query(home, PER_ROW_SQL)
    return (
        alt.Chart(alt.Data(values=data), title="Cost per 1K rows by route")
        .mark_bar()
        .encode(
            x=alt.X("route:N", title="route"),
            y=alt.Y("usd_per_1k:Q", title="$ per 1K rows"),
            color=alt.Color("route:N", legend=None),
            tooltip=["route:N", "rows:Q", alt.Tooltip("cost_usd:Q", format="$.4f"),
                     alt.Tooltip("usd_per_1k:Q", format="$.4f")],
        )
    )


def breakeven_data(
    home: Path | str | None = None,
    template: str | None = None,
    rows: int | None = None,
    thresholds: Thresholds | None = None,
) -> dict[str, Any]:
    """The numbers behind :func:`breakeven`: per-row costs, set-up, break-even rows."""
    t = thresholds or Thresholds()
    con = connect(resolve_home(home))
    try:
        extra = "AND template = $template" if template else ""
        params = {"route": t.reason_route, **({"template": template} if template else {})}
        n, cost = con.execute(TOKENS_ROW_SQL.format(extra=extra), params).fetchone()
        local_row, source = local_usd_per_row(con, t)
    finally:
        con.close()
    token_row = cost / n if n else 0.0
    be = breakeven_rows(token_row, local_row, t.setup_usd)
    horizon = rows or (max(2 * math.ceil(be), n, 100) if math.isfinite(be) else max(t.remaining_rows, n))
    return {
        "tokens_usd_per_row": token_row,
        "local_usd_per_row": local_row,
        "local_usd_per_row_source": source,
        "setup_usd": t.setup_usd,
        "observed_rows": n,
        "breakeven_rows": math.ceil(be) if math.isfinite(be) else None,
        "breakeven_usd": token_row * be if math.isfinite(be) else None,
        "rows": horizon,
    }


def breakeven(
    home: Path | str | None = None,
    template: str | None = None,
    rows: int | None = None,
    thresholds: Thresholds | None = None,
) -> alt.LayerChart:
    """Cumulative $ on tokens vs on GPU-hours (set-up + per row), break-even marked."""
    d = breakeven_data(home, template, rows, thresholds)
    xs = sorted({0, d["rows"]} | ({d["breakeven_rows"]} if d["breakeven_rows"] and d["breakeven_rows"] < d["rows"] else set()))
    lines = []
    for x in xs:
        lines.append({"rows": x, "pricing": "tokens", "usd": d["tokens_usd_per_row"] * x})
        lines.append({"rows": x, "pricing": "GPU-hours (local)",
                      "usd": d["setup_usd"] + d["local_usd_per_row"] * x})
    base = alt.Chart(alt.Data(values=lines), title="Tokens vs GPU-hours: cumulative cost")
    chart = base.mark_line().encode(
        x=alt.X("rows:Q", title="rows"),
        y=alt.Y("usd:Q", title="cumulative cost ($)"),
        color=alt.Color("pricing:N", title="pricing"),
        tooltip=["pricing:N", "rows:Q", alt.Tooltip("usd:Q", format="$.4f")],
    )
    layers = [chart]
    if d["breakeven_rows"] is not None:
        pt = [{"rows": d["breakeven_rows"], "usd": d["breakeven_usd"],
               "label": f"break-even {d['breakeven_rows']:,} rows"}]
        mark = alt.Chart(alt.Data(values=pt))
        layers.append(mark.mark_point(size=90, filled=True, color="black").encode(
            x="rows:Q", y="usd:Q", tooltip=["label:N"]))
        layers.append(mark.mark_text(align="left", dx=8, dy=-8).encode(
            x="rows:Q", y="usd:Q", text="label:N"))
    if d["observed_rows"]:
        layers.append(alt.Chart(alt.Data(values=[{"rows": d["observed_rows"]}])).mark_rule(
            strokeDash=[4, 3], color="gray").encode(x="rows:Q"))
    return alt.layer(*layers)
