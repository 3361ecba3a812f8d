"""The append-only spend ledger.

Layout under ``<home>/ledger/``:

* ``<session>.jsonl`` — the live file of one process (one kernel).  Each
  process appends only to its own file, so two kernels never contend for a
  lock; a line is written and flushed per record, so a killed kernel loses
  nothing it had finished.
* ``<session>-<n>.parquet`` — sealed segments.  When a live file passes
  ``ROTATE_ROWS`` records its owner writes it to Parquet (temp file, then an
  atomic rename) and starts a new live file.  Summaries over millions of rows
  stay fast because DuckDB scans columnar Parquet.

DuckDB reads all files together; a half-written last line (a kernel killed
mid-write) is skipped, never fatal.
"""

from __future__ import annotations

import getpass
import json
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

from ..errors import LedgerError

#: records per live file before it is sealed into Parquet
ROTATE_ROWS = 20_000


@dataclass
class Record:
    """One ledger row: a call that was billed, served from cache, or failed."""

    ts: float
    route: str
    backend: str
    model: str
    status: str  # "ok" | "cached" | "error"
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    saved_usd: float = 0.0
    latency_s: float = 0.0
    held_s: float = 0.0
    busy_s: float = 0.0
    gpus: float = 0.0
    pricing: str = "tokens"  # "tokens" | "compute"
    cached: bool = False
    unpriced: bool = False
    simulated: bool = False
    reference_model: str = ""
    error_class: str = ""
    error: str = ""
    notebook: str = ""
    cell: str = ""
    batch: str = ""
    template: str = ""
    prompt_hash: str = ""
    answer_hash: str = ""
    session: str = ""
    kind: str = "call"  # "call" | "compute" (non-LLM local work) | "setup" (a backend's one-time load) | "batch-job" (batch/jobs.py)
    rows: int = 1  # rows of work this record covers
    user: str = field(default_factory=lambda: os_user())  # who ran it (a shared HYBRIDNB_HOME = a team view)
    via: str = ""  # "auto" when the %%auto cascade placed this call on its route
    confidence: float | None = None  # the answer's confidence (choices: probability of the chosen label)
    escalated: bool = False  # an auto row sent on to reason because the local answer was unsure
    similarity: float | None = None  # a semantic cache hit: similarity of the prompt to the cached one
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


_USER: list[str] = []


def os_user() -> str:
    """The OS user (``HYBRIDNB_USER`` overrides it), read once per process."""
    if not _USER:
        try:
            _USER.append(os.environ.get("HYBRIDNB_USER") or getpass.getuser())
        except Exception:  # no passwd entry (some containers)
            _USER.append(str(os.getuid()) if hasattr(os, "getuid") else "")
    return _USER[0]


#: column name -> DuckDB type, in Record order
COLUMNS: dict[str, str] = {}
for _f in fields(Record):
    COLUMNS[_f.name] = {
        "float": "DOUBLE",
        "float | None": "DOUBLE",
        "int": "BIGINT",
        "bool": "BOOLEAN",
        "str": "VARCHAR",
    }[_f.type if isinstance(_f.type, str) else _f.type.__name__]


def default_session() -> str:
    """A process-unique session id (one per kernel)."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class LedgerWriter:
    """Appends records to this process's own live file; thread-safe."""

    def __init__(self, home: Path | str, session: str | None = None):
        self.dir = Path(home) / "ledger"
        self.session = session or default_session()
        self._lock = threading.Lock()
        self._segment = 0
        self._rows = 0
        self._fh = None

    @property
    def live_path(self) -> Path:
        return self.dir / f"{self.session}.jsonl"

    def append(self, record: Record) -> None:
        """Write one record and flush it to the OS."""
        self.extend([record])

    def extend(self, records: Iterable[Record]) -> None:
        """Write several records with one flush."""
        lines = []
        for r in records:
            r.session = r.session or self.session
            lines.append(json.dumps(vars(r), separators=(",", ":")))
        if not lines:
            return
        with self._lock:
            try:
                fh = self._open()
                fh.write("\n".join(lines) + "\n")
                fh.flush()
            except OSError as e:
                raise LedgerError(f"cannot write the ledger at {self.dir}: {e}") from e
            self._rows += len(lines)
            if self._rows >= ROTATE_ROWS:
                self._seal()

    def _open(self):
        if self._fh is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.live_path, "a", encoding="utf-8")
        return self._fh

    def _seal(self) -> None:
        """Turn the live file into a Parquet segment (atomic rename)."""
        import duckdb

        self._fh.close()
        self._fh = None
        while (self.dir / f"{self.session}-{self._segment}.parquet").exists():
            self._segment += 1
        final = self.dir / f"{self.session}-{self._segment}.parquet"
        tmp = self.dir / f".{final.name}.tmp"
        con = duckdb.connect()
        try:
            con.execute(
                f"COPY ({_json_select([self.live_path])}) TO '{_q(tmp)}' (FORMAT parquet)"
            )
        finally:
            con.close()
        os.replace(tmp, final)
        self.live_path.unlink()
        self._rows = 0
        self._segment += 1

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


def _q(path: Path | str) -> str:
    return str(path).replace("'", "''")


def _json_select(paths: list[Path]) -> str:
    cols = ", ".join(f"'{k}': '{v}'" for k, v in COLUMNS.items())
    files = ", ".join(f"'{_q(p)}'" for p in paths)
    return (
        f"SELECT * FROM read_json([{files}], format='newline_delimited', "
        f"columns={{{cols}}}, ignore_errors=true) WHERE id IS NOT NULL AND route IS NOT NULL"
    )


def ledger_files(home: Path | str) -> tuple[list[Path], list[Path]]:
    """(live JSONL files, sealed Parquet files) under ``home``."""
    d = Path(home) / "ledger"
    if not d.is_dir():
        return [], []
    live = sorted(p for p in d.glob("*.jsonl") if p.stat().st_size > 0)
    sealed = sorted(d.glob("[!.]*.parquet"))
    return live, sealed


def ledger_sql(home: Path | str) -> str:
    """A SQL query (for DuckDB) that yields every ledger row under ``home``."""
    live, sealed = ledger_files(home)
    parts = []
    if sealed:
        files = ", ".join(f"'{_q(p)}'" for p in sealed)
        parts.append(f"SELECT * FROM read_parquet([{files}], union_by_name=true)")
    if live:
        parts.append(_json_select(live))
    if not parts:
        cols = ", ".join(f"CAST(NULL AS {t}) AS {k}" for k, t in COLUMNS.items())
        return f"SELECT {cols} WHERE false"
    return " UNION ALL BY NAME ".join(f"({p})" for p in parts)


def connect(home: Path | str):
    """An in-memory DuckDB connection with a ``ledger`` view over all files."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(f"CREATE VIEW ledger AS {ledger_sql(home)}")
    except duckdb.Error as e:
        con.close()
        raise LedgerError(f"cannot read the ledger under {home}: {e}") from e
    return con


def read(home: Path | str, where: str | None = None):
    """All ledger rows as a polars DataFrame (optionally filtered by SQL)."""
    con = connect(home)
    try:
        q = "SELECT * FROM ledger" + (f" WHERE {where}" if where else "") + " ORDER BY ts"
        return con.sql(q).pl()
    finally:
        con.close()


#: the standard per-group sums over ledger rows (held/busy count compute-priced rows only:
#: utilisation means nothing for a token API)
AGGREGATES = """
       count(*) FILTER (WHERE status <> 'cached' AND kind NOT IN ('setup', 'batch-job')) AS calls,
       count(*) FILTER (WHERE status = 'cached')                  AS cache_hits,
       count(*) FILTER (WHERE status = 'error')                   AS errors,
       coalesce(sum(input_tokens), 0)                             AS input_tokens,
       coalesce(sum(output_tokens), 0)                            AS output_tokens,
       coalesce(sum(cost_usd), 0)                                 AS cost_usd,
       coalesce(sum(saved_usd), 0)                                AS saved_usd,
       coalesce(sum(held_s * gpus), 0) / 3600.0                   AS gpu_hours,
       coalesce(sum(held_s) FILTER (WHERE pricing = 'compute'), 0) AS held_s,
       coalesce(sum(busy_s) FILTER (WHERE pricing = 'compute'), 0) AS busy_s"""

SUMMARY_SQL = """
SELECT route, backend, model, """ + AGGREGATES + """,
       bool_or(simulated)                                         AS simulated,
       bool_or(unpriced)                                          AS unpriced,
       any_value(reference_model)                                 AS reference_model
FROM ledger {where}
GROUP BY ALL
ORDER BY cost_usd DESC, route, backend, model
"""


def summarize(home: Path | str, where: str | None = None):
    """Spend by route/backend/model as a polars DataFrame (DuckDB does the work)."""
    con = connect(home)
    try:
        return con.sql(SUMMARY_SQL.format(where=f"WHERE {where}" if where else "")).pl()
    finally:
        con.close()


def as_dict(record: Record) -> dict[str, Any]:
    return asdict(record)


def read_all(where: str | None = None):
    """Every ledger row (all kernels) as a polars DataFrame; ``where`` is a SQL filter."""
    from ..config import get_settings

    return read(get_settings().home, where)


# ------------------------------------------------------------------ scopes

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
    con = connect(home)
    try:
        row = con.execute(f"SELECT coalesce(sum(cost_usd), 0) FROM ledger WHERE {where}", params).fetchone()
    except Exception as e:  # duckdb.Error: a file sealed between listing and reading
        raise LedgerError(f"cannot read the spend under {home}: {e}") from e
    finally:
        con.close()
    return float(row[0])
