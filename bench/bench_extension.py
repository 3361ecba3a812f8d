"""JupyterLab extension endpoint speed: the state behind GET /hybridnb/summary.

    nice -n 10 python bench/bench_extension.py [--rows 100000 1000000] [--jsonl N]

Synthesises a sealed Parquet ledger (the same generator as bench_report.py) and
optionally one live JSONL file (a kernel's unsealed rows, at most ROTATE_ROWS),
then prints medians of: the summary state (totals, today, breakdown, kernels,
lanes, recent), the same scoped to one notebook's kernel, the ledger advice,
and the Markdown render.  The front end polls every 3 s per open tab.
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
from bench_report import GEN, median_s  # noqa: E402

from hybridnb.notebook.server import _handlers  # noqa: E402
from hybridnb.notebook.server import _markdown
from hybridnb.notebook.server import _summary
from hybridnb.store.ledger import ROTATE_ROWS, LedgerWriter, Record  # noqa: E402


def bench(home: Path, label: str, repeat: int) -> None:
    state = _summary.build_state(home)
    scoped = lambda: _summary.build_state(home, kernel="bench", notebook="nb.ipynb")  # noqa: E731
    t_state = median_s(lambda: _summary.build_state(home), repeat)
    t_scoped = median_s(scoped, repeat)
    t_advice = median_s(lambda: _handlers._ledger_advice(home), repeat)
    t_md = median_s(lambda: _markdown.render(state), repeat)
    print(f"{label:<34} state {t_state * 1e3:6.0f} ms  scoped {t_scoped * 1e3:6.0f} ms  "
          f"advice {t_advice * 1e3:6.0f} ms  markdown {t_md * 1e3:5.2f} ms", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000])
    ap.add_argument("--jsonl", type=int, default=ROTATE_ROWS - 1)  # the biggest live file
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    if a.jsonl:
        with tempfile.TemporaryDirectory() as d:
            now = time.time()
            w = LedgerWriter(d, session="k-bench")
            for start in range(0, a.jsonl, 5000):
                w.extend(Record(ts=now - i, route="reason", backend="openai", model="gpt-4o-mini",
                                status="ok", input_tokens=300, output_tokens=20, cost_usd=0.0002,
                                prompt_hash=f"p{i % 997}", answer_hash="a", notebook="nb.ipynb")
                         for i in range(start, min(a.jsonl, start + 5000)))
            w.close()
            bench(Path(d), f"live JSONL {a.jsonl:,} rows", a.repeat)
    for rows in a.rows:
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "ledger").mkdir()
            duckdb.sql(GEN.format(n=rows, path=Path(d) / "ledger" / "bench-0.parquet"))
            bench(Path(d), f"sealed Parquet {rows:,} rows", a.repeat)


if __name__ == "__main__":
    main()
