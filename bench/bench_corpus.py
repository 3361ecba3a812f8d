"""Benchmark: the corpus workflow end to end with offline defaults.

Prints stage timings, peak RSS and the quality figures. Run it alone (``nice``):

    nice -n 10 python bench/bench_corpus.py --n 230000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=230_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--db", default=None, help="DuckDB path (default: a fresh temp file)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="hnb-corpus-bench-"))
    os.environ.setdefault("HYBRIDNB_HOME", str(tmp / "home"))
    db = Path(args.db) if args.db else tmp / "corpus.duckdb"

    from hybridnb import corpus

    t0 = time.perf_counter()
    result = corpus.run(n=args.n, db=db, seed=args.seed, progress=True)
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\ncorpus workflow, n={args.n:,}, seed={args.seed}, cpus={os.cpu_count()}")
    print(f"{'stage':<14}{'seconds':>10}")
    for stage, seconds in result.timings.items():
        print(f"{stage:<14}{seconds:>10.1f}")
    print(f"{'total':<14}{wall:>10.1f}   (target < 600 s)")
    print(f"peak RSS      {peak_mb:>10.0f} MB (target < 4096 MB)")
    print("quality:", json.dumps({k: round(v, 4) for k, v in result.quality.items()}, indent=1))
    print(result.costs)
    print(f"report: {result.report}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
