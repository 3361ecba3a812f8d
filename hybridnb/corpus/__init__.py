"""The bundled corpus workflow: generate → DuckDB → embed → topics → taxonomy (reasoning route)
→ stable labels → local labeller → ranking, quality and cost report.

``hybridnb.corpus.run(n=230_000, db="corpus.duckdb")`` runs it end to end and resumes from the DB.
"""

from __future__ import annotations

from ._embed import available_embedders, embed, load_embedder
from ._generate import NOISE_LABEL, generate
from ._output import charts
from ._report import costs, quality, ranking, reasoning_summary, secondary_ranking, true_ranking
from ._spec import Category, Spec, default_spec, load_spec
from ._store import SCHEMA_VERSION, open_store
from ._taxonomy import Taxonomy, codebook, diff
from ._topics import Topics, fit_topics
from ._workflow import STAGES, Options, Result, Workflow, run

__all__ = sorted([
    "Category", "NOISE_LABEL", "Options", "Result", "SCHEMA_VERSION", "STAGES", "Spec", "Taxonomy",
    "Topics", "Workflow", "available_embedders", "charts", "codebook", "costs", "default_spec", "diff", "embed",
    "fit_topics", "generate", "load_embedder", "load_spec", "open_store", "quality", "ranking",
    "reasoning_summary", "run", "secondary_ranking", "true_ranking",
])
