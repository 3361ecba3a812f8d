"""Corpus sources and quality: loading a brought corpus into the DB, and the honest evaluation.

    nice -n 10 python bench/bench_corpus_sources.py [--n 230000] [--repeat 3]

Writes one generated corpus as Parquet, CSV and JSON lines, then prints medians of
``_sources.load`` for each (ids, role, time and truth columns; a fresh DB each time) and for the
generator itself, as ratios to reading the Parquet file alone (the baseline, same process),
and the median of ``_quality.evaluate`` over the same number of labelled segments.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl  # noqa: E402

from hybridnb.corpus import _quality, _sources, _store  # noqa: E402

COLS = {"id": "segment_id", "role": "speaker_role", "time": "ts", "truth": "true_primary"}


def median_s(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def load_once(tmp: Path, **kw) -> None:
    db = tmp / "bench.duckdb"
    db.unlink(missing_ok=True)
    con = _store.open_store(db)
    _sources.load(con, progress=False, **kw)
    con.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=230_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        df = _sources.generated_frame(args.n, seed=0).drop("is_noise")
        files = {s: tmp / f"corpus.{s}" for s in ("parquet", "csv", "jsonl")}
        df.write_parquet(files["parquet"]), df.write_csv(files["csv"]), df.write_ndjson(files["jsonl"])
        base = median_s(lambda: pl.read_parquet(files["parquet"]), args.repeat)
        print(f"n = {args.n:,}; baseline pl.read_parquet: {base:.2f} s (median of {args.repeat})")
        for kind, path in files.items():
            s = median_s(lambda p=path: load_once(tmp, path=str(p), **COLS), args.repeat)
            print(f"load {kind:<8} {s:6.2f} s  ({s / base:5.1f}x baseline)")
        s = median_s(lambda: load_once(tmp, n=args.n, seed=0), args.repeat)
        print(f"load generator {s:6.2f} s  ({s / base:5.1f}x baseline)")
        con = _store.open_store(tmp / "bench.duckdb")
        con.execute("""INSERT INTO final_labels (segment_id, primary_label, secondary_label, confidence)
            SELECT segment_id, CASE WHEN segment_id % 10 = 0 THEN 'other' ELSE true_primary END,
                   true_secondary, 0.9 FROM truth""")
        s = median_s(lambda: _quality.evaluate(con), args.repeat)
        print(f"quality.evaluate {s:6.2f} s over {args.n:,} labelled segments")
        con.close()


if __name__ == "__main__":
    main()
