"""Run the reference notebooks headless and save them with their outputs, so they read on GitHub.

    .venv/bin/python scripts/refresh_notebooks.py [notebooks/quick_tour.ipynb ...]

Each notebook runs in a real kernel (nbclient) with the offline defaults — no API key, a fresh
HYBRIDNB_HOME in a temporary folder — so the saved outputs carry no secrets and no local paths.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRIDNB_") and k != "OPENAI_API_KEY"}
    env["HYBRIDNB_HOME"] = str(home)
    # the kernel imports this checkout's hybridnb (a worktree), not whatever the venv was installed from
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return env


def scrub(nb, tmp: str) -> None:
    """Write the temporary folder in outputs as `<tmp>`, so saved notebooks carry no local paths."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = out["text"].replace(tmp, "<tmp>")
            for mime, value in list(out.get("data", {}).items()):
                if isinstance(value, str):
                    out["data"][mime] = value.replace(tmp, "<tmp>")


def refresh(path: Path, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="hnb-refresh-") as tmp:
        saved = os.environ.copy()
        os.environ.clear()
        os.environ.update(clean_env(Path(tmp) / "home"))
        try:
            t0 = time.perf_counter()
            NotebookClient(nb, timeout=timeout, kernel_name="python3",
                           resources={"metadata": {"path": tmp}}).execute()
            seconds = time.perf_counter() - t0
        finally:
            os.environ.clear()
            os.environ.update(saved)
        scrub(nb, tmp)
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    return seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--timeout", type=int, default=1200, help="seconds per cell (default 1200)")
    args = ap.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in paths:
        print(f"running {path.name} …", flush=True)
        seconds = refresh(path, args.timeout)
        print(f"  saved with outputs ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
