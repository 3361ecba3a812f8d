"""Cost summaries: table, advice, budget line; report formats; ledger export.

Everything is computed by DuckDB over the ledger files (``ledger.connect``).
"""

from __future__ import annotations

import html as _html
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable

from ..store.ledger import SUMMARY_SQL, connect
from ..store.ledger import _q as _sql_quote
from .advice import Thresholds, compute_advice
from ..errors import HybridnbError, LedgerError

SUMMARY_COLUMNS = (
    "route", "backend", "model", "calls", "cache_hits", "errors", "input_tokens",
    "output_tokens", "cost_usd", "saved_usd", "gpu_hours", "held_s", "busy_s",
    "utilisation", "simulated", "unpriced",
)


def resolve_home(home: Path | str | None = None) -> Path:
    """``home`` if given, else the configured hybridnb home."""
    if home is not None:
        return Path(home)
    try:
        from ..config import get_settings

        return Path(get_settings().home)
    except ImportError:
        return Path(os.environ.get("HYBRIDNB_HOME", ".hybridnb"))


def resolve_budget(budget_usd: float | None = None) -> float | None:
    """``budget_usd`` if given, else the configured budget (None when unset)."""
    if budget_usd is not None:
        return budget_usd
    try:
        from ..config import get_settings

        return getattr(get_settings(), "budget_usd", None)
    except ImportError:
        env = os.environ.get("HYBRIDNB_BUDGET_USD")
        return float(env) if env else None


COMPUTE_SQL = """
SELECT route, backend, model, bool_or(pricing = 'compute') AS compute
FROM ledger {where} GROUP BY ALL
"""


def summary_rows(con, where: str | None = None) -> list[dict[str, Any]]:
    """Spend by route/backend/model as dicts (``ledger.SUMMARY_SQL`` + utilisation).

    Utilisation (busy / held) is given for compute-priced lanes only; a token
    call's timing is latency, not capacity you pay for.
    """
    w = f"WHERE {where}" if where else ""
    rel = con.sql(SUMMARY_SQL.format(where=w))
    names = rel.columns
    compute = {(r, b, m): c for r, b, m, c in con.sql(COMPUTE_SQL.format(where=w)).fetchall()}
    out = []
    for row in rel.fetchall():
        d = dict(zip(names, row))
        paid = compute.get((d["route"], d["backend"], d["model"]))
        d["utilisation"] = (d["busy_s"] / d["held_s"]) if paid and d["held_s"] else None
        out.append({k: d.get(k) for k in SUMMARY_COLUMNS})
    return out


def totals(rows: Iterable[dict]) -> dict[str, Any]:
    """Column sums over summary rows (utilisation over compute-priced rows)."""
    rows = list(rows)
    t = {k: sum(r[k] or 0 for r in rows) for k in SUMMARY_COLUMNS[3:13]}
    paid = [r for r in rows if r["utilisation"] is not None]
    held = sum(r["held_s"] for r in paid)
    t["utilisation"] = sum(r["busy_s"] for r in paid) / held if held else None
    return t


def budget_line(spent: float, budget: float | None) -> str:
    """One line: spent of budget, remaining (plain text, unescaped ``$``)."""
    if not budget:
        return f"Spent ${spent:.4f}; no budget set."
    left = budget - spent
    return f"Spent ${spent:.4f} of ${budget:.2f} budget ({spent / budget:.0%}); ${left:.4f} remaining."


def build(
    home: Path | str | None = None,
    budget_usd: float | None = None,
    thresholds: Thresholds | None = None,
    lanes: Iterable[dict] | None = None,
    where: str | None = None,
) -> dict[str, Any]:
    """The report as plain data: rows, totals, advice, budget."""
    home = resolve_home(home)
    budget = resolve_budget(budget_usd)
    if lanes is None:
        from .signals import tracker

        lanes = tracker.snapshot()
    con = connect(home)
    try:
        rows = summary_rows(con, where)
        advice = compute_advice(con, lanes, thresholds)
    finally:
        con.close()
    tot = totals(rows)
    return {
        "rows": rows,
        "totals": tot,
        "advice": [a.to_dict() for a in advice],
        "budget_usd": budget,
        "spent_usd": tot["cost_usd"],
        "remaining_usd": (budget - tot["cost_usd"]) if budget else None,
        "budget_line": budget_line(tot["cost_usd"], budget),
    }


# ------------------------------------------------------------------ formats


def _usd(x: float | None) -> str:
    if x is None:
        return "–"
    a = abs(x)
    if a == 0:
        return "$0.00"
    return f"${x:.6f}" if a < 0.01 else f"${x:.4f}" if a < 1 else f"${x:,.2f}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.0%}"


def _cells(r: dict) -> list[str]:
    flags = " (simulated)" if r.get("simulated") else (" (unpriced)" if r.get("unpriced") else "")
    return [
        str(r.get("route", "")), str(r.get("backend", "")), str(r.get("model", "")) + flags,
        f"{r['calls']:,}", f"{r['cache_hits']:,}", f"{r['input_tokens']:,}",
        f"{r['output_tokens']:,}", _usd(r["cost_usd"]), _usd(r["saved_usd"]),
        f"{r['gpu_hours']:.4f}", _pct(r["utilisation"]),
    ]


HEADER = [
    "route", "backend", "model", "calls", "cache hits", "input tok", "output tok",
    "cost", "saved", "GPU-hours", "utilisation",
]


def escape_md(text: str) -> str:
    """Escape Markdown table pipes and ``$`` (which would render as LaTeX)."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("$", "\\$")


_AMOUNT = re.compile(r"\\\$([\d,]*(?:\.\d+)?)")


def prose_md(text: str) -> str:
    """Escape a sentence for Markdown and bold each dollar amount.

    ``\\$`` alone is not enough in JupyterLab: MathJax sees the unescaped
    text and pairs two dollars in one run of text as inline math.  A tag
    between them (here ``<strong>``) ends the run, so the dollars stay text
    in JupyterLab, Notebook 7, VS Code and GitHub alike.
    """
    return _AMOUNT.sub(lambda m: f"**\\${m.group(1)}**", escape_md(text))


def to_markdown(rep: dict[str, Any]) -> str:
    """The report as a Markdown cell body; every ``$`` escaped."""
    lines = ["### hybridnb cost summary", ""]
    lines.append("| " + " | ".join(HEADER) + " |")
    lines.append("|" + "|".join(["---"] * 3 + ["---:"] * (len(HEADER) - 3)) + "|")
    for r in rep["rows"]:
        lines.append("| " + " | ".join(escape_md(c) for c in _cells(r)) + " |")
    tot = dict(rep["totals"], route="**total**", backend="", model="")
    lines.append("| " + " | ".join(escape_md(c) for c in _cells(tot)) + " |")
    lines += ["", prose_md(rep["budget_line"]), ""]
    if rep["advice"]:
        lines.append("**Advice in force**")
        lines.append("")
        for a in rep["advice"]:
            lines.append(f"- **{escape_md(a['title'])}** — {prose_md(a['message'])}")
    else:
        lines.append("No advice in force.")
    return "\n".join(lines) + "\n"


_HTML_AMOUNT = re.compile(r"\$([\d,]*(?:\.\d+)?)")


def _prose_html(text: str) -> str:
    """HTML-escaped text with each dollar amount in its own element (see :func:`prose_md`)."""
    return _HTML_AMOUNT.sub(lambda m: f'<span class="usd">${m.group(1)}</span>', _html.escape(text))


def to_html(rep: dict[str, Any]) -> str:
    """The report as a small self-contained HTML fragment."""
    e = _html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in HEADER)
    body = ""
    for r in rep["rows"] + [dict(rep["totals"], route="total", backend="", model="")]:
        body += "<tr>" + "".join(f"<td>{e(c)}</td>" for c in _cells(r)) + "</tr>"
    advice = "".join(
        f"<li><b>{e(a['title'])}</b> — {_prose_html(a['message'])}</li>" for a in rep["advice"]
    )
    return (
        '<div class="hybridnb-report"><h3>hybridnb cost summary</h3>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        f"<p>{_prose_html(rep['budget_line'])}</p>"
        + (f"<p><b>Advice in force</b></p><ul>{advice}</ul>" if advice else "<p>No advice in force.</p>")
        + "</div>"
    )


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return x


def report(
    format: str = "markdown",
    home: Path | str | None = None,
    budget_usd: float | None = None,
    thresholds: Thresholds | None = None,
    where: str | None = None,
) -> str | dict[str, Any]:
    """The cost summary as ``"markdown"`` / ``"html"`` text or ``"json"`` (a dict)."""
    rep = build(home, budget_usd, thresholds, where=where)
    if format == "markdown":
        return to_markdown(rep)
    if format == "html":
        return to_html(rep)
    if format == "json":
        return _json_safe(rep)
    raise HybridnbError(f"unknown report format {format!r}: use markdown, html or json")


# ------------------------------------------------------------------- export

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".json": "json", ".jsonl": "jsonl"}


def export_ledger(
    path: Path | str,
    home: Path | str | None = None,
    format: str | None = None,
    where: str | None = None,
) -> Path:
    """Write every ledger row to CSV / Parquet / JSON (format from the suffix)."""
    path = Path(path)
    fmt = format or _FORMATS.get(path.suffix.lower())
    if fmt not in ("csv", "parquet", "json", "jsonl"):
        raise HybridnbError(
            f"cannot tell the export format of {path.name!r}: use .csv, .parquet, .json or .jsonl"
        )
    opts = {
        "csv": "FORMAT csv, HEADER true",
        "parquet": "FORMAT parquet",
        "json": "FORMAT json, ARRAY true",
        "jsonl": "FORMAT json",
    }[fmt]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    con = connect(resolve_home(home))
    try:
        q = "SELECT * FROM ledger" + (f" WHERE {where}" if where else "") + " ORDER BY ts, id"
        con.execute(f"COPY ({q}) TO '{_sql_quote(tmp)}' ({opts})")
    except Exception as e:  # duckdb.Error, OSError
        tmp.unlink(missing_ok=True)
        raise LedgerError(f"cannot export the ledger to {path}: {e}") from e
    finally:
        con.close()
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------- per-cell usage


def cell_usage(records: Iterable[Any]) -> dict[str, Any]:
    """Usage and cost of one cell's calls, for the cell's (or output's) metadata.

    ``records`` are :class:`hybridnb.store.ledger.Record` objects (or dicts with the
    same keys).  Returns ``{"hybridnb": {...}}`` ready to merge into metadata.
    """
    recs = [r if isinstance(r, dict) else vars(r) for r in records]  # no asdict() copy
    by: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in recs:
        key = (r["route"], r["backend"], r["model"])
        d = by.setdefault(
            key,
            {"route": key[0], "backend": key[1], "model": key[2], "calls": 0, "cache_hits": 0,
             "errors": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0,
             "saved_usd": 0.0, "gpu_hours": 0.0},
        )
        d["calls" if r["status"] != "cached" else "cache_hits"] += 1
        d["errors"] += r["status"] == "error"
        d["input_tokens"] += r.get("input_tokens") or 0
        d["output_tokens"] += r.get("output_tokens") or 0
        d["cost_usd"] += r.get("cost_usd") or 0.0
        d["saved_usd"] += r.get("saved_usd") or 0.0
        d["gpu_hours"] += (r.get("held_s") or 0.0) * (r.get("gpus") or 0.0) / 3600.0
    rows = list(by.values())
    keys = ("calls", "cache_hits", "errors", "input_tokens", "output_tokens", "cost_usd",
            "saved_usd", "gpu_hours")
    total = {k: sum(d[k] for d in rows) for k in keys}
    for d in rows + [total]:
        for k in ("cost_usd", "saved_usd", "gpu_hours"):
            d[k] = round(d[k], 8)
    return {
        "hybridnb": {
            **total,
            "simulated": any(r.get("simulated") for r in recs),
            "by": rows,
            "batches": sorted({r["batch"] for r in recs if r.get("batch")}),
        }
    }


class CellUsage:
    """A cell's bill as a display object: a one-line footer whose output
    metadata carries :func:`cell_usage` (saved with the notebook).

    ``display(CellUsage(records))``; front ends that can (the hybridnb JupyterLab
    extension) copy ``metadata["hybridnb"]`` into the cell's own metadata.
    """

    def __init__(self, records: Iterable[Any]):
        self.meta = cell_usage(records)

    def text(self) -> str:
        m = self.meta["hybridnb"]
        parts = [f"{m['calls']} calls", f"{m['input_tokens']:,} in / {m['output_tokens']:,} out tokens",
                 f"${m['cost_usd']:.6f}"]
        if m["cache_hits"]:
            parts.append(f"{m['cache_hits']} cached (saved ${m['saved_usd']:.6f})")
        if m["gpu_hours"]:
            parts.append(f"{m['gpu_hours']:.4f} GPU-h")
        if m["errors"]:
            parts.append(f"{m['errors']} errors")
        return "hybridnb cell: " + " · ".join(parts)

    def _repr_mimebundle_(self, include=None, exclude=None):
        text = self.text()
        md = f"<small>{prose_md(text)}</small>"
        return {"text/plain": text, "text/markdown": md}, self.meta
