"""Batch throughput: hybridnb.batch.map vs a bare AsyncOpenAI + Semaphore, same server, same run.

    nice -n 10 .venv/bin/python bench/bench_batch.py [--rows 10000] [--rounds 3] [--ray] [--mem-rows 100000]

The server is tests/openai_server.py as a subprocess with a fixed 20 ms delay.
Every round uses fresh prompts, so map pays for real calls (cache writes and
ledger records included) and never hits the cache.  Prints medians and the
ratio map ÷ bare, and the ideal rate concurrency ÷ latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def start_server(delay: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "openai_server.py"), "--delay", str(delay)],
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


async def _bare(base_url: str, prompts: list[str], conc: int) -> float:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=2)
    sem = asyncio.Semaphore(conc)

    async def one(p: str) -> str:
        async with sem:
            r = await client.chat.completions.create(model="test-local-model", temperature=0.0,
                                                     messages=[{"role": "user", "content": p}])
            return r.choices[0].message.content

    t = time.perf_counter()
    out = await asyncio.gather(*(one(p) for p in prompts))
    dt = time.perf_counter() - t
    await client.close()
    assert len(out) == len(prompts)
    return len(prompts) / dt


def bare_rate(base_url: str, prompts: list[str], conc: int) -> float:
    return asyncio.run(_bare(base_url, prompts, conc))


def map_rate(texts: list[str], conc: int, engine: str = "local") -> float:
    import polars as pl

    from hybridnb.batch.runner import run_batch

    df = pl.DataFrame({"text": texts})
    t = time.perf_counter()
    res = run_batch(df, "Label: {text}", "local", concurrency=conc, progress=False, verbose=False, engine=engine)
    dt = time.perf_counter() - t
    assert res.stats.ok == len(texts) and res.stats.failed == 0, res.stats.line()
    return len(texts) / dt


def texts(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"segment {tag} {i} about a late parcel" for i in range(n)]


def mem_child(rows: int, conc: int) -> None:
    """Run one batch of ``rows`` and print peak RSS (this process only) as JSON."""
    import polars as pl

    from hybridnb.batch.runner import run_batch

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    df = pl.DataFrame({"text": texts(rows)})
    t = time.perf_counter()
    res = run_batch(df, "Label: {text}", "local", concurrency=conc, progress=False, verbose=False)
    dt = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": rows, "ok": res.stats.ok, "s": dt, "rate": rows / dt,
                      "rss_before_mb": base / 1024, "peak_rss_mb": peak / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--delay", type=float, default=0.02)
    ap.add_argument("--ray", action="store_true", help="also time engine='ray' on the same rows")
    ap.add_argument("--mem-rows", type=int, default=0, help="also measure peak RSS of one run this big")
    ap.add_argument("--mem-child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mem_child:
        mem_child(args.mem_child, args.concurrency)
        return
    proc, base_url = start_server(args.delay)
    home = tempfile.mkdtemp(prefix="hnb-bench-")
    os.environ.update(HYBRIDNB_HOME=home, HYBRIDNB_LOCAL_BASE_URL=base_url, HYBRIDNB_LOCAL_MODEL="test-local-model")
    try:
        bare_rate(base_url, texts(300), args.concurrency)  # warm both paths
        map_rate(texts(300), args.concurrency)
        bare, mapped = [], []
        for r in range(args.rounds):
            bare.append(bare_rate(base_url, texts(args.rows), args.concurrency))
            mapped.append(map_rate(texts(args.rows), args.concurrency))
            print(f"round {r + 1}: bare {bare[-1]:,.0f} rows/s · map {mapped[-1]:,.0f} rows/s", flush=True)
        ideal = args.concurrency / args.delay
        mb, mm = statistics.median(bare), statistics.median(mapped)
        print(f"{args.rows:,} rows, concurrency {args.concurrency}, {args.delay * 1000:.0f} ms latency, "
              f"{args.rounds} rounds (medians)")
        print(f"  bare AsyncOpenAI + Semaphore: {mb:,.0f} rows/s ({mb / ideal:.1%} of ideal {ideal:,.0f})")
        print(f"  hybridnb.batch.map:           {mm:,.0f} rows/s ({mm / ideal:.1%} of ideal)")
        print(f"  map / bare: {mm / mb:.2f}")
        if args.ray:
            import ray

            t = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
            init_s = time.perf_counter() - t
            map_rate(texts(300), args.concurrency, engine="ray")  # actors start, import openai
            ray_rates, local_rates = [], []
            for _ in range(args.rounds):
                ray_rates.append(map_rate(texts(args.rows), args.concurrency, engine="ray"))
                local_rates.append(map_rate(texts(args.rows), args.concurrency))
            rr, lr = statistics.median(ray_rates), statistics.median(local_rates)
            print(f"  ray engine: {rr:,.0f} rows/s vs in-process {lr:,.0f} rows/s "
                  f"(ray / in-process {rr / lr:.2f}; + {init_s:.1f} s ray.init once)")
            ray.shutdown()
        if args.mem_rows:
            out = subprocess.run([sys.executable, __file__, "--mem-child", str(args.mem_rows),
                                  "--concurrency", str(args.concurrency)], capture_output=True, text=True,
                                 env=os.environ)
            m = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  {m['rows']:,}-row run: {m['rate']:,.0f} rows/s, peak RSS {m['peak_rss_mb']:,.0f} MB "
                  f"(process was {m['rss_before_mb']:,.0f} MB before the batch)")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
