"""Batch throughput: hybridnb.map vs bare clients, same server, same run.

    nice -n 10 .venv/bin/python bench/bench_batch.py [--rows 2000] [--rounds 3] [--ray] [--mem-rows 100000]
                                                    [--profile]

The server is tests/openai_server.py as a subprocess with a fixed 20 ms delay.
Every round uses fresh prompts, so map pays for real calls (cache writes and
ledger records included) and never hits the cache.  Clients, interleaved per round:

* raw — hybridnb's keep-alive HTTP/1.1 pool + Semaphore, pre-serialised bodies, no parsing (the ceiling);
* bare — ``AsyncOpenAI`` + Semaphore (the baseline of the ratio);
* aiohttp — ``AsyncOpenAI(http_client=DefaultAioHttpClient())`` + Semaphore (when aiohttp is installed);
* litellm — ``litellm.acompletion`` + Semaphore (when litellm is installed);
* map — ``hybridnb.map`` (bulk transport; ledger, cache, dedup, signals on, and a budget set, so every chunk
  reserves and settles);
* map-sdk — the same with ``transport="sdk"``.

Prints medians and the ratios map ÷ bare, map ÷ raw; ``--profile`` adds where map's CPU goes.
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
MODEL = "test-local-model"


def start_server(delay: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "openai_server.py"), "--delay", str(delay)],
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


async def _gather(fn, prompts: list[str], conc: int) -> float:
    sem = asyncio.Semaphore(conc)

    async def one(p: str):
        async with sem:
            return await fn(p)

    t = time.perf_counter()
    out = await asyncio.gather(*(one(p) for p in prompts))
    dt = time.perf_counter() - t
    assert len(out) == len(prompts) and all(out)
    return len(prompts) / dt


class Clients:
    """The bare clients on one event loop of their own, each built once and kept (warm pools)."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.loop = asyncio.new_event_loop()
        self.made: dict[str, object] = {}

    def client(self, kind: str):
        if kind not in self.made:
            self.made[kind] = self.loop.run_until_complete(self._make(kind))
        return self.made[kind]

    async def _make(self, kind: str):
        if kind == "raw":
            from hybridnb.backends import _fast_http as fh

            return fh.Pool(self.base_url, {"Authorization": "Bearer EMPTY"}, max_idle=256)
        if kind == "litellm":
            return None
        from openai import AsyncOpenAI

        kw = {}
        if kind == "aiohttp":
            from openai import DefaultAioHttpClient

            kw["http_client"] = DefaultAioHttpClient()
        return AsyncOpenAI(base_url=self.base_url, api_key="EMPTY", max_retries=2, **kw)

    def rate(self, kind: str, prompts: list[str], conc: int) -> float:
        c = self.client(kind)
        fn = {"raw": self._raw, "litellm": self._litellm}.get(kind, self._sdk)
        return self.loop.run_until_complete(_gather(lambda p: fn(c, p), prompts, conc))

    @staticmethod
    async def _raw(pool, p: str) -> bool:
        from hybridnb.backends import _fast_http as fh

        body = fh.dumps({"model": MODEL, "messages": [{"role": "user", "content": p}], "temperature": 0.0})
        r = await pool.post("/chat/completions", body)
        return r.status == 200

    @staticmethod
    async def _sdk(client, p: str) -> str:
        r = await client.chat.completions.create(model=MODEL, temperature=0.0,
                                                 messages=[{"role": "user", "content": p}])
        return r.choices[0].message.content

    async def _litellm(self, _none, p: str) -> str:
        import litellm

        r = await litellm.acompletion(model=f"openai/{MODEL}", api_base=self.base_url, api_key="EMPTY",
                                      temperature=0.0, messages=[{"role": "user", "content": p}])
        return r.choices[0].message.content


def available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def map_rate(texts: list[str], conc: int, engine: str = "local", transport: str = "bulk") -> float:
    import polars as pl

    from hybridnb.batch.runner import run_batch

    df = pl.DataFrame({"text": texts})
    t = time.perf_counter()
    res = run_batch(df, "Label: {text}", "local", concurrency=conc, progress=False, verbose=False, engine=engine,
                    transport=transport)
    dt = time.perf_counter() - t
    assert res.stats.ok == len(texts) and res.stats.failed == 0, res.stats.line()
    return len(texts) / dt


def rate(kind: str, clients: Clients, n: int, conc: int) -> float:
    if kind == "map":
        return map_rate(texts(n), conc)
    if kind == "map-sdk":
        return map_rate(texts(n), conc, transport="sdk")
    return clients.rate(kind, texts(n), conc)


def profile_map(n: int, conc: int, top: int = 25) -> None:
    """Where map's CPU goes on the loop thread (cProfile with a thread-CPU timer, enabled on the loop)."""
    import cProfile
    import pstats

    from hybridnb.core.loop import get_loop

    prof = cProfile.Profile(time.thread_time)  # CPU time of the loop thread, not wall time
    loop = get_loop()
    loop.call_soon_threadsafe(prof.enable)
    time.sleep(0.05)
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    map_rate(texts(n), conc)
    t_wall, t_cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu
    loop.call_soon_threadsafe(prof.disable)
    time.sleep(0.05)
    st = pstats.Stats(prof)
    groups: dict[str, float] = {}
    for (file, _line, func), (_cc, _nc, tt, _ct, _callers) in st.stats.items():
        key = _group(file, func)
        groups[key] = groups.get(key, 0.0) + tt
    total = sum(groups.values())
    print(f"  profile of one {n:,}-row map: {t_wall:.2f} s wall, {t_cpu:.2f} s CPU in this process "
          f"({t_cpu / n * 1e6:.0f} µs a row), of it {total:.2f} s on the loop thread ({total / n * 1e6:.0f} µs a row)")
    for k, v in sorted(groups.items(), key=lambda kv: -kv[1])[:12]:
        print(f"    {k:38s} {v:6.2f} s  {v / total:5.1%}  {v / n * 1e6:5.0f} µs/row")


def _group(file: str, func: str) -> str:
    f = file.replace("\\", "/")
    for key, label in (("_fast_http", "HTTP client (_fast_http)"), ("batch/bulk", "bulk backend (encode/parse)"),
                       ("core/dispatcher", "dispatcher (settle, send)"), ("core/records", "records/responses"),
                       ("store/ledger", "ledger write"), ("store/cache", "cache write"),
                       ("spend/signals", "signals"), ("core/pricing", "pricing"), ("batch/runner", "runner callbacks"),
                       ("batch/progress", "progress"), ("asyncio", "asyncio event loop"), ("json", "json (stdlib)"),
                       ("uuid", "uuid"), ("hashlib", "hashing"), ("sqlite3", "sqlite")):
        if key in f:
            return label
    if func.startswith("<built-in method") or file == "~":
        return "builtins: " + func[:28]
    return "other: " + Path(f).name


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
    ap.add_argument("--rows", type=int, default=2_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--delay", type=float, default=0.02)
    ap.add_argument("--ray", action="store_true", help="also time engine='ray' on the same rows")
    ap.add_argument("--mem-rows", type=int, default=0, help="also measure peak RSS of one run this big")
    ap.add_argument("--profile", action="store_true", help="also profile one map run (CPU by component)")
    ap.add_argument("--mem-child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mem_child:
        mem_child(args.mem_child, args.concurrency)
        return
    proc, base_url = start_server(args.delay)
    home = tempfile.mkdtemp(prefix="hnb-bench-")
    os.environ.update(HYBRIDNB_HOME=home, HYBRIDNB_LOCAL_BASE_URL=base_url, HYBRIDNB_LOCAL_MODEL=MODEL,
                      HYBRIDNB_BUDGET_USD="1000000")  # budget on: every chunk reserves and settles
    kinds = ["raw", "bare"] + [k for k, m in (("aiohttp", "aiohttp"), ("litellm", "litellm")) if available(m)]
    kinds += ["map", "map-sdk"]
    clients = Clients(base_url)
    try:
        for k in kinds:  # warm every path (imports, connections, first cache/ledger files)
            rate(k, clients, 300, args.concurrency)
        rates: dict[str, list[float]] = {k: [] for k in kinds}
        for r in range(args.rounds):
            for k in kinds:
                rates[k].append(rate(k, clients, args.rows, args.concurrency))
            print(f"round {r + 1}: " + " · ".join(f"{k} {v[-1]:,.0f}" for k, v in rates.items()), flush=True)
        ideal = args.concurrency / args.delay
        med = {k: statistics.median(v) for k, v in rates.items()}
        print(f"{args.rows:,} rows, concurrency {args.concurrency}, {args.delay * 1000:.0f} ms latency, "
              f"{args.rounds} rounds (medians, rows/s; ideal {ideal:,.0f})")
        for k in kinds:
            print(f"  {k:8s} {med[k]:7,.0f}  ({med[k] / ideal:5.1%} of ideal)  per round: "
                  + ", ".join(f"{x:,.0f}" for x in rates[k]))
        ratios = [m / b for m, b in zip(rates["map"], rates["bare"])]
        print(f"  map / bare: {med['map'] / med['bare']:.2f} (per round {', '.join(f'{x:.2f}' for x in ratios)})")
        print(f"  map / raw:  {med['map'] / med['raw']:.2f}; map / map-sdk: {med['map'] / med['map-sdk']:.2f}")
        if "litellm" in med:
            print(f"  map / litellm: {med['map'] / med['litellm']:.2f}")
        if args.profile:
            profile_map(args.rows, args.concurrency)
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
