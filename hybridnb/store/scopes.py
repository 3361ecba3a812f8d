"""Spend in one scope (session, notebook, day, total): the query every budget and its views count."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..errors import LedgerError
from .ledger import ledger_files, query


#: what a budget (or a report) counts: one kernel session, one notebook, one calendar day, everything
SCOPES = ("session", "notebook", "day", "total")


def start_of_day(day: Any = None) -> tuple[float, float]:
    """[start, end) epoch seconds of ``day`` in local time (a ``date``, ``"YYYY-MM-DD"``, or None = today)."""
    import datetime as _dt

    if day is None:
        day = _dt.date.today()
    elif isinstance(day, str):
        try:
            day = _dt.date.fromisoformat(day)
        except ValueError:
            raise LedgerError(f"day {day!r} is not a date (YYYY-MM-DD)") from None
    elif isinstance(day, _dt.datetime):
        day = day.date()
    start = time.mktime((day.year, day.month, day.day, 0, 0, 0, 0, 0, -1))
    nxt = day + _dt.timedelta(days=1)
    return start, time.mktime((nxt.year, nxt.month, nxt.day, 0, 0, 0, 0, 0, -1))


def scope_where(per: str, *, session: str | None = None, notebook: str | None = None,
                day: Any = None) -> tuple[str, list[Any]]:
    """SQL predicate + parameters for the ledger rows in one scope (``SCOPES``).

    A notebook matches its path whether the ledger holds it absolute (the kernel's
    ``__session__``) or relative (the lab's path), so the front ends and the kernel agree.
    """
    if per == "total":
        return "true", []
    if per == "day":
        start, end = start_of_day(day)
        return "(ts >= ? AND ts < ?)", [start, end]
    if per == "session":
        if not session:
            raise LedgerError("a session scope needs the session id")
        return "(session = ?)", [session]
    if per == "notebook":
        if not notebook:
            raise LedgerError("a notebook scope needs the notebook path (none known outside a notebook)")
        return ("(notebook = ? OR ends_with(notebook, '/' || ?)"
                " OR (notebook <> '' AND ends_with(?, '/' || notebook)))"), [notebook] * 3
    raise LedgerError(f"unknown scope {per!r}: use one of {', '.join(SCOPES)}")


def spent_usd(home: Path | str, per: str = "total", *, session: str | None = None,
              notebook: str | None = None, day: Any = None) -> float:
    """Dollars spent in one scope, read from the ledger (every process's rows).

    ``per`` is ``session`` (rows of that session id), ``notebook`` (that path), ``day``
    (that local calendar day, default today) or ``total``.  This is the spend a budget
    with that basis counts; every view of a budget shows the same figure.
    """
    where, params = scope_where(per, session=session, notebook=notebook, day=day)
    live, sealed = ledger_files(home)
    if not live and not sealed:
        return 0.0
    q = f"SELECT coalesce(sum(cost_usd), 0) FROM ledger WHERE {where}"
    row = query(home, lambda con: con.execute(q, params).fetchone())
    return float(row[0])
