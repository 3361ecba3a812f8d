"""Operator view speed: report, advice, widget build and live updates over big ledgers.

    nice -n 10 python bench/bench_report.py [--rows 100000 1000000]

Synthesises ledger rows straight into a sealed Parquet segment (DuckDB), then
prints medians of: report build (summary + advice), advice alone, the
widget's initial state from the ledger, and the per-record cost of the live
path (SpendState.apply, a full trait flush).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402

from hybridnb.spend.advice import compute_advice  # noqa: E402
from hybridnb.store.ledger import COLUMNS, Record, connect  # noqa: E402
from hybridnb.spend.report import Scope, budget_in, build_report  # noqa: E402
from hybridnb.notebook.widget import SpendState, SpendWidget  # noqa: E402

GEN = """
COPY (
  SELECT 1.8e9 + i * 0.01 AS ts,
         CASE WHEN i % 3 = 0 THEN 'local' ELSE 'reason' END AS route,
         CASE WHEN i % 3 = 0 THEN 'vllm' ELSE 'openai' END AS backend,
         CASE WHEN i % 3 = 0 THEN 'qwen' WHEN i % 7 = 0 THEN 'gpt-4.1' ELSE 'gpt-4o-mini' END AS model,
         CASE WHEN i % 11 = 0 THEN 'cached' WHEN i % 97 = 0 THEN 'error' ELSE 'ok' END AS status,
         (200 + i % 500)::BIGINT AS input_tokens, (5 + i % 40)::BIGINT AS output_tokens,
         0::BIGINT AS cached_tokens,
         CASE WHEN i % 11 = 0 THEN 0 WHEN i % 3 = 0 THEN 0.00002 ELSE 0.0002 + (i % 13) * 1e-5 END AS cost_usd,
         CASE WHEN i % 11 = 0 THEN 0.0002 ELSE 0 END AS saved_usd,
         0.3 AS latency_s, CASE WHEN i % 3 = 0 THEN 0.3 ELSE 0 END AS held_s,
         CASE WHEN i % 3 = 0 THEN 0.1 ELSE 0 END AS busy_s,
         CASE WHEN i % 3 = 0 THEN 1.0 ELSE 0 END AS gpus,
         CASE WHEN i % 3 = 0 THEN 'compute' ELSE 'tokens' END AS pricing,
         i % 11 = 0 AS cached, false AS unpriced, false AS simulated, '' AS reference_model,
         '' AS error_class, '' AS error, 'nb.ipynb' AS notebook, 'c' || (i % 50) AS cell,
         '' AS batch, 't' || (i % 20) AS template, 'p' || (i % (n / 2)) AS prompt_hash,
         'a' || (i % 4) AS answer_hash, 'bench' AS session, 'call' AS kind, 1::BIGINT AS rows,
         'id' || i AS id
  FROM range({n}) r(i), (SELECT {n} AS n)
) TO '{path}' (FORMAT parquet)
"""


def median_s(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench(rows: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        home = Path(d)
        (home / "ledger").mkdir()
        duckdb.sql(GEN.format(n=rows, path=home / "ledger" / "bench-0.parquet"))
        assert set(COLUMNS) <= set(connect(home).sql("SELECT * FROM ledger LIMIT 0").columns)

        def advice():
            con = connect(home)
            try:
                return compute_advice(con, ())
            finally:
                con.close()

        t_report = median_s(lambda: build_report(home, Scope("total"), budget_in(home, 100.0, "total")), repeat)
        t_advice = median_s(advice, repeat)
        t_state = median_s(lambda: SpendState.from_ledger(home), repeat)
        print(f"rows={rows:>9,}  report build {t_report * 1e3:7.0f} ms   advice {t_advice * 1e3:7.0f} ms"
              f"   widget initial state {t_state * 1e3:7.0f} ms   advice kinds: "
              f"{sorted({a.kind for a in advice()})}")


def live(n: int = 20_000) -> None:
    recs = [Record(ts=1.8e9 + i, route="reason", backend="openai", model="m", status="ok",
                   input_tokens=100, output_tokens=5, cost_usd=0.0001) for i in range(n)]
    s = SpendState()
    t = time.perf_counter()
    for r in recs:
        s.apply(r)
    per_apply = (time.perf_counter() - t) / n
    w = SpendWidget()
    for r in recs[:500]:
        w.apply(r, flush=False)
    flush = median_s(w.flush, 50)
    print(f"live path: SpendState.apply {per_apply * 1e6:.1f} µs/record; "
          f"full trait flush {flush * 1e3:.2f} ms (≤ 4 flushes/s when attached)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    for n in args.rows:
        bench(n, args.repeat)
    live()


if __name__ == "__main__":
    main()
