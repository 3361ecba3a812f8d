"""Core benchmark: the dispatcher's own overhead per call, and ledger speed.

    .venv/bin/python bench/bench_core.py [--calls 300] [--rows 1000000]

Prints medians.  Overhead is measured against a baseline in the same process:
a raw AsyncOpenAI call on the same loop and the same loopback server (a
subprocess), so machine noise hits both sides.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_server() -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen([sys.executable, str(ROOT / "tests" / "openai_server.py")], stdout=subprocess.PIPE, text=True)
    return p, p.stdout.readline().strip()


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def bench_calls(n: int) -> None:
    import openai

    import hybridnb
    from hybridnb.core.loop import run_sync

    proc, base = start_server()
    try:
        os.environ.update(HYBRIDNB_REASON_BASE_URL=base, HYBRIDNB_REASON_API_KEY="sk-bench-0000000000",
                          HYBRIDNB_REASON_MODEL="gpt-4o-mini")
        client = openai.AsyncOpenAI(base_url=base, api_key="sk-bench-0000000000")
        msgs = [{"role": "user", "content": "bench prompt"}]

        def raw():
            run_sync(client.chat.completions.create(model="gpt-4o-mini", messages=msgs, temperature=0.0))

        counter = iter(range(10**9))

        def miss():
            hybridnb.reason(f"bench prompt {next(counter)}", cache=False)

        hybridnb.reason("warm up the cache")

        def hit():
            hybridnb.reason("warm up the cache")

        for f in (raw, miss, hit):  # warm-up
            timed(f, 20)
        rounds = {"raw": [], "miss": [], "hit": []}
        for _ in range(5):  # interleave to share the noise
            rounds["raw"] += timed(raw, n // 5)
            rounds["miss"] += timed(miss, n // 5)
            rounds["hit"] += timed(hit, n // 5)
        raw_ms, miss_ms, hit_ms = ms(rounds["raw"]), ms(rounds["miss"]), ms(rounds["hit"])
        print(f"calls per case                 {n}")
        print(f"raw AsyncOpenAI call (median)  {raw_ms:.3f} ms")
        print(f"hybridnb miss (median)         {miss_ms:.3f} ms")
        print(f"dispatcher overhead on a miss  {miss_ms - raw_ms:.3f} ms  (ratio {miss_ms / raw_ms:.2f}x raw)")
        print(f"cache hit, end to end (median) {hit_ms:.3f} ms")
    finally:
        proc.terminate()


def bench_ledger(rows: int) -> None:
    import polars as pl

    from hybridnb.store import ledger
    from hybridnb.store.ledger import LedgerWriter, Record

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        w = LedgerWriter(home, session="bench")
        n_append = 100_000
        recs = [Record(ts=float(i), route="local", backend="b", model="m", status="ok", cost_usd=0.001)
                for i in range(n_append)]
        t = time.perf_counter()
        for r in recs:
            w.append(r)
        dt = time.perf_counter() - t
        w.close()
        print(f"ledger append, one flush each  {n_append / dt:,.0f} records/s ({dt * 1e6 / n_append:.1f} µs each, "
              f"incl. {n_append // ledger.ROTATE_ROWS} Parquet seals)")
        t100 = timed(lambda: ledger.summarize(home), 7)
        print(f"summary over {n_append:,} rows        {ms(t100):.1f} ms (median of 7)")
        # grow to `rows` with sealed Parquet segments shaped like real ones
        base = ledger.read(home)
        seg = base.sample(n=ledger.ROTATE_ROWS, with_replacement=True, seed=1)
        k = 0
        while (ledger.read(home).height if k == 0 else n_append + k * seg.height) < rows:
            seg.write_parquet(home / "ledger" / f"bench-extra-{k}.parquet")
            k += 1
        total = n_append + k * seg.height
        tbig = timed(lambda: ledger.summarize(home), 7)
        print(f"summary over {total:,} rows      {ms(tbig):.1f} ms (median of 7)")
        assert ledger.summarize(home)["calls"].sum() == total
        _ = pl


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["HYBRIDNB_HOME"] = home
        bench_calls(args.calls)
    bench_ledger(args.rows)


if __name__ == "__main__":
    main()
