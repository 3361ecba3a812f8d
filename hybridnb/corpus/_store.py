"""The corpus DuckDB file: schema, version check, and small read/write helpers."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from ..errors import CorpusError

SCHEMA_VERSION = 3
TABLES = ("segments", "truth", "source_info", "embeddings", "embedding_vectors", "topics", "topic_assignments",
          "taxonomy", "taxonomy_changes", "labels", "final_labels", "reason_calls", "runs", "results")

_DDL = """
CREATE TABLE IF NOT EXISTS schema_info (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS segments (segment_id BIGINT PRIMARY KEY, source_id VARCHAR, text VARCHAR,
  speaker_role VARCHAR, ts TIMESTAMP, year INTEGER, event VARCHAR, session VARCHAR, vendor VARCHAR);
CREATE TABLE IF NOT EXISTS truth (segment_id BIGINT, true_primary VARCHAR, true_secondary VARCHAR);
CREATE TABLE IF NOT EXISTS source_info (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS embeddings (model VARCHAR, dim INTEGER, n BIGINT, seconds DOUBLE,
  created TIMESTAMP, location VARCHAR);
CREATE TABLE IF NOT EXISTS embedding_vectors (segment_id BIGINT, vec FLOAT[]);
CREATE TABLE IF NOT EXISTS topics (topic_id INTEGER, size BIGINT, keywords VARCHAR,
  representative_ids VARCHAR, common_rate DOUBLE, name VARCHAR, description VARCHAR, relevance VARCHAR,
  name_source VARCHAR);
CREATE TABLE IF NOT EXISTS topic_assignments (segment_id BIGINT, topic_id INTEGER, weight DOUBLE,
  top_topics INTEGER[], top_weights DOUBLE[]);
CREATE TABLE IF NOT EXISTS taxonomy (version INTEGER, category VARCHAR, description VARCHAR, keywords VARCHAR,
  topics VARCHAR, is_noise BOOLEAN, created TIMESTAMP);
CREATE TABLE IF NOT EXISTS taxonomy_changes (version INTEGER, change VARCHAR, category VARCHAR,
  detail VARCHAR, decided_by VARCHAR);
CREATE TABLE IF NOT EXISTS labels (segment_id BIGINT, round INTEGER, taxonomy_version INTEGER,
  label VARCHAR, secondary VARCHAR, source VARCHAR, split VARCHAR, confidence DOUBLE,
  secondary_confidence DOUBLE);
CREATE TABLE IF NOT EXISTS final_labels (segment_id BIGINT, primary_label VARCHAR, secondary_label VARCHAR,
  confidence DOUBLE, secondary_confidence DOUBLE);
CREATE TABLE IF NOT EXISTS reason_calls (step VARCHAR, key VARCHAR, prompt_hash VARCHAR,
  choices VARCHAR, answer VARCHAR, valid BOOLEAN, decided VARCHAR, decided_by VARCHAR,
  tokens BIGINT, cost_usd DOUBLE, cached BOOLEAN, simulated BOOLEAN, model VARCHAR,
  error VARCHAR);
CREATE TABLE IF NOT EXISTS runs (stage VARCHAR, status VARCHAR, started TIMESTAMP,
  ended TIMESTAMP, seconds DOUBLE, rows BIGINT, detail VARCHAR);
CREATE TABLE IF NOT EXISTS results (name VARCHAR PRIMARY KEY, value DOUBLE, detail VARCHAR);
"""


def open_store(path: "str | Path", create: bool = True, adopt: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (or create) a corpus DB; refuse a foreign or older file with a CorpusError.

    ``adopt`` accepts the analyst's own DuckDB file (a run over one of its tables): the corpus
    tables are added next to theirs, unless one of theirs has a corpus table's name.
    """
    path = Path(path)
    if not path.exists() and not create:
        raise CorpusError(f"corpus DB not found: {path}")
    try:
        con = duckdb.connect(str(path))
    except duckdb.Error as exc:
        raise CorpusError(f"{path} is not a readable DuckDB file: {exc}") from exc
    tables = {r[0] for r in con.sql("SELECT table_name FROM information_schema.tables").fetchall()}
    if adopt and tables and "schema_info" not in tables:
        clash = sorted(tables & set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", _DDL)))
        if clash:
            con.close()
            raise CorpusError(f"{path} has tables named like the corpus's own ({', '.join(clash)}); "
                              "rename them or copy the texts into another --db")
    elif tables and "schema_info" not in tables:
        con.close()
        raise CorpusError(f"{path} is a DuckDB file but not a hybridnb corpus DB "
                          f"(no schema_info table; found {sorted(tables)[:5]})")
    if "schema_info" in tables:
        _check_version(con, path)
    con.execute("SET enable_progress_bar = false")
    con.execute(_DDL)
    con.execute("INSERT OR IGNORE INTO schema_info VALUES ('schema_version', ?), ('created', ?)",
                [str(SCHEMA_VERSION), dt.datetime.now().isoformat(timespec="seconds")])
    return con


def _check_version(con, path: Path) -> None:
    row = con.execute("SELECT value FROM schema_info WHERE key = 'schema_version'").fetchall()
    found = int(row[0][0]) if row else 0
    if found != SCHEMA_VERSION:
        con.close()
        raise CorpusError(f"{path} has corpus schema version {found}, this hybridnb needs "
                          f"{SCHEMA_VERSION}: use a new --db path or delete the file to rebuild it")


def count(con, table: str, where: str = "true") -> int:
    return con.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchall()[0][0]


def frame(con, query: str) -> pl.DataFrame:
    """Run a query and return a polars frame."""
    return con.sql(query).pl()


def write_frame(con, table: str, df: pl.DataFrame, replace_where: str | None = None) -> None:
    """Append ``df`` to ``table`` (after deleting ``replace_where`` rows, when given)."""
    if replace_where:
        con.execute(f"DELETE FROM {table} WHERE {replace_where}")
    con.register("_incoming", df.to_arrow())
    cols = ", ".join(df.columns)
    con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _incoming")
    con.unregister("_incoming")


def write_vectors(con, ids: np.ndarray, vectors: np.ndarray) -> None:
    con.execute("DELETE FROM embedding_vectors")
    arr = pl.DataFrame({"segment_id": ids, "vec": vectors.astype(np.float32)})
    write_frame(con, "embedding_vectors", arr.with_columns(pl.col("vec").cast(pl.List(pl.Float32))))


def read_vectors(con) -> tuple[np.ndarray, np.ndarray]:
    df = frame(con, "SELECT segment_id, vec FROM embedding_vectors ORDER BY segment_id")
    if df.height == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    dim = len(df["vec"][0])
    vec = df["vec"].cast(pl.Array(pl.Float32, dim)).to_numpy()
    return df["segment_id"].to_numpy(), vec


def record_run(con, stage: str, status: str, started: dt.datetime, seconds: float,
               rows: int = 0, **detail) -> None:
    con.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                [stage, status, started, started + dt.timedelta(seconds=seconds), seconds, rows,
                 json.dumps(detail, default=str)])


def stage_done(con, stage: str) -> bool:
    return count(con, "runs", f"stage = '{stage}' AND status = 'done'") > 0


def set_result(con, name: str, value: float | None, **detail) -> None:
    con.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?)",
                [name, None if value is None else float(value), json.dumps(detail, default=str)])
