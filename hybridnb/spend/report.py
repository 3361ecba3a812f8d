"""The one spend report: a scope, rows by route/backend/model, totals, cache savings,
compute held/busy/utilisation, advice, and the budget with its basis.

Every view of spend (``summary()``, ``report()``, ``%hybridnb summary``/``export``,
the cell footer, the widget, ``GET /hybridnb/summary(.md)``, the status bar, the
panel, "Insert cost summary") is a rendering (:mod:`hybridnb.spend.render`) of a
:class:`SpendReport` built here, from one set of ledger queries.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import HybridnbError, LedgerError
from ..store.ledger import SUMMARY_SQL, connect, ledger_files, query
from ..store.scopes import scope_where
from ..store.ledger import _q as _sql_quote
from . import render
from .render import utilisation
from .advice import Thresholds, compute_advice

#: ledger row kinds that are spend but not calls (``store.ledger.AGGREGATES`` counts them the same way)
NOT_CALLS = ("setup", "batch-job")
#: the numeric columns of a row (summed into the totals)
SUMS = ("calls", "cache_hits", "errors", "input_tokens", "output_tokens", "cost_usd", "saved_usd",
        "gpu_hours", "held_s", "busy_s", "unsettled", "maybe_billed")


SCOPE_LABELS = {"session": "this session", "kernel": "this kernel", "notebook": "this notebook",
                "day": "today", "total": "all time", "user": "all time, every kernel"}
BUDGET_LABELS = {"session": "session budget", "notebook": "notebook budget", "day": "today's budget",
                 "total": "total budget"}


def resolve_home(home: Path | str | None = None) -> Path:
    """``home`` if given, else the configured hybridnb home."""
    if home is not None:
        return Path(home)
    from ..config import get_settings

    return Path(get_settings().home)


@dataclass(frozen=True)
class Scope:
    """Which ledger rows a report covers: ``per`` in session|kernel|notebook|day|total|user."""

    per: str = "total"
    session: str | None = None
    notebook: str | None = None
    kernel: str | None = None
    day: Any = None

    def where(self) -> tuple[str, list[Any]]:
        """SQL predicate + parameters (``store.scopes.scope_where``: the budget's query too)."""
        if self.per == "kernel":
            return scope_where("session", session=self.session or f"k-{self.kernel}")
        if self.per == "user":
            return scope_where("total")
        return scope_where(self.per, session=self.session, notebook=self.notebook, day=self.day)

    @property
    def label(self) -> str:
        base = SCOPE_LABELS.get(self.per, self.per)
        if self.per == "notebook" and self.notebook:
            return f"{base} ({Path(self.notebook).name})"
        if self.per == "day" and self.day is not None:
            return f"the day {self.day}"
        return base

    def to_dict(self) -> dict[str, Any]:
        return {"per": self.per, "label": self.label, "session": self.session,
                "notebook": self.notebook, "kernel": self.kernel,
                "day": None if self.day is None else str(self.day)}


@dataclass
class Budget:
    """A budget with its basis: ``spent_usd`` is the spend in the ``per`` scope."""

    limit_usd: float | None
    per: str = "session"
    spent_usd: float = 0.0
    warn_fraction: float = 0.8
    source: str = "kernel"

    @property
    def label(self) -> str:
        return BUDGET_LABELS.get(self.per, f"{self.per} budget")

    @property
    def remaining_usd(self) -> float | None:
        return None if self.limit_usd is None else max(0.0, self.limit_usd - self.spent_usd)

    @property
    def fraction(self) -> float | None:
        return self.spent_usd / self.limit_usd if self.limit_usd else None

    @property
    def state(self) -> str:
        """none | ok | warn | over: the colour every view shows."""
        f = self.fraction
        return "none" if f is None else "over" if f >= 1.0 else "warn" if f >= self.warn_fraction else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"limit_usd": self.limit_usd, "per": self.per, "label": self.label,
                "spent_usd": self.spent_usd, "remaining_usd": self.remaining_usd,
                "fraction": self.fraction, "state": self.state, "warn_fraction": self.warn_fraction,
                "source": self.source, "line": render.budget_line(self)}


def warn_fraction_of(value: Any) -> float:
    """A budget's warning fraction from a setting or a kernel file: 0 warns at once; only absent is 0.8."""
    return 0.8 if value is None or value == "" else float(value)


def budget_in(home: Path | str, limit_usd: float | None, per: str, *, session: str | None = None,
              notebook: str | None = None, warn_fraction: float = 0.8, source: str = "kernel") -> Budget:
    """A :class:`Budget` whose spend is read from the ledger in its basis (``ledger.spent_usd``)."""
    from ..store.scopes import spent_usd

    b = Budget(limit_usd if limit_usd and limit_usd > 0 else None, per or "session",
               warn_fraction=warn_fraction, source=source)
    if b.limit_usd is not None:
        b.spent_usd = spent_usd(home, b.per, session=session, notebook=notebook)
    return b


def empty_row(**keys: Any) -> dict[str, Any]:
    return {**keys, **{k: 0 for k in SUMS}, "utilisation": None}


def finish_row(r: dict[str, Any]) -> dict[str, Any]:
    """Fill the derived columns of a row: tokens, utilisation."""
    for k in SUMS:
        r[k] = r.get(k) or 0
    r["tokens"] = r["input_tokens"] + r["output_tokens"]
    r["utilisation"] = utilisation(r["busy_s"], r["held_s"])
    return r


def sum_rows(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Totals of rows (utilisation over the summed compute time)."""
    rows = list(rows)
    return finish_row({k: sum(r.get(k) or 0 for r in rows) for k in SUMS})


def query_rows(con, where: str = "true", params: list | None = None) -> list[dict[str, Any]]:
    """Spend by route/backend/model for the rows matching ``where`` (the report's one query)."""
    cur = con.execute(SUMMARY_SQL.format(where=f"WHERE {where}"), params or [])
    names = [d[0] for d in cur.description]
    return [finish_row(_plain(dict(zip(names, row)))) for row in cur.fetchall()]


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    for k, v in d.items():
        if hasattr(v, "item") or type(v).__name__ == "Decimal":
            d[k] = float(v)
    return d


@dataclass
class SpendReport:
    """Spend in one scope, with the budget in its own basis; renders everywhere the same."""

    scope: Scope
    home: str
    rows: list[dict[str, Any]]
    budget: Budget
    advice: list[Any] = field(default_factory=list)
    note: str = ""
    generated_at: float = field(default_factory=time.time)

    @property
    def totals(self) -> dict[str, Any]:
        return sum_rows(self.rows)

    # the headline figures as attributes (``hybridnb.summary().calls``)
    calls = property(lambda self: self.totals["calls"])
    cache_hits = property(lambda self: self.totals["cache_hits"])
    total_usd = property(lambda self: self.totals["cost_usd"])
    saved_usd = property(lambda self: self.totals["saved_usd"])

    def budget_line(self) -> str:
        return render.budget_line(self.budget)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: the numbers and the strings every front end shows (no NaN)."""
        return _json_safe({
            "scope": self.scope.to_dict(), "home": self.home, "generated_at": self.generated_at,
            "rows": self.rows, "totals": self.totals, "budget": self.budget.to_dict(),
            "advice": self.advice, "note": self.note, "display": render.display_strings(self),
        })

    def to_markdown(self) -> str:
        return render.to_markdown(self)

    def _repr_markdown_(self) -> str:
        return render.to_markdown(self)

    def __str__(self) -> str:
        return render.to_text(self)

    def _repr_pretty_(self, p, cycle) -> None:  # IPython in a terminal: the text form, not the dataclass repr
        p.text(str(self))


def build_report(home: Path | str | None = None, scope: Scope | None = None, budget: Budget | None = None,
                 *, advice: bool = True, lanes: Iterable[dict] = (),
                 thresholds: Thresholds | None = None) -> SpendReport:
    """Read the ledger under ``home`` for ``scope`` (default all time) into a :class:`SpendReport`."""
    home = resolve_home(home)
    scope = scope or Scope("total")
    budget = budget or Budget(None)
    where, params = scope.where()
    rows: list[dict[str, Any]] = []
    items: list[Any] = []
    live, sealed = ledger_files(home)
    if live or sealed:
        def read(con):
            found = query_rows(con, where, params)
            return found, [a.to_dict() for a in compute_advice(con, lanes, thresholds)] if advice else []

        try:
            rows, items = query(home, read)  # retried when a writer sealed a file meanwhile
        except LedgerError:
            raise
        except Exception as e:  # any other duckdb.Error
            raise LedgerError(f"cannot read the ledger under {home}: {e}") from e
    return SpendReport(scope, str(home), rows, budget, items)


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


# ------------------------------------------------------------------- export

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".json": "json", ".jsonl": "jsonl"}


def export_ledger(path: Path | str, home: Path | str | None = None, format: str | None = None,
                  where: str | None = None) -> Path:
    """Write every ledger row to CSV / Parquet / JSON (format from the suffix)."""
    path = Path(path)
    fmt = format or _FORMATS.get(path.suffix.lower())
    if fmt not in ("csv", "parquet", "json", "jsonl"):
        raise HybridnbError(
            f"cannot tell the export format of {path.name!r}: use .csv, .parquet, .json or .jsonl")
    opts = {"csv": "FORMAT csv, HEADER true", "parquet": "FORMAT parquet",
            "json": "FORMAT json, ARRAY true", "jsonl": "FORMAT json"}[fmt]
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

