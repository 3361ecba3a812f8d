"""Where a corpus comes from: the analyst's file, frame or DuckDB table, or the bundled generator.

:func:`load` writes three tables in one transaction: ``segments`` (what the analysis reads:
texts and optional metadata), ``truth`` (true labels, read only by quality) and ``source_info``
(tables created by ``_store.open_store``).
Only this module (and the generator's own modules) may import the generator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ..errors import CorpusError
from . import _source_read
from ._generate import NOISE_LABEL, generate
from ._spec import load_spec

MIN_SEGMENTS = 200
DEFAULT_N = 230_000
META = ("event", "session", "vendor")  # carried over when the input has columns of these names
ROW = "__hybridnb_input_row"  # the input's row number, the id when there is no id column

SEGMENT_COLUMNS = ("segment_id", "source_id", "text", "speaker_role", "ts", "year", "event", "session",
                   "vendor")


@dataclass(frozen=True)
class SourceSummary:
    """What :func:`load` put in the DB."""

    kind: str  # generator | file | frame | table
    n_rows: int  # segments written
    n_skipped: int  # empty or whitespace texts skipped
    id_column: str | None
    has_truth: bool
    n_read: int = 0


def load(con, *, data=None, path=None, table=None, text="text", id=None, role=None, time=None,
         truth=None, truth_secondary=None, n=None, seed=0, shares=None, progress=True) -> SourceSummary:
    """Load a corpus into ``con`` (segments, truth, source_info) in one transaction.

    ``data`` is a frame or a file path; ``path`` a Parquet/CSV/JSON-lines file; ``table`` a table in
    the DB. With none of them the generator makes ``n`` segments (``seed``, ``shares``) with truth;
    ``n`` and ``seed`` are ignored for an input.
    A DB that already holds the same source is left as it is; another source is refused.
    """
    if sum(x is not None for x in (data, path, table)) > 1:
        raise CorpusError("give one of data, path or table, not several")
    if isinstance(data, (str, Path)):
        data, path = None, data
    cols = {"text": text, "id": id, "role": role, "time": time, "truth": truth,
            "truth_secondary": truth_secondary}
    if data is None and path is None and table is None:
        if any(v is not None for k, v in cols.items() if k != "text") or text != "text":
            raise CorpusError("column options (text/id/role/time/truth) need an input: pass data, path or table")
        return _load_generated(con, n or DEFAULT_N, seed, shares, progress)
    if shares is not None:
        raise CorpusError("shares apply to the generator only, not to an input corpus")
    info: dict[str, object] = {"kind": "table" if table else ("file" if path else "frame")}
    if path is not None:
        df, digest = _source_read.read_path(path)
        info.update(path=str(Path(path).expanduser().resolve()), digest=digest)
        where = str(path)
    elif table is not None:
        df = _source_read.read_table(con, table)
        info["table"], where = table, f"table {table!r}"
    else:
        df, where = _source_read.read_frame(data), "the data frame"
    if "digest" not in info:
        used = [c for c in cols.values() if c is not None and c in df.columns]
        info["digest"] = _source_read.frame_digest(df, used)
    info["digest"] = f"{info['digest']} {json.dumps(cols, sort_keys=True)}"  # same data, other columns: another corpus
    segments, truth_df, counts = prepare(df, where, **cols)
    info.update({f"{k}_column": v for k, v in cols.items()}, **counts)
    info["id_dtype"] = str(df[id].dtype) if id else None
    return _write(con, segments, truth_df, info)


def prepare(df: pl.DataFrame, where: str, *, text="text", id=None, role=None, time=None, truth=None,
            truth_secondary=None) -> tuple[pl.DataFrame, pl.DataFrame | None, dict]:
    """Check and shape an input frame into (segments, truth or None, counts); pure, no DB."""
    for what, col in (("text", text), ("id", id), ("role", role), ("time", time), ("truth", truth),
                      ("truth-secondary", truth_secondary)):
        if col is not None and col not in df.columns:
            hint = ""
            if len(df.columns) == 1 and (sep := next((c for c in ";|\t" if c in df.columns[0]), None)):
                hint = f" (the file looks {sep!r}-separated: save it comma-separated)"
            raise CorpusError(f"no {what} column {col!r} in {where}; its columns are: "
                              f"{', '.join(map(repr, df.columns[:30]))}{hint}")
    if df[text].dtype not in (pl.String, pl.Categorical, pl.Enum, pl.Null):
        raise CorpusError(f"column {text!r} in {where} holds {df[text].dtype}, not text; pick the text "
                          f"column with --text (columns: {', '.join(df.columns[:30])})")
    n_read = df.height
    df = df.with_row_index(ROW)
    if id is not None:
        _check_ids(df[id], where)
    if truth is not None and truth_secondary is None:  # true_primary → true_secondary, intent → intent_secondary
        guesses = [g for g in (truth.replace("primary", "secondary"), f"{truth}_secondary") if g != truth]
        truth_secondary = next((g for g in guesses if g in df.columns), None)
    keep = df[text].cast(pl.String).str.strip_chars().str.len_chars().fill_null(0) > 0
    df = df.filter(keep)
    if df.height < MIN_SEGMENTS:
        raise CorpusError(f"{where} has {df.height} non-empty texts ({n_read - df.height} empty skipped); "
                          f"topics need at least {MIN_SEGMENTS}")
    ts = _timestamps(df[time], where) if time else pl.Series("ts", [None] * df.height, dtype=pl.Datetime("us"))
    segments = pl.DataFrame({
        "segment_id": pl.int_range(df.height, eager=True, dtype=pl.Int64),
        "source_id": (df[id] if id else df[ROW]).cast(pl.String),
        "text": df[text].cast(pl.String),
        "speaker_role": df[role].cast(pl.String) if role else pl.Series([None] * df.height, dtype=pl.String),
        "ts": ts,
        "year": ts.dt.year().cast(pl.Int32),
        **{m: (df[m].cast(pl.String) if m in df.columns else pl.Series([None] * df.height, dtype=pl.String))
           for m in META},
    })
    truth_df = None
    if truth is not None:
        truth_df = pl.DataFrame({"segment_id": segments["segment_id"],
                                 "true_primary": _truth_values(df[truth]),
                                 "true_secondary": _truth_values(df[truth_secondary]) if truth_secondary
                                 else pl.Series([None] * df.height, dtype=pl.String)})
    counts = {"n_read": n_read, "n_rows": df.height, "n_skipped_empty": n_read - df.height,
              "truth_secondary_column": truth_secondary}
    return segments, truth_df, counts


def _check_ids(ids: pl.Series, where: str) -> None:
    if ids.null_count():
        row = int(ids.is_null().arg_max())
        raise CorpusError(f"id column {ids.name!r} in {where} has {ids.null_count()} empty values "
                          f"(first on row {row + 1}); ids must be unique and present")
    dup = ids.is_duplicated()
    if dup.any():
        first = ids.filter(dup)[0]
        rows = [int(i) + 1 for i in (ids == first).arg_true()[:2]]
        raise CorpusError(f"id column {ids.name!r} in {where} has {int(dup.sum())} rows with duplicate "
                          f"ids (first: {first!r} on rows {rows[0]} and {rows[1]}); ids must be unique")


def _timestamps(col: pl.Series, where: str) -> pl.Series:
    if col.dtype == pl.Date or isinstance(col.dtype, pl.Datetime):
        return _naive_utc(col.cast(pl.Datetime("us", getattr(col.dtype, "time_zone", None))))
    if col.dtype != pl.String:
        raise CorpusError(f"time column {col.name!r} in {where} holds {col.dtype}; give dates or timestamps")
    try:
        parsed = col.str.to_datetime(strict=False, time_unit="us")
    except pl.exceptions.PolarsError:
        parsed = pl.Series(col.name, [None] * col.len(), dtype=pl.Datetime("us"))
    bad = parsed.is_null() & col.is_not_null()
    if bad.any():
        raise CorpusError(f"time column {col.name!r} in {where}: {int(bad.sum())} values are not dates or "
                          f"timestamps (first: {col.filter(bad)[0]!r})")
    return _naive_utc(parsed)


def _naive_utc(ts: pl.Series) -> pl.Series:
    """Timestamps with a time zone become UTC wall time; naive ones stay as they are."""
    if getattr(ts.dtype, "time_zone", None):
        ts = ts.dt.convert_time_zone("UTC")
    return ts.dt.replace_time_zone(None).alias("ts")


def _truth_values(col: pl.Series) -> pl.Series:
    """True labels as text; empty and the generator's noise label become NULL (off-topic)."""
    s = col.cast(pl.String).str.strip_chars()
    return s.replace({"": None, NOISE_LABEL: None}).alias(col.name)


def _load_generated(con, n: int, seed: int, shares, progress: bool) -> SourceSummary:
    spec = load_spec(shares)  # a bad shares file fails before anything is generated
    info = {"kind": "generator", "n": n, "seed": seed,
            "shares": spec.source if shares is not None else "default",
            "shares_spec": json.dumps([[c.id, c.share] for c in spec.categories])}
    info["digest"] = json.dumps([n, seed, info["shares_spec"], spec.multi_topic, spec.cost_secondary,
                                 spec.noise_scale])
    existing = _existing(con, info)
    if existing:
        return existing
    if progress:
        import sys
        print(f"[corpus] generating {n:,} segments (seed {seed})", file=sys.stderr, flush=True)
    df = generate(n, seed=seed, shares=spec)
    segments, truth_df, counts = prepare(df, "the generated corpus", text="text", id="segment_id",
                                         role="speaker_role", time="ts", truth="true_primary")
    info.update(text_column="text", id_column="segment_id", role_column="speaker_role", time_column="ts",
                truth_column="true_primary", id_dtype=str(df["segment_id"].dtype), **counts)
    return _write(con, segments, truth_df, info)


def _existing(con, info: dict) -> SourceSummary | None:
    """The summary of the corpus already in the DB when it is the same source; None when empty."""
    stored = dict(con.execute("SELECT key, value FROM source_info").fetchall())
    has_rows = con.execute("SELECT count(*) FROM segments").fetchall()[0][0] > 0
    if not stored or not has_rows:
        return None
    if stored.get("digest") != str(info["digest"]):
        what = stored.get("path") or stored.get("table") or stored.get("kind")
        raise CorpusError(f"this DB already holds another corpus ({what}); use a new --db path")
    return summary(con)


def summary(con) -> SourceSummary:
    """The :class:`SourceSummary` of the corpus in ``con`` (from source_info)."""
    s = dict(con.execute("SELECT key, value FROM source_info").fetchall())
    if not s:
        raise CorpusError("the DB holds no corpus yet: run `hybridnb corpus run` first")
    return SourceSummary(s["kind"], int(s["n_rows"]), int(s["n_skipped_empty"]), s.get("id_column"),
                         s.get("truth_column") is not None, int(s.get("n_read") or 0))


def _write(con, segments: pl.DataFrame, truth_df: pl.DataFrame | None, info: dict) -> SourceSummary:
    if (existing := _existing(con, info)) is not None:
        return existing
    rows = [(k, None if v is None else str(v)) for k, v in info.items()]
    con.execute("BEGIN TRANSACTION")
    try:
        for table in ("segments", "truth", "source_info"):
            con.execute(f"DELETE FROM {table}")
        con.register("_seg", segments.select(SEGMENT_COLUMNS).to_arrow())
        con.execute(f"INSERT INTO segments ({', '.join(SEGMENT_COLUMNS)}) SELECT * FROM _seg")
        if truth_df is not None:
            con.register("_truth", truth_df.to_arrow())
            con.execute("INSERT INTO truth SELECT segment_id, true_primary, true_secondary FROM _truth")
        con.executemany("INSERT INTO source_info VALUES (?, ?)", rows)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        for name in ("_seg", "_truth"):
            try:
                con.unregister(name)
            except Exception:
                pass
    return summary(con)


def generated_frame(n: int, seed: int = 0, shares=None) -> pl.DataFrame:
    """The generator's corpus as a frame of texts, metadata and truth columns (for ``corpus generate``)."""
    return generate(n, seed=seed, shares=shares)
