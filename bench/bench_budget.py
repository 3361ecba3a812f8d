"""Budget and ledger safety benchmark (issue 12): every figure for bench/RESULTS.md, measured.

    .venv/bin/python bench/bench_budget.py [--records 20000] [--prompts 200]

1. Ledger append rate with the write-ahead row (2 records a call) vs the old single record, same process.
2. Budget: answers 64x the estimate at concurrency 32 -> spend vs budget; a new process with the
   same home and --per day -> refused, requests sent.
3. kill -9 at concurrency 16 mid-batch -> paid calls missing from the ledger; the rerun's requests.
4. Two processes x the same N prompts on a cold cache -> requests the server received.
The fault server (tests/faulty_server.py) runs in this process; clients are real subprocesses.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from faulty_server import FaultyServer  # noqa: E402

from hybridnb.store.ledger import LedgerWriter, Record  # noqa: E402


def append_rate(records: int, write_ahead: bool, repeat: int = 5) -> float:
    """Median records/s appending one call at a time (write-ahead: a sent row, then the final row)."""
    rates = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as d:
            w = LedgerWriter(d, session="bench")
            calls = records // (2 if write_ahead else 1)
            t = time.perf_counter()
            for i in range(calls):
                final = Record(ts=time.time(), route="reason", backend="openai", model="gpt-4o-mini",
                               status="ok", input_tokens=10, output_tokens=20, cost_usd=1e-5)
                if write_ahead:
                    sent = Record(ts=final.ts, route="reason", backend="openai", model="gpt-4o-mini",
                                  status="unsettled", id=final.id)
                    w.append(sent)
                w.append(final)
            rates.append(calls * (2 if write_ahead else 1) / (time.perf_counter() - t))
            w.close()
    return statistics.median(rates)


def env_for(srv: FaultyServer, home: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRIDNB_")}
    env.update({"HYBRIDNB_HOME": home, "HYBRIDNB_REASON_BASE_URL": srv.base_url,
                "HYBRIDNB_REASON_API_KEY": "sk-bench-0123456789", "HYBRIDNB_REASON_MODEL": "gpt-4o-mini",
                "PYTHONPATH": str(ROOT)})
    env.update(extra)
    return env


BATCH = textwrap.dedent("""
    import sys, json
    import polars as pl
    import hybridnb
    from hybridnb.store import ledger
    from hybridnb.config import get_settings
    n, conc = int(sys.argv[1]), int(sys.argv[2])
    df = pl.DataFrame({"q": [f"question {i} " + sys.argv[3] for i in range(n)]})
    try:
        out = hybridnb.map(df, "{q}", route="reason", concurrency=conc, progress=False, verbose=False)
        ok = out.filter(pl.col("error").is_null()).height
        print(json.dumps({"ok": ok, "refused": False}), flush=True)
    except hybridnb.errors.BudgetExceeded:
        print(json.dumps({"ok": 0, "refused": True}), flush=True)
""")


def run_batch(srv, home, n, conc, tag, **env) -> dict:
    import json

    out = subprocess.run([sys.executable, "-c", BATCH, str(n), str(conc), tag], env=env_for(srv, home, **env),
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def ledger_cost(home: str) -> float:
    from hybridnb.store import ledger

    return float(ledger.read(home)["cost_usd"].sum())


def budget_case(srv: FaultyServer) -> dict:
    from hybridnb.core import pricing

    srv.reset()
    srv.script(default={"long": 16384})  # 64x the 256-token estimate, capped by max_tokens=16384
    with tempfile.TemporaryDirectory() as home:
        p = pricing.token_prices("gpt-4o-mini")
        est = 35 * (pricing.estimate_tokens("question 0 x", "gpt-4o-mini") * p.input + 256 * p.output) / 1e6
        budget = round(est * 1.05, 6)
        env = {"HYBRIDNB_BUDGET_USD": str(budget), "HYBRIDNB_BUDGET_PER": "day",
               "HYBRIDNB_REASON_MAX_TOKENS": "16384"}
        first = run_batch(srv, home, 35, 32, "x", **env)
        spent = ledger_cost(home)
        sent_first = srv.received
        # the old scenario: a ledger already holding spend, a new process with the same home and budget
        srv.reset()
        srv.script(default={"long": 16384})
        big = str(ledger_cost(home) * 0.5 if spent else budget / 2)
        second = run_batch(srv, home, 35, 32, "y", **{**env, "HYBRIDNB_BUDGET_USD": big})
        out = {"budget": budget, "estimate": est, "spent": spent, "sent": sent_first, "ok": first["ok"],
               "second_refused": second["refused"] or second["ok"] == 0, "second_sent": srv.received}
    # a budget that lets some calls through: 5 worst cases (16,384 output tokens each)
    srv.reset()
    srv.script(default={"long": 16384})
    with tempfile.TemporaryDirectory() as home:
        worst = (pricing.estimate_tokens("question 0 z", "gpt-4o-mini", worst=True) * p.input
                 + 16384 * p.output) / 1e6
        budget2 = round(worst * 5, 6)
        env = {"HYBRIDNB_BUDGET_USD": str(budget2), "HYBRIDNB_REASON_MAX_TOKENS": "16384"}
        r = run_batch(srv, home, 35, 32, "z", **{**env, "HYBRIDNB_BUDGET_PER": "day"})
        out.update(budget2=budget2, spent2=ledger_cost(home), sent2=srv.received, ok2=r["ok"])
    return out


def kill9_case(srv: FaultyServer, n: int = 160) -> dict:
    from hybridnb.store import ledger
    from hybridnb.store.cache import Cache

    srv.reset()
    srv.script(delay_s=0.2)
    with tempfile.TemporaryDirectory() as home:
        p = subprocess.Popen([sys.executable, "-c", BATCH, str(n), "16", "k"], env=env_for(srv, home),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        while srv.received < n // 2:
            time.sleep(0.01)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        received = srv.received
        df = ledger.read(home)
        calls = df.filter(df["kind"] == "call")
        ok = calls.filter(calls["status"] == "ok").height
        unsettled = calls.filter(calls["status"] == "unsettled").height
        answered = len(Cache(home))
        srv.reset()
        run_batch(srv, home, n, 16, "k")
        return {"received": received, "ledger_rows": calls.height, "ok": ok, "unsettled": unsettled,
                "missing": max(0, received - calls.height), "answered": answered, "rerun_sent": srv.received,
                "rerun_expected": n - answered}


def twins_case(srv: FaultyServer, n: int) -> dict:
    srv.reset()
    srv.script(delay_s=0.02)
    with tempfile.TemporaryDirectory() as home:
        procs = [subprocess.Popen([sys.executable, "-c", BATCH, str(n), "16", "t"], env=env_for(srv, home),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        for p in procs:
            p.wait(timeout=600)
        return {"prompts": n, "requests": srv.received}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--prompts", type=int, default=200)
    args = ap.parse_args()
    base = append_rate(args.records, write_ahead=False)
    wal = append_rate(args.records, write_ahead=True)
    print(f"ledger append, one record a call:      {base:,.0f} records/s (median of 5)")
    print(f"ledger append, write-ahead + final row: {wal:,.0f} records/s = {wal / 2:,.0f} calls/s "
          f"(ratio {wal / base:.2f} records/s vs baseline)")
    srv = FaultyServer().start()
    try:
        b = budget_case(srv)
        print(f"budget: answers 64x the estimate, concurrency 32: budget ${b['budget']:.6f}, spent ${b['spent']:.6f} "
              f"({b['spent'] / b['budget']:.0%}), {b['sent']} requests, {b['ok']} rows answered")
        print(f"budget of 5 worst cases, same batch: budget ${b['budget2']:.6f}, spent ${b['spent2']:.6f} "
              f"({b['spent2'] / b['budget2']:.0%}), {b['sent2']} requests, {b['ok2']} rows answered")
        print(f"budget: new process, same home, --per day: refused={b['second_refused']}, "
              f"{b['second_sent']} requests sent")
        k = kill9_case(srv)
        print(f"kill -9 at concurrency 16: server received {k['received']}, ledger rows {k['ledger_rows']} "
              f"({k['ok']} ok, {k['unsettled']} unsettled), paid calls missing {k['missing']}; rerun sent "
              f"{k['rerun_sent']} (rows without an answer: {k['rerun_expected']})")
        t = twins_case(srv, args.prompts)
        print(f"two processes x the same {t['prompts']} prompts, cold cache: {t['requests']} requests")
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
