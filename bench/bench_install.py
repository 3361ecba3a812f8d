"""The light core: install size of `pip install hybridnb` (no extras) and the time of `import hybridnb`
and `%load_ext hybridnb` in a fresh interpreter, against the full development venv.

    python bench/bench_install.py [--venv /tmp/light]   # creates the venv when it does not exist
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = ("import time; t0 = time.perf_counter(); import hybridnb; t1 = time.perf_counter(); "
         "from IPython.core.interactiveshell import InteractiveShell; ip = InteractiveShell.instance(); "
         "t2 = time.perf_counter(); ip.run_line_magic('load_ext', 'hybridnb'); t3 = time.perf_counter(); "
         "print(t1 - t0, t3 - t2)")


def site_size_mb(python: Path) -> float:
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    total = sum(f.stat().st_size for f in Path(site).rglob("*") if f.is_file() and not f.is_symlink())
    return total / 1e6


def timings(python: Path, runs: int = 7) -> tuple[float, float]:
    imp, load = [], []
    for _ in range(runs):
        out = subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True, check=True,
                             env={**os.environ, "HYBRIDNB_HOME": "/tmp/bench-install-home"})
        a, b = map(float, out.stdout.split())
        imp.append(a)
        load.append(b)
    return statistics.median(imp), statistics.median(load)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--venv", default="/tmp/hybridnb-light-venv")
    args = ap.parse_args()
    venv = Path(args.venv)
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(ROOT)], check=True,
                       env={**os.environ, "SKIP_JUPYTER_BUILDER": "1"})
    for name, py in (("core (no extras)", venv / "bin" / "python"), ("dev venv ([all,dev])", Path(sys.executable))):
        size = site_size_mb(py)
        imp, load = timings(py)
        print(f"{name:22s} site-packages {size:7.0f} MB   import hybridnb {imp * 1000:6.1f} ms   "
              f"%load_ext hybridnb {load * 1000:6.1f} ms  (medians of 7 fresh interpreters)")


if __name__ == "__main__":
    main()
