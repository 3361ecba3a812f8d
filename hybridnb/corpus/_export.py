"""Labels leave the corpus DB as a file keyed by the input's own id column."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ..errors import CorpusError
from . import _store

ROW_COLUMN = "row"  # the id column's name when the input had none: the input's 0-based row number
OUT_SUFFIXES = (".parquet", ".csv", ".jsonl", ".ndjson")
_INT = {"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64"}


def labels_frame(con) -> pl.DataFrame:
    """One row per labelled segment: the input id, ``primary``, ``secondary``, ``confidence``."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "source_info" not in tables or "final_labels" not in tables or \
            con.execute("SELECT count(*) FROM final_labels").fetchall()[0][0] == 0:
        raise CorpusError("the DB holds no final labels yet: run `hybridnb corpus run` to the end first")
    info = dict(con.execute("SELECT key, value FROM source_info").fetchall())
    id_name = info.get("id_column") or ROW_COLUMN
    df = _store.frame(con, """SELECT s.source_id, f.primary_label, f.secondary_label, f.confidence
        FROM final_labels f JOIN segments s USING (segment_id) ORDER BY s.segment_id""")
    ids = df["source_id"]
    if info.get("id_column") is None or info.get("id_dtype") in _INT:
        ids = ids.cast(pl.Int64)
    return pl.DataFrame({id_name: ids, "primary": df["primary_label"], "secondary": df["secondary_label"],
                         "confidence": df["confidence"]})


def check_out_path(out_path: "str | Path") -> Path:
    """``out_path`` as a Path when its suffix and folder allow writing a frame there."""
    out = Path(out_path)
    if out.suffix.lower() not in OUT_SUFFIXES:
        raise CorpusError(f"cannot write {out.suffix or 'a file without suffix'}: use .parquet, .csv or .jsonl")
    if not out.parent.is_dir():
        raise CorpusError(f"folder does not exist: {out.parent}")
    return out


def write_file(df: pl.DataFrame, out_path: "str | Path") -> Path:
    """Write ``df`` to .parquet/.csv/.jsonl by suffix, via a temporary file (never half-written)."""
    out = check_out_path(out_path)
    tmp = out.with_name(out.name + ".part")
    {".parquet": df.write_parquet, ".csv": df.write_csv}.get(out.suffix.lower(), df.write_ndjson)(tmp)
    tmp.replace(out)
    return out


def export_labels(db: "str | Path", out_path: "str | Path") -> pl.DataFrame:
    """Write the final labels of ``db`` to ``out_path`` (.parquet, .csv or .jsonl by suffix)."""
    check_out_path(out_path)
    con = _store.open_store(db, create=False)
    try:
        df = labels_frame(con)
    finally:
        con.close()
    write_file(df, out_path)
    return df
