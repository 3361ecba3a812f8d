"""Validate categories on a held-out sample, then move the bulk labelling to local compute."""

from __future__ import annotations

import time

import numpy as np
import polars as pl

from ..config import get_settings
from ..core.dispatcher import get_dispatcher
from . import _labels
from . import _store
from ._reasoning import Decision, decide


def stage_validate(wf) -> int:
    """The reasoning route labels a held-out sample; evidence is the v2 keywords (not the labeller)."""
    idx = wf.sample_index("holdout")
    texts = [wf.texts()[i] for i in idx]
    v2 = wf.taxonomy(2)
    names, score = _labels.keyword_scores(texts, {k: v["keywords"] for k, v in v2.categories.items()})
    prior = wf.final_train_shares()
    decisions = []
    for i, t in enumerate(texts):
        # ties (e.g. no keyword at all) are broken by how common a category is
        order = sorted(range(len(names)), key=lambda j: (-score[i, j], -prior.get(names[j], 0)))
        ranked = [names[j] for j in order[:5]]
        prompt = (f"Transcript segment: \"{t}\"\nWhich CTO priority is this segment mainly about? "
                  f"Options, most likely first: {'; '.join(ranked)}.")
        decisions.append(Decision(f"seg:{wf.segment_id(idx[i])}", prompt, ranked, ranked[0]))
    answers = decide(wf.con, "validate", decisions, wf.opts.trust, template="validate")
    labels = np.array([answers[d.key] for d in decisions])
    by = dict(_store.frame(wf.con, "SELECT key, decided_by FROM reason_calls WHERE step = 'validate'")
              .iter_rows())
    frame = pl.DataFrame({
        "segment_id": [wf.segment_id(i) for i in idx], "round": [None] * len(idx),
        "taxonomy_version": [2] * len(idx), "label": labels.tolist(), "secondary": [None] * len(idx),
        "source": [by.get(d.key, "evidence") for d in decisions], "split": ["holdout"] * len(idx),
        "confidence": [None] * len(idx)},
        schema_overrides={"round": pl.Int32, "secondary": pl.String, "confidence": pl.Float64})
    _store.write_frame(wf.con, "labels", frame, replace_where="split = 'holdout'")
    return len(idx)


def stage_distil(wf) -> int:
    """Train the local labeller on the stable fine-tuning labels and label every segment."""
    idx = wf.sample_index("train")
    texts, emb = wf.texts(), wf.embeddings()
    y = wf.final_train_labels()
    t0 = time.perf_counter()
    model = _labels.LocalLabeller(wf.opts.seed).fit([texts[i] for i in idx], emb[idx], y)
    t_fit = time.perf_counter() - t0
    prim, sec, conf = [], [], []
    step = 50_000
    bar = wf.bar("bulk label", len(texts))
    for s in range(0, len(texts), step):
        p, q, c = model.predict(texts[s:s + step], emb[s:s + step])
        prim.append(p), sec.append(q), conf.append(c)
        if bar:
            bar(min(s + step, len(texts)), len(texts))
    seconds = time.perf_counter() - t0
    ids = wf.segments()["segment_id"].to_numpy()
    frame = pl.DataFrame({
        "segment_id": ids, "round": pl.Series([None] * len(ids), dtype=pl.Int32),
        "taxonomy_version": np.full(len(ids), 2, dtype=np.int32),
        "label": np.concatenate(prim).astype(str), "secondary": pl.Series(np.concatenate(sec).tolist(), dtype=pl.String),
        "source": "local", "split": "all", "confidence": np.concatenate(conf)})
    _store.write_frame(wf.con, "labels", frame, replace_where="source = 'local'")
    _ledger_compute(wf, seconds, len(ids), model.model_id)
    _store.set_result(wf.con, "local_fit_seconds", t_fit)
    _store.set_result(wf.con, "local_label_seconds", seconds - t_fit, rows=len(ids))
    return len(ids)


def _ledger_compute(wf, seconds: float, rows: int, model_id: str) -> None:
    """The bulk labelling lands in the ledger as local compute time (CPU rate, no GPU)."""
    rs = get_settings().route("local")
    get_dispatcher().record_compute(
        "local", "sklearn-cpu", model_id, seconds, rows, rate_usd_per_hour=rs.cpu_hour_usd, gpus=0.0,
        tags={"batch": f"corpus:{wf.run_id}:distil", "notebook": "corpus"})
