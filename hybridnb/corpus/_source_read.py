"""Reading a corpus the analyst brings: Parquet, CSV, JSON lines, a frame, or a DuckDB table.

Every failure is one :class:`CorpusError` line that names the file and what to do.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

from ..errors import CorpusError

SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv",
            ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


def read_path(path: "str | Path") -> tuple[pl.DataFrame, str]:
    """Read ``path`` into a frame; returns (frame, sha256 of the file's bytes)."""
    path = Path(path).expanduser()
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise CorpusError(f"cannot read {path}: use a .parquet, .csv, .tsv or .jsonl file "
                          f"(got {path.suffix or 'no suffix'})")
    if not path.exists():
        raise CorpusError(f"input file not found: {path}")
    if not path.is_file():
        raise CorpusError(f"input is not a file: {path}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not raw.strip():
        raise CorpusError(f"input file is empty: {path}")
    digest = hashlib.sha256(raw).hexdigest()
    if kind != "parquet":
        raw = _check_utf8(raw, path)
    try:
        return _parse(raw, kind, path), digest
    except CorpusError:
        raise
    except Exception as exc:  # polars/pyarrow parse errors have many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if kind == "jsonl":
            first = _bad_json_line(raw) or first
        raise CorpusError(f"cannot read {path} as {kind}: {first}") from exc


def _bad_json_line(raw: bytes) -> str | None:
    """The first line of a JSON-lines file that is not a JSON object, in words."""
    import json

    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            ok = isinstance(json.loads(line), dict)
        except ValueError as exc:
            return f"line {number} is not valid JSON ({exc.msg})"
        if not ok:
            return f"line {number} is not a JSON object"
    return None


def _parse(raw: bytes, kind: str, path: Path) -> pl.DataFrame:
    if kind == "parquet":
        return pl.read_parquet(raw)
    if kind in ("csv", "tsv"):
        # every column as text: ids keep leading zeros, dates are parsed later from the time column
        return pl.read_csv(raw, separator="\t" if kind == "tsv" else ",", infer_schema=False)
    if raw.lstrip()[:1] == b"[":  # a .json file holding one array of records
        return pl.read_json(raw)
    return pl.read_ndjson(raw, infer_schema_length=10_000)


def _check_utf8(raw: bytes, path: Path) -> bytes:
    """Strip a UTF-8 BOM; refuse undecodable bytes naming the line."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise CorpusError(f"{path} is not UTF-8: byte 0x{raw[exc.start]:02x} on line {line} cannot be "
                          f"decoded; re-save the file as UTF-8") from None
    return raw


def read_frame(data) -> pl.DataFrame:
    """A polars or pandas DataFrame, a pyarrow Table, or a list of records, as a polars frame."""
    if isinstance(data, pl.DataFrame):
        return data
    if isinstance(data, pl.LazyFrame):
        return data.collect()
    try:
        if type(data).__module__.startswith(("pandas", "pyarrow")):
            return pl.from_pandas(data) if hasattr(data, "iloc") else pl.from_arrow(data)
        if isinstance(data, list):
            return pl.DataFrame(data)
    except Exception as exc:
        raise CorpusError(f"cannot turn the {type(data).__name__} passed as data into a table: {exc}") from exc
    raise CorpusError(f"data must be a DataFrame, a pyarrow Table or a file path, got {type(data).__name__}")


def read_table(con, table: str) -> pl.DataFrame:
    """A table (or view) already in the corpus DB."""
    names = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                       "WHERE table_schema = 'main'").fetchall()]
    if table not in names:
        raise CorpusError(f"no table {table!r} in the DB; tables there: {', '.join(sorted(names)) or 'none'}")
    return con.sql(f'SELECT * FROM "{table}"').pl()


def frame_digest(df: pl.DataFrame, columns: list[str]) -> str:
    """A content hash of the columns that make the corpus (stable within one polars version)."""
    h = hashlib.sha256()
    for col in columns:
        h.update(col.encode())
        h.update(df[col].cast(pl.String).fill_null("\x00").str.join("\x1f").item().encode())
    return h.hexdigest()
