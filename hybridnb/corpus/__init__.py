"""The corpus workflow: your corpus (or the bundled generator) → DuckDB → topics discovered from the
texts → taxonomy on the reasoning route → stable primary/secondary labels → local labeller →
ranking, quality and cost report.

``hybridnb.corpus.run(data="tickets.parquet", text="body")`` runs it end to end and resumes from the DB;
``hybridnb.corpus.run()`` generates the bundled 230K-segment corpus first.

Names load lazily (PEP 562): importing ``hybridnb.corpus`` or one of its submodules costs nothing
until a name is used.
"""

from __future__ import annotations

import importlib

_NAMES = {
    "NOISE_LABEL": "_generate", "generate": "_generate",  # the bundled generator: one source among others
    "Category": "_spec", "Spec": "_spec", "default_spec": "_spec", "load_spec": "_spec",
    "available_embedders": "_embed", "embed": "_embed", "load_embedder": "_embed",
    "charts": "_output", "costs": "_report", "ranking": "_report", "reasoning_summary": "_report",
    "secondary_ranking": "_report", "SCHEMA_VERSION": "_store", "open_store": "_store",
    "TOPIC_SCHEMA": "_taxonomy", "Taxonomy": "_taxonomy", "diff": "_taxonomy", "Topics": "_topics",
    "fit_topics": "_topics", "Result": "_result", "STAGES": "_workflow", "Options": "_workflow",
    "Workflow": "_workflow", "run": "_workflow",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
