"""The corpus workflow: your corpus (or the bundled generator) → DuckDB → topics discovered from the
texts → taxonomy on the reasoning route → stable primary/secondary labels → local labeller →
ranking, quality and cost report.

``hybridnb.corpus.run(data="tickets.parquet", text="body")`` runs it end to end and resumes from the DB;
``hybridnb.corpus.run()`` generates the bundled 230K-segment corpus first.
"""

from __future__ import annotations

from ._generate import NOISE_LABEL, generate  # the bundled generator: one source among others
from ._spec import Category, Spec, default_spec, load_spec
from ._embed import available_embedders, embed, load_embedder
from ._output import charts
from ._report import costs, ranking, reasoning_summary, secondary_ranking
from ._store import SCHEMA_VERSION, open_store
from ._taxonomy import TOPIC_SCHEMA, Taxonomy, diff
from ._topics import Topics, fit_topics
from ._workflow import STAGES, Options, Result, Workflow, run

__all__ = sorted([
    "Category", "NOISE_LABEL", "Options", "Result", "Spec", "default_spec", "generate", "load_spec", "SCHEMA_VERSION", "STAGES", "TOPIC_SCHEMA", "Taxonomy", "Topics", "Workflow", "available_embedders",
    "charts", "costs", "diff", "embed", "fit_topics", "load_embedder", "open_store", "ranking",
    "reasoning_summary", "run", "secondary_ranking",
])
