"""The discipline report over big ledgers (target: < 2 s at 1M rows).

    nice -n 10 python bench/bench_discipline.py [--rows 100000 1000000] [--repeat 3]

Synthesises ledger rows straight into a sealed Parquet segment (DuckDB): 8 notebooks, 4 users, 400 cells,
60 templates (a few closed-set ones on reason), billed exact and near-duplicate repeats, cache hits, auto rows.
Prints medians of ``discipline()`` by notebook / by user / compare / looks_local / iterations, and the plain
spend summary over the same files as the baseline (ratio = discipline / summary).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import duckdb  # noqa: E402

from bench_report import median_s  # noqa: E402
from hybridnb.spend.discipline import discipline  # noqa: E402
from hybridnb.store.ledger import COLUMNS, summarize  # noqa: E402

GEN = """
COPY (SELECT *{extra} FROM (
  SELECT 1.8e9 + i * 0.01 AS ts,
         CASE WHEN i % 3 = 0 THEN 'local' ELSE 'reason' END AS route,
         CASE WHEN i % 3 = 0 THEN 'vllm' ELSE 'openai' END AS backend,
         CASE WHEN i % 3 = 0 THEN 'qwen' WHEN i % 7 = 0 THEN 'gpt-4.1' ELSE 'gpt-4o-mini' END AS model,
         CASE WHEN i % 11 = 0 THEN 'cached' WHEN i % 97 = 0 THEN 'error' ELSE 'ok' END AS status,
         (200 + i % 500)::BIGINT AS input_tokens,
         CASE WHEN i % 60 < 5 THEN 1 ELSE 5 + i % 40 END::BIGINT AS output_tokens,
         0::BIGINT AS cached_tokens,
         CASE WHEN i % 11 = 0 THEN 0 WHEN i % 3 = 0 THEN 0.00002 ELSE 0.0002 + (i % 13) * 1e-5 END AS cost_usd,
         CASE WHEN i % 11 = 0 THEN 0.0002 ELSE 0 END AS saved_usd,
         0.3 AS latency_s, 0.0 AS held_s, 0.0 AS busy_s, 0.0 AS gpus,
         CASE WHEN i % 3 = 0 THEN 'compute' ELSE 'tokens' END AS pricing,
         i % 11 = 0 AS cached, false AS unpriced, false AS simulated, '' AS reference_model,
         '' AS error_class, '' AS error, '/team/nb' || (i % 8) || '.ipynb' AS notebook, 'c' || (i % 400) AS cell,
         '' AS batch, 't' || (i % 60) AS template, 'p' || (i % (n // 2)) AS prompt_hash,
         CASE WHEN i % 60 < 5 THEN 'a' || (i % 4) ELSE 'a' || (i % 5000) END AS answer_hash,
         'bench' AS session, 'call' AS kind, 1::BIGINT AS rows,
         'user' || (i % 4) AS "user", CASE WHEN i % 17 = 0 THEN 'auto' ELSE '' END AS via,
         NULL::DOUBLE AS confidence, i % 51 = 0 AS escalated,
         CASE WHEN i % 11 = 0 AND i % 5 = 0 THEN 0.97 ELSE NULL END::DOUBLE AS similarity,
         'n' || (i % (n // 3)) AS prompt_norm,
         'id' || i AS id
  FROM range({n}) r(i), (SELECT {n} AS n)
)) TO '{path}' (FORMAT parquet)
"""


_GENERATED = {"ts", "route", "backend", "model", "status", "input_tokens", "output_tokens", "cached_tokens",
              "cost_usd", "saved_usd", "latency_s", "held_s", "busy_s", "gpus", "pricing", "cached", "unpriced",
              "simulated", "reference_model", "error_class", "error", "notebook", "cell", "batch", "template",
              "prompt_hash", "answer_hash", "session", "kind", "rows", "user", "via", "confidence", "escalated",
              "similarity", "prompt_norm", "id"}


def _defaults() -> str:
    """Other ledger columns at their Record defaults, so the file has every column the ledger has."""
    from dataclasses import MISSING, fields

    from hybridnb.store.ledger import Record

    out = []
    for f in fields(Record):
        if f.name in _GENERATED:
            continue
        v = f.default if f.default is not MISSING else None
        lit = "NULL" if v is None else str(v).lower() if isinstance(v, bool) else repr(v) if isinstance(
            v, str) else str(v)
        out.append(f", CAST({lit} AS {COLUMNS[f.name]}) AS {f.name}")
    return "".join(out)


def make_ledger(home: Path, n: int) -> None:
    d = home / "ledger"
    d.mkdir(parents=True, exist_ok=True)
    duckdb.sql(GEN.format(n=n, path=d / "bench-0.parquet", extra=_defaults()))
    have = {r[0] for r in duckdb.sql(f"DESCRIBE SELECT * FROM '{d / 'bench-0.parquet'}'").fetchall()}
    missing = set(COLUMNS) - have
    assert not missing, f"bench ledger misses columns {missing}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    for n in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            make_ledger(home, n)
            base = median_s(lambda: summarize(home), args.repeat)
            runs = {
                "by notebook": lambda: discipline("notebook", home=home),
                "by user": lambda: discipline("user", home=home),
                "by cell": lambda: discipline("cell", home=home),
                "compare 2 notebooks": lambda: discipline(compare=["nb0.ipynb", "nb1.ipynb"], home=home),
                "looks_local": lambda: discipline(detail="looks_local", home=home),
                "iterations": lambda: discipline(detail="iterations", home=home),
            }
            print(f"{n:,} ledger rows — baseline summary(): median {base:.3f} s")
            for name, fn in runs.items():
                c0 = time.process_time()
                t = median_s(fn, args.repeat)
                cpu = (time.process_time() - c0) / args.repeat
                print(f"  discipline {name:22s} median {t:.3f} s  ({t / base:.1f}× the summary), "
                      f"{cpu:.2f} CPU-s per run")
            t = discipline("notebook", home=home)
            print(f"  check: {t.height} notebooks, {int(t['calls'].sum()):,} calls, "
                  f"looks-local calls {int(t['looks_local_calls'].sum()):,}, billed repeats "
                  f"{int(t['billed_repeats'].sum()):,}, near repeats {int(t['near_repeats'].sum()):,}")


if __name__ == "__main__":
    main()
