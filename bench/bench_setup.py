"""The embedded model's load as set-up: what the first %%local call was billed before and is billed now.

    nice -n 10 python bench/bench_setup.py [--runs 3]

Each run is a fresh process (a fresh kernel's first call: the model loads from the decoded-weights cache) that
sends two `--choices` calls through the dispatcher.  It prints medians of the set-up seconds (the "setup" ledger
row), the first and second calls' held (billed) seconds, and the ratio of what the first call would have been
billed with the load inside it (set-up + held) to what it is billed now.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ONE_RUN = """
import json, hybridnb
a = hybridnb.local("Is the sky blue? Answer yes or no.", choices=["yes", "no"])
b = hybridnb.local("Is grass red? Answer yes or no.", choices=["yes", "no"])
led = hybridnb.ledger()
setup = led.filter(led["kind"] == "setup")
print(json.dumps({"setup_s": a.setup_s, "setup_rows": setup.height, "first_held_s": a.held_s,
                  "second_held_s": b.held_s, "first_usd": a.cost_usd, "setup_usd": a.setup_usd}))
"""


def one_run() -> dict:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HYBRIDNB_HOME": home, "HF_HUB_OFFLINE": "1",
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        env = {k: v for k, v in env.items() if not k.startswith(("HYBRIDNB_LOCAL", "HYBRIDNB_REASON"))}
        out = subprocess.run([sys.executable, "-c", ONE_RUN], env=env, capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    runs = [one_run() for _ in range(ap.parse_args().runs)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"runs: {len(runs)} fresh processes; one setup row each: {all(r['setup_rows'] == 1 for r in runs)}")
    print(f"set-up (model load)        median {med['setup_s']:.2f} s  ${med['setup_usd']:.6f}")
    print(f"first call held (billed)   median {med['first_held_s']:.2f} s  ${med['first_usd']:.6f}")
    print(f"second call held           median {med['second_held_s']:.2f} s")
    before = [(r["setup_s"] + r["first_held_s"]) / r["first_held_s"] for r in runs]
    print(f"first call billed before / now (load inside it vs set-up row): median x{statistics.median(before):.1f}")


if __name__ == "__main__":
    main()
