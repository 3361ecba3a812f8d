"""Validate on a held-out sample, then move the bulk labelling to local compute.

Bulk labellers: ``distilled`` (default) — a linear classifier trained on the stable labels, CPU,
ledgered as compute time; ``local-llm`` — ``hybridnb.map(..., route="local", choices=taxonomy)``
(a vLLM server/engine on a GPU, or the embedded model for a small n on CPU), ledgered by the
dispatcher as local calls priced by compute time.
"""

from __future__ import annotations

import time

import numpy as np
import polars as pl

from .. import get_dispatcher, get_settings
from . import _labels, _store
from ._secondary import secondary_from_words
from ._reasoning import ask
from ._stages import answered, evidence, label_asks

LLM_TEMPLATE = ("Segment: {text}\nWhich category is this segment mainly about? Answer with one of the "
                "categories, or off-topic.")


def stage_validate(wf) -> int:
    """The reasoning route labels a held-out sample (primary + secondary); the stand-in answers offline."""
    idx = wf.sample_index("validate")
    v2 = wf.taxonomy(2)
    prim, sec = evidence(wf, idx, v2)
    asks = label_asks(wf, idx, wf.texts(), v2.names, prim, sec)
    answers = ask(wf.con, "validate", asks, wf.opts.trust)
    pairs = [answered(answers[a.key].value) for a in asks]
    frame = pl.DataFrame({
        "segment_id": [wf.segment_id(i) for i in idx], "round": pl.Series([None] * len(idx), dtype=pl.Int32),
        "taxonomy_version": [2] * len(idx), "label": pl.Series([p or None for p, _ in pairs], dtype=pl.String),
        "secondary": pl.Series([s or None for _, s in pairs], dtype=pl.String),
        "source": [answers[a.key].decided_by for a in asks], "split": ["validate"] * len(idx),
        "confidence": pl.Series([None] * len(idx), dtype=pl.Float64)})
    _store.write_frame(wf.con, "labels", frame, replace_where="split = 'validate'")
    return len(idx)


def stage_distil(wf) -> int:
    """Label every segment with the chosen bulk labeller; write ``final_labels``."""
    if wf.opts.labeller == "local-llm":
        frame, seconds, model_id = _llm_labels(wf)
    else:
        frame, seconds, model_id = _distilled(wf)
        _ledger_compute(wf, seconds, frame.height, model_id)
    _store.write_frame(wf.con, "final_labels", frame, replace_where="true")
    _store.set_result(wf.con, "local_label_seconds", seconds, rows=frame.height, labeller=wf.opts.labeller,
                      model=model_id)
    return frame.height


def _distilled(wf):
    """Primary from the distilled classifier; secondary from the segment's own words (:mod:`._secondary`)."""
    idx = wf.sample_index("train")
    texts = wf.texts()
    y, _ = wf.final_train_labels()
    t0 = time.perf_counter()
    model = _labels.LocalLabeller(wf.opts.seed).fit([texts[i] for i in idx], wf.embeddings(idx), y)
    _store.set_result(wf.con, "local_fit_seconds", time.perf_counter() - t0)
    parts, step = [], 50_000
    bar = wf.bar("bulk label", len(texts))
    emb = wf.embeddings()
    for s in range(0, len(texts), step):
        parts.append(model.predict(texts[s:s + step], None if emb is None else emb[s:s + step]))
        if bar:
            bar(min(s + step, len(texts)), len(texts))
    prim, conf, proba = (np.concatenate([p[k] for p in parts]) for k in range(3))
    subject = _labels.subject_primary(prim, *wf.topic_weights(), wf.taxonomy(2).topic_map())
    moved = np.flatnonzero(subject != prim)  # confidence = the classifier's probability of the label given
    conf[moved] = model.probability_of(proba[moved], subject[moved])
    prim = subject
    return _frame(wf, prim, conf), time.perf_counter() - t0, model.model_id


def _frame(wf, prim, conf) -> pl.DataFrame:
    sec, conf2 = secondary_from_words(wf.texts(), prim)
    frame = pl.DataFrame({
        "segment_id": wf.segments()["segment_id"].to_numpy(),
        "primary_label": pl.Series(list(prim), dtype=pl.String),
        "secondary_label": pl.Series(sec, dtype=pl.String),
        "confidence": pl.Series(np.asarray(conf, dtype=float)), "secondary_confidence": conf2})
    return frame.with_columns(pl.col("secondary_confidence").fill_nan(None))


def _llm_labels(wf):
    """Bulk labels through ``hybridnb.map`` on the local route, constrained to the taxonomy."""
    import hybridnb

    names = wf.taxonomy(2).names
    segs = wf.segments().select("segment_id", "text")
    t0 = time.perf_counter()
    out = hybridnb.map(segs, LLM_TEMPLATE, route="local", choices=names + ["off-topic"], progress=wf.progress,
                       system="Categories: " + "; ".join(names))
    prim = np.array([a if a in names else None for a in out["answer"].to_list()], dtype=object)
    frame = _frame(wf, prim, np.full(len(prim), np.nan)).with_columns(pl.col("confidence").fill_nan(None))
    target = get_dispatcher().resolve("local")
    return frame, time.perf_counter() - t0, target.model


def _ledger_compute(wf, seconds: float, rows: int, model_id: str) -> None:
    """The bulk labelling lands in the ledger as local compute time (CPU rate, no GPU)."""
    rs = get_settings().route("local")
    get_dispatcher().record_compute(
        "local", "sklearn-cpu", model_id, seconds, rows, rate_usd_per_hour=rs.cpu_hour_usd, gpus=0.0,
        tags={"batch": f"corpus:{wf.run_id}:distil", "notebook": "corpus"})
