"""The workflow's stages; each writes its outputs to the DuckDB file and can be skipped on resume."""

from __future__ import annotations

import time

import numpy as np
import polars as pl

from ..errors import CorpusError
from . import _labels
from . import _store
from . import _taxonomy
from ._embed import embed, load_embedder
from ._generate import generate
from ._iterate import taxonomy_v2
from ._reasoning import Decision, decide
from ._topics import fit_topics


def stage_generate(wf) -> int:
    df = generate(wf.opts.n, wf.opts.seed, wf.opts.shares)
    _store.write_frame(wf.con, "segments", df, replace_where="true")
    return df.height


def stage_embed(wf) -> int:
    texts = wf.texts()
    if not texts:
        raise CorpusError("the corpus is empty: nothing to embed")
    t0 = time.perf_counter()
    model_id, vecs = embed(texts, wf.opts.embedder, progress=wf.bar("embed", len(texts)))
    _store.write_vectors(wf.con, wf.segments()["segment_id"].to_numpy(), vecs)
    wf.con.execute("DELETE FROM embeddings")
    wf.con.execute("INSERT INTO embeddings VALUES (?, ?, ?, ?, now(), 'embedding_vectors')",
                   [model_id, vecs.shape[1], len(texts), time.perf_counter() - t0])
    return len(texts)


def stage_topics(wf) -> int:
    texts, emb = wf.texts(), wf.embeddings()
    k = min(wf.opts.n_topics, max(5, len(texts) // 100))
    topics = fit_topics(texts, emb, wf.opts.topic_method, k, wf.opts.seed)
    ids = wf.segments()["segment_id"].to_numpy()
    _store.write_frame(wf.con, "topic_assignments",
                       pl.DataFrame({"segment_id": ids, "topic_id": topics.assignments.astype(np.int32)}),
                       replace_where="true")
    table = topics.table.with_columns(
        pl.col("keywords").list.join(" "),
        _json_ids(),
        pl.lit(None, pl.String).alias("name"), pl.lit(None, pl.String).alias("name_source"))
    _store.write_frame(wf.con, "topics", table, replace_where="true")
    return topics.table.height


def _json_ids() -> pl.Expr:
    ids = pl.col("representative_ids").cast(pl.List(pl.String)).list.join(",")
    return pl.format("[{}]", ids).alias("representative_ids")


def stage_taxonomy_v1(wf) -> int:
    topics = wf.topics()
    book = _taxonomy.codebook(wf.spec)
    _, encode = load_embedder(wf.opts.embedder)
    book_vecs = encode([f"{name}: {' '.join(words)}" for name, words in book.items()])
    assign, emb = wf.assignments(), wf.embeddings()
    centroids = np.stack([emb[assign == t].mean(0) for t in topics["topic_id"]])
    named = _taxonomy.name_topics(wf.con, topics, wf.texts(), book, book_vecs, centroids, wf.opts.trust)
    calls = _store.frame(wf.con, "SELECT key, decided_by FROM reason_calls WHERE step = 'name_topics'")
    src = dict(zip(calls["key"], calls["decided_by"]))
    wf.con.execute("DELETE FROM topics")
    _store.write_frame(wf.con, "topics", named.with_columns(
        pl.col("keywords").list.join(" "),
        _json_ids(),
        pl.Series("name_source", [src.get(f"topic:{t}", "evidence") for t in named["topic_id"]])))
    v1 = _taxonomy.taxonomy_v1(named)
    wf.save_taxonomy(v1)
    return len(v1.names)


def stage_sample(wf) -> int:
    """Stratified (by topic) fine-tuning sample and a held-out validation sample."""
    rng = np.random.default_rng(wf.opts.seed + 1)
    n = len(wf.texts())
    size = wf.opts.sample_size or int(min(6000, max(1500, 0.025 * n), n // 2))
    assign = wf.assignments()
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
                          "split": ["train"] * len(train) + ["holdout"] * len(hold)})
    wf.con.execute("DROP TABLE IF EXISTS sample")
    wf.con.register("_s", frame.to_arrow())
    wf.con.execute("CREATE TABLE sample AS SELECT * FROM _s")
    wf.con.unregister("_s")
    return len(train)


def stage_rounds(wf) -> int:
    """Label rounds until successive rounds agree above the threshold (taxonomy v1 → v2)."""
    idx = wf.sample_index("train")
    texts = [wf.texts()[i] for i in idx]
    emb = wf.embeddings()[idx]
    X = _labels.Featurizer().fit(texts).transform(texts, emb)
    v1 = wf.taxonomy(1)
    wf.con.execute("DELETE FROM labels WHERE split = 'train'")
    wf.con.execute("DELETE FROM results WHERE name LIKE 'agreement_round_%'")
    seeds = np.array(_labels.keyword_seeds(texts, {k: v["keywords"] for k, v in v1.categories.items()}),
                     dtype=object)
    if len(set(seeds[seeds != None])) < 2:  # noqa: E711
        raise CorpusError("keyword evidence found fewer than 2 categories: the corpus is too small or uniform")
    fixed: dict[int, str] = {}
    res = _labels.cross_fit(X, np.where(seeds == None, "", seeds).astype(str), seeds != None)  # noqa: E711
    labels = _review(wf, 1, idx, texts, res, fixed)
    wf.save_labels(idx, 1, 1, labels, res, fixed, "train")
    topic_of = wf.assignments()[idx]
    v2, mapping = taxonomy_v2(wf.con, v1, labels, texts, topic_of, _centroids(labels, emb), wf.opts.trust)
    wf.save_taxonomy(v2)
    prev, rounds = np.array([mapping[x] for x in labels]), 1  # '' = dissolved: relabel
    fixed = {i: mapping[v] for i, v in fixed.items() if mapping[v]}
    for r in range(2, wf.opts.max_rounds + 1):
        res = _labels.cross_fit(X, prev, prev != "", seed=wf.opts.seed + r)
        labels = _review(wf, r, idx, texts, res, fixed)
        wf.save_labels(idx, r, 2, labels, res, fixed, "train")
        agree, rounds = _labels.agreement(labels, prev), r
        _store.set_result(wf.con, f"agreement_round_{r}", agree, versus=f"round {r - 1}")
        prev = labels
        if agree >= wf.opts.stability:
            break
    _store.set_result(wf.con, "label_rounds", rounds, stability_threshold=wf.opts.stability,
                      stable=bool(agree >= wf.opts.stability))
    return len(idx)


def _review(wf, r: int, idx, texts, res, fixed: dict[int, str]) -> np.ndarray:
    """The reasoning route reviews the least-sure segments of a round; fixed answers stick."""
    labels = res.labels.astype(object)
    exclude = np.zeros(len(idx), bool)
    exclude[list(fixed)] = True
    pick = _labels.least_sure(res.proba, exclude, wf.opts.review_per_round)
    decisions = []
    for i in pick:
        top = [str(c) for c in res.classes[np.argsort(-res.proba[i])[:3]]]
        prompt = (f"Transcript segment: \"{texts[i]}\"\nWhich CTO priority is this segment mainly about? "
                  f"Options, most likely first: {'; '.join(top)}.")
        decisions.append(Decision(f"seg:{wf.segment_id(idx[i])}", prompt, top, top[0]))
    answers = decide(wf.con, f"review_round_{r}", decisions, wf.opts.trust, template="review")
    for i, d in zip(pick, decisions):
        fixed[int(i)] = answers[d.key]
    for i, v in fixed.items():
        labels[i] = v if v in set(res.classes) else labels[i]
    return labels.astype(str)


def _centroids(labels: np.ndarray, emb: np.ndarray) -> dict[str, np.ndarray]:
    return {str(k): emb[labels == k].mean(0) for k in np.unique(labels)}
