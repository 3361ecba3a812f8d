"""The workflow's analysis stages; each writes its outputs to the DuckDB file and can be skipped on resume.

The analysis reads only the ``segments`` table (texts and optional metadata) and its own tables.
"""

from __future__ import annotations

import time

import numpy as np
import polars as pl

from ..errors import CorpusError
from . import _labels, _store
from ._embed import embed
from ._iterate import taxonomy_v2
from ._reasoning import Ask, ask
from ._taxonomy import taxonomy_v1
from ._topics import fit_topics

NO_EMBEDDER = "none"


def stage_load(wf) -> int:
    from . import _sources

    summary = _sources.load(wf.con, **wf.source)
    wf._cache.clear()
    return summary.n_rows


def stage_embed(wf) -> int:
    if wf.opts.embedder == NO_EMBEDDER:
        return 0
    texts = wf.texts()
    t0 = time.perf_counter()
    model_id, vecs = embed(texts, wf.opts.embedder, progress=wf.bar("embed", len(texts)))
    _store.write_vectors(wf.con, wf.segments()["segment_id"].to_numpy(), vecs)
    wf.con.execute("DELETE FROM embeddings")
    wf.con.execute("INSERT INTO embeddings VALUES (?, ?, ?, ?, now(), 'embedding_vectors')",
                   [model_id, vecs.shape[1], len(texts), time.perf_counter() - t0])
    return len(texts)


def stage_topics(wf) -> int:
    texts = wf.texts()
    topics = fit_topics(texts, wf.opts.seed, progress=wf.bar("topics", len(texts)))
    ids = wf.segments()["segment_id"].to_numpy()
    a = topics.assignments
    _store.write_frame(wf.con, "topic_assignments", a.select(
        pl.Series("segment_id", ids[a["row"].to_numpy()]), "topic_id", "weight", "top_topics", "top_weights"),
        replace_where="true")
    table = topics.table.with_columns(
        pl.col("keywords").list.join(" "),
        pl.col("representative_ids").map_elements(lambda r: str([int(ids[i]) for i in r]), return_dtype=pl.String))
    _store.write_frame(wf.con, "topics", table, replace_where="true")
    _store.set_result(wf.con, "vocabulary.topical", len(topics.vocabulary.topical),
                      common=topics.vocabulary.common[:40])
    return topics.table.height


def stage_taxonomy(wf) -> int:
    table = wf.topics()
    texts, assign = wf.texts(), wf.assignments()["topic_id"].to_numpy()
    rows = table.with_columns(pl.col("representative_ids").map_elements(
        lambda r: [wf.row_of(s) for s in r], return_dtype=pl.List(pl.Int64)))
    from ._topics import ctfidf

    vocab = sorted({w for kw in table["keywords"] for w in kw})
    centroids = ctfidf([" ".join(texts[i] for i in np.flatnonzero(assign == t)[:400]) for t in table["topic_id"]], vocab)
    v1, proposals = taxonomy_v1(wf.con, rows, texts, centroids, wf.opts.trust, wf.codebook)
    by = dict(wf.con.execute("SELECT key, decided_by FROM reason_calls WHERE step = 'name_topics'").fetchall())
    named = table.with_columns(
        pl.col("keywords").list.join(" "),
        pl.col("representative_ids").cast(pl.List(pl.String)).list.join(",").map_elements(
            lambda s: f"[{s}]", return_dtype=pl.String),
        pl.Series("name", [proposals[t]["name"] for t in table["topic_id"]]),
        pl.Series("description", [proposals[t]["description"] for t in table["topic_id"]]),
        pl.Series("relevance", [proposals[t]["relevance"] for t in table["topic_id"]]),
        pl.Series("name_source", [by.get(f"topic:{t}", "evidence") for t in table["topic_id"]]))
    _store.write_frame(wf.con, "topics", named, replace_where="true")
    wf.save_taxonomy(v1)
    return len(v1.names)


def stage_sample(wf) -> int:
    """Stratified (by topic) fine-tuning sample and a held-out validation sample."""
    rng = np.random.default_rng(wf.opts.seed + 1)
    n = len(wf.texts())
    size = wf.opts.sample_size or int(min(8000, max(3000, 0.04 * n), n // 2))
    assign = wf.assignments()["topic_id"].to_numpy()
    take = []
    for t in np.unique(assign):
        members = np.flatnonzero(assign == t)
        k = max(min(10, len(members)), int(round(size * len(members) / n)))
        take.append(rng.choice(members, min(k, len(members)), replace=False))
    train = np.unique(np.concatenate(take))
    rest = np.setdiff1d(np.arange(n), train)
    hold = rng.choice(rest, min(wf.opts.validate_size, len(rest)), replace=False)
    ids = wf.segments()["segment_id"].to_numpy()
    frame = pl.DataFrame({"segment_id": np.concatenate([ids[train], ids[hold]]),
                          "split": ["train"] * len(train) + ["validate"] * len(hold)})
    wf.con.execute("DROP TABLE IF EXISTS sample")
    wf.con.register("_s", frame.to_arrow())
    wf.con.execute("CREATE TABLE sample AS SELECT * FROM _s")
    wf.con.unregister("_s")
    return len(train)


def evidence(wf, idx: np.ndarray, tax) -> tuple[np.ndarray, np.ndarray]:
    return _labels.evidence_labels(*wf.topic_weights(idx), tax.topic_map())


def label_asks(wf, idx, texts, names: list[str], prim, sec) -> list[Ask]:
    """Primary + optional secondary per segment (JSON schema); the stand-in answers with ``prim``/``sec``."""
    opts = names + ["off-topic"]
    schema = {"type": "object", "required": ["primary", "secondary"], "properties": {
        "primary": {"type": "string", "enum": opts}, "secondary": {"type": "string", "enum": names + ["none"]}}}
    asks = []
    for i, p, s in zip(idx, prim, sec):
        prompt = (f"Segment: \"{texts[i]}\"\nCategories: {'; '.join(names)}.\nWhich category is the segment's main "
                  f"subject (primary; off-topic if none), and which other category does it also mention, if any "
                  f"(secondary; none if none)? A category mentioned only in passing is secondary, not primary.")
        asks.append(Ask(f"seg:{wf.segment_id(i)}", prompt, {"primary": p or "off-topic", "secondary": s or "none"},
                        schema, max_tokens=60))
    return asks


def answered(value: dict) -> tuple[str, str]:
    p, s = value.get("primary", "off-topic"), value.get("secondary", "none")
    p = _labels.OFF if p == "off-topic" else p
    s = _labels.OFF if s in ("none", p) or p == _labels.OFF else s
    return p, s


def stage_rounds(wf) -> int:
    """Label rounds on the fine-tuning sample until successive rounds agree above the threshold.

    A round's labels are the evidence (topic weights summed per category of the current taxonomy)
    with the reasoning route's reviews applied; a classifier that did not see the row finds the
    least-sure rows to review and, after round 1, the disagreements that turn taxonomy v1 into v2.
    """
    idx = wf.sample_index("train")
    sample = [wf.texts()[i] for i in idx]
    X = _labels.Featurizer().fit(sample).transform(sample, wf.embeddings(idx))
    v1 = wf.taxonomy(1)
    ev, ev2 = evidence(wf, idx, v1)
    if len(set(ev) - {_labels.OFF}) < 2:
        raise CorpusError("the topics gave fewer than 2 on-topic categories: the corpus is too small or uniform")
    wf.con.execute("DELETE FROM labels WHERE split = 'train'")
    wf.con.execute("DELETE FROM results WHERE name LIKE 'agreement_round_%'")
    res = _labels.cross_fit(X, ev, seed=wf.opts.seed)
    labels, sec, fixed = _review(wf, 1, v1.names, idx, res, ev, ev2, {})
    wf.save_labels(idx, 1, 1, labels, sec, res, fixed)
    named_by = wf.con.execute("SELECT any_value(decided_by) FROM reason_calls WHERE step = 'consolidate'").fetchall()[0][0]
    vocab = sorted({w for v in v1.categories.values() for w in v["keywords"]} | set(wf.topical_words()))
    v2, mapping = taxonomy_v2(wf.con, v1, labels, res.labels, sample, vocab, wf.opts.trust, named_by or "stand-in")
    wf.save_taxonomy(v2)
    prev = np.array([mapping.get(x, x) if x else x for x in labels], dtype=object).astype(str)
    fixed = {i: (mapping.get(p, p) if p else p, mapping.get(q, q) if q else q) for i, (p, q) in fixed.items()}
    ev, ev2 = evidence(wf, idx, v2)
    agree, rounds = 0.0, 1
    for r in range(2, wf.opts.max_rounds + 1):
        res = _labels.cross_fit(X, prev, seed=wf.opts.seed + r)
        labels, sec, fixed = _review(wf, r, v2.names, idx, res, ev, ev2, fixed)
        wf.save_labels(idx, r, 2, labels, sec, res, fixed)
        agree, rounds = _labels.agreement(labels, prev), r
        _store.set_result(wf.con, f"agreement_round_{r}", agree, versus=f"round {r - 1}")
        prev = labels
        if agree >= wf.opts.stability:
            break
    _store.set_result(wf.con, "label_rounds", rounds, stability_threshold=wf.opts.stability,
                      stable=bool(agree >= wf.opts.stability))
    return len(idx)


def _review(wf, r: int, names, idx, res, prim, sec, fixed: dict):
    """The reasoning route reviews the least-sure rows of a round (primary + secondary); answers stick.
    Returns the round's labels: ``prim``/``sec`` with every review so far applied."""
    labels = np.asarray(prim, dtype=object).copy()
    exclude = np.zeros(len(idx), bool)
    exclude[list(fixed)] = True
    pick = _labels.least_sure(res.proba, exclude, wf.opts.review_per_round)
    asks = label_asks(wf, idx[pick], wf.texts(), names, prim[pick], sec[pick])
    answers = ask(wf.con, f"review_round_{r}", asks, wf.opts.trust)
    for i, a in zip(pick, asks):
        fixed[int(i)] = answered(answers[a.key].value)
    out_sec = np.asarray(sec, dtype=object).copy()
    valid = set(names) | {_labels.OFF}
    for i, (p, s) in fixed.items():
        if p in valid:
            labels[i], out_sec[i] = p, s if s in valid else _labels.OFF
    return labels.astype(str), out_sec.astype(str), fixed
