"""The append-only spend ledger.

Layout under ``<home>/ledger/``:

* ``<session>.jsonl`` — the live file of one process (one kernel).  Each
  process appends only to its own file, so two kernels never contend for a
  lock; a line is written and flushed per record, so a killed kernel loses
  nothing it had finished.
* ``<session>-<n>.parquet`` — sealed segments.  When a live file passes
  ``ROTATE_ROWS`` records its owner renames it ``<session>-<n>.jsonl``, writes
  that to Parquet (temp file, then an atomic rename) and starts a new live
  file; a ``.jsonl`` with a same-named ``.parquet`` is skipped by readers, so a
  reader never counts a row twice nor fails while a writer seals.

Write-ahead: a call is written as an ``unsettled`` row when it is *sent* and
again (same ``id``) when it ends.  The ``ledger`` view hides an unsettled row
once its id has a final row, so a kill -9 leaves in-flight calls visible as
"unsettled, cost unknown" instead of missing.

DuckDB reads all files together; a half-written last line is moved aside
before the next append (see :mod:`.segments`), a damaged segment is
quarantined, never fatal.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

from ..errors import LedgerError

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - a dependency
    _orjson = None
from . import segments

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
    attempts: int = 1  # HTTP attempts made for this call (retries included)
    maybe_billed: int = 0  # attempts that may have been billed without an answer (timeout, cut-off body)
    usage_estimated: bool = False  # the server sent no usage: tokens were counted locally
    forced: bool = False  # sent with --force past the budget
    reserved_usd: float = 0.0  # worst case reserved against the budget before sending
    prompt_norm: str = ""  # hash of the prompt lower-cased without punctuation/spacing: near-duplicates share it
    choice_probs: str = ""  # choices: JSON {label: probability} when the backend scored them, else ""
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
        self._pending: list[Path] = []
        self._in_flight: dict[str, str] = {}  # id -> write-ahead line of calls not settled yet

    @property
    def live_path(self) -> Path:
        return self.dir / f"{self.session}.jsonl"

    def append(self, record: Record) -> None:
        """Write one record and flush it to the OS."""
        self.extend([record])

    def extend(self, records: Iterable[Record]) -> None:
        """Write several records with one flush (LedgerError when the home is not writable)."""
        records = list(records)
        lines = [_line(r, self.session) for r in records]
        if not lines:
            return
        with self._lock:
            for r, line in zip(records, lines):  # calls in flight: their write-ahead rows outlive a seal
                if r.status == "unsettled":
                    self._in_flight[r.id] = line
                elif self._in_flight:
                    self._in_flight.pop(r.id, None)
            try:
                fh = self._open()
                text = "\n".join(lines) + "\n"
                try:
                    fh.write(text)
                except UnicodeEncodeError:  # a lone surrogate somewhere: replace it, never drop the row
                    fh.write(text.encode("utf-8", "replace").decode("utf-8"))
                fh.flush()
            except OSError as e:
                raise LedgerError(f"cannot write the ledger at {self.dir}: {e}") from e
            self._rows += len(lines)
            if self._rows >= ROTATE_ROWS:
                self._seal()

    def check_writable(self) -> None:
        """Raise LedgerError now if nothing could be written (checked before a paid call is sent)."""
        with self._lock:
            try:
                self._open()
            except OSError as e:
                raise LedgerError(f"cannot write the ledger at {self.dir}: {e} — nothing was sent; "
                                  f"set HYBRIDNB_HOME to a writable folder") from e

    def _open(self):
        if self._fh is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            segments.repair_tail(self.live_path)
            self._fh = open(self.live_path, "a", encoding="utf-8")
        return self._fh

    def _seal(self) -> None:
        """Turn the live file into a Parquet segment (atomic rename)."""
        import duckdb

        self._fh.close()
        self._fh = None
        while any((self.dir / f"{self.session}-{self._segment}{ext}").exists() for ext in (".parquet", ".jsonl")):
            self._segment += 1
        final = self.dir / f"{self.session}-{self._segment}.parquet"
        pending = self.dir / segments.pending_name(self.session, self._segment)
        tmp = self.dir / f".{final.name}.tmp"
        self._drop_pending()
        os.replace(self.live_path, pending)  # readers see it under its new name until the Parquet exists
        fh = self._open()
        if self._in_flight:  # calls still in flight: their write-ahead rows move on to the new live file,
            fh.write("\n".join(self._in_flight.values()) + "\n")  # so a segment never waits for a final row
            fh.flush()
        keep = "status <> 'unsettled' OR id NOT IN (SELECT unnest(?::VARCHAR[]))"
        con = duckdb.connect()
        try:
            con.execute(f"COPY (SELECT * FROM ({_settled(_json_select([pending]))}) WHERE {keep}) "
                        f"TO '{_q(tmp)}' (FORMAT parquet)", [list(self._in_flight)])
        finally:
            con.close()
        os.replace(tmp, final)
        self._pending.append(pending)  # removed at the next seal: a reader may still be reading it
        self._rows = 0
        self._segment += 1

    def _drop_pending(self) -> None:
        for p in self._pending:
            try:
                p.unlink()
            except OSError:
                pass
        self._pending = []

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


def _line(r: Record, session: str) -> str:
    """One JSON line (raw UTF-8, so text DuckDB cannot decode from an escape never drops the row)."""
    r.session = r.session or session
    if _orjson is not None:
        try:  # ~15x faster than json.dumps on a record; batches write two lines a row
            return _orjson.dumps(vars(r)).decode()
        except (TypeError, ValueError):  # lone surrogates, exotic values: the stdlib path below
            pass
    return json.dumps(vars(r), separators=(",", ":"), ensure_ascii=False)


def _settled(select: str) -> str:
    """``select`` with one row per id: the final row of a call over its write-ahead row.

    Only JSONL rows need it: a sealed segment never holds a write-ahead row whose call
    settles later (the writer carries those over to its next live file), so the Parquet
    side of the ledger is scanned as is."""
    return (f"SELECT * FROM ({select}) QUALIFY row_number() OVER "
            f"(PARTITION BY id ORDER BY status = 'unsettled') = 1")


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
    """(live JSONL files, readable sealed Parquet files) under ``home``; damaged segments are quarantined."""
    return segments.list_files(Path(home) / "ledger")


def ledger_sql(sealed: list[Path], live: str | None) -> str:
    """A SQL query (for DuckDB) over the sealed Parquet files and ``live`` (a table of the JSONL rows)."""
    parts = []
    if sealed:
        files = ", ".join(f"'{_q(p)}'" for p in sealed)
        parts.append(f"SELECT * FROM read_parquet([{files}], union_by_name=true)")
    if live:
        parts.append(f"SELECT * FROM {live}")
    cols = ", ".join(f"CAST(NULL AS {t}) AS {k}" for k, t in COLUMNS.items())
    empty = f"SELECT {cols} WHERE false"
    # the typed empty select pins every column, also when all segments predate a new one
    return " UNION ALL BY NAME ".join(f"({p})" for p in [empty, *parts])


def connect(home: Path | str, tries: int = 8):
    """An in-memory DuckDB connection with a ``ledger`` view over all files.

    The live JSONL rows are read through hard links (a seal renames and later removes those files),
    into a table of the connection; sealed Parquet files never move. A file sealed away between
    listing and linking is retried with a fresh listing."""
    import duckdb

    con = duckdb.connect()
    for attempt in range(tries):
        live, sealed = ledger_files(home)
        folder, links = segments.snapshot(live, Path(home) / "ledger") if live else (None, [])
        try:
            if links is None:
                raise FileNotFoundError("a live file was sealed away while listing")
            if links:
                con.execute(f"CREATE OR REPLACE TEMP TABLE _live AS {_settled(_json_select(links))}")
            con.execute(f"CREATE OR REPLACE VIEW ledger AS {ledger_sql(sealed, '_live' if links else None)}")
            return con
        except (duckdb.IOException, FileNotFoundError) as e:
            if attempt == tries - 1:
                con.close()
                raise LedgerError(f"cannot read the ledger under {home}: {e}") from e
            time.sleep(0.005 * (attempt + 1))
        except duckdb.Error as e:
            con.close()
            raise LedgerError(f"cannot read the ledger under {home}: {e}") from e
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
    return con  # pragma: no cover


def query(home: Path | str, fn, tries: int = 6):
    """``fn(con)`` on a fresh :func:`connect`; retried when a writer sealed a file meanwhile."""
    import duckdb

    for attempt in range(tries):
        con = connect(home)
        try:
            return fn(con)
        except duckdb.IOException as e:  # a file removed between listing and reading
            if attempt == tries - 1:
                raise LedgerError(f"cannot read the ledger under {home}: {e}") from e
            time.sleep(0.01 * (attempt + 1))
        finally:
            con.close()


def read(home: Path | str, where: str | None = None):
    """All ledger rows as a polars DataFrame (optionally filtered by SQL)."""
    q = "SELECT * FROM ledger" + (f" WHERE {where}" if where else "") + " ORDER BY ts"
    return query(home, lambda con: con.sql(q).pl())


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
       coalesce(sum(busy_s) FILTER (WHERE pricing = 'compute'), 0) AS busy_s,
       count(*) FILTER (WHERE status = 'unsettled')               AS unsettled,
       coalesce(sum(maybe_billed), 0)                             AS maybe_billed"""

#: spend by route/backend/model: the one summary query (``spend.report`` builds every view on it)
SUMMARY_SQL = """
SELECT route, backend, model, """ + AGGREGATES + """,
       bool_or(simulated)                                         AS simulated,
       bool_or(unpriced)                                          AS unpriced,
       coalesce(max(reference_model), '')                         AS reference_model,
       coalesce(bool_or(pricing = 'compute'), false)              AS compute,
       coalesce(sum(cost_usd) FILTER (WHERE pricing = 'compute'), 0) AS compute_usd,
       min(ts)                                                    AS first_ts,
       max(ts)                                                    AS last_ts
FROM ledger {where}
GROUP BY ALL
ORDER BY cost_usd DESC, route, backend, model
"""


def summarize(home: Path | str, where: str | None = None):
    """Spend by route/backend/model as a polars DataFrame (DuckDB does the work)."""
    q = SUMMARY_SQL.format(where=f"WHERE {where}" if where else "")
    return query(home, lambda con: con.sql(q).pl())


def as_dict(record: Record) -> dict[str, Any]:
    return asdict(record)


def read_all(where: str | None = None):
    """Every ledger row (all kernels) as a polars DataFrame; ``where`` is a SQL filter."""
    from ..config import get_settings

    return read(get_settings().home, where)


# ------------------------------------------------------------------ scopes
