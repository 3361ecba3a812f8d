"""One cell's bill: its ledger records as report rows, for the footer and the cell's metadata."""

from __future__ import annotations

from typing import Any, Iterable

from . import render
from .report import NOT_CALLS, Budget, Scope, SpendReport, empty_row, finish_row


def rows_from_records(records: Iterable[Any]) -> list[dict[str, Any]]:
    """Records (``Record`` objects or dicts) summed by route/backend/model like the ledger query."""
    by: dict[tuple[str, str, str], dict[str, Any]] = {}
    for rec in records:
        r = rec if isinstance(rec, dict) else vars(rec)  # no asdict() copy
        key = (r["route"], r["backend"], r["model"])
        d = by.setdefault(key, empty_row(route=key[0], backend=key[1], model=key[2],
                                         simulated=False, unpriced=False, reference_model=""))
        cached = r["status"] == "cached"
        d["calls"] += not cached and r.get("kind") not in NOT_CALLS
        d["cache_hits"] += cached
        d["errors"] += r["status"] == "error"
        d["unsettled"] += r["status"] == "unsettled"  # as store.ledger.AGGREGATES
        for k in ("input_tokens", "output_tokens", "cost_usd", "saved_usd", "maybe_billed"):
            d[k] += r.get(k) or 0
        d["gpu_hours"] += (r.get("held_s") or 0.0) * (r.get("gpus") or 0.0) / 3600.0
        if r.get("pricing") == "compute":
            d["held_s"] += r.get("held_s") or 0.0
            d["busy_s"] += r.get("busy_s") or 0.0
        d["simulated"] |= bool(r.get("simulated"))
        d["unpriced"] |= bool(r.get("unpriced"))
        d["reference_model"] = d["reference_model"] or r.get("reference_model") or ""
    rows = [finish_row(d) for d in by.values()]
    return sorted(rows, key=lambda d: (-d["cost_usd"], d["route"], d["backend"], d["model"]))


def cell_report(records: Iterable[Any]) -> SpendReport:
    """A report over exactly these records (scope: this cell)."""
    recs = list(records)
    rep = SpendReport(Scope("total"), "", rows_from_records(recs), Budget(None), [])
    rep.batches = sorted({(r if isinstance(r, dict) else vars(r)).get("batch") or "" for r in recs} - {""})
    return rep


def cell_usage(records: Iterable[Any]) -> dict[str, Any]:
    """``{"hybridnb": {...}}`` for a cell's (or output's) metadata: totals, rows, batches, unrounded."""
    recs = list(records)
    rep = cell_report(recs)
    t = rep.totals
    keys = ("calls", "cache_hits", "errors", "input_tokens", "output_tokens", "cost_usd",
            "saved_usd", "gpu_hours")
    return {"hybridnb": {
        **{k: t[k] for k in keys},
        "simulated": any((r if isinstance(r, dict) else vars(r)).get("simulated") for r in recs),
        "by": [{k: r[k] for k in ("route", "backend", "model", *keys)} for r in rep.rows],
        "batches": rep.batches,
    }}


class CellUsage:
    """A cell's bill as a display object: one footer line (:func:`render.footer`) whose
    output metadata carries :func:`cell_usage` (saved with the notebook)."""

    def __init__(self, records: Iterable[Any]):
        recs = list(records)
        self.report = cell_report(recs)
        self.meta = cell_usage(recs)

    def _repr_mimebundle_(self, include=None, exclude=None):
        text = render.footer(self.report)
        return {"text/plain": text, "text/markdown": f"<small>{render.md(text)}</small>"}, self.meta
