"""Topics: over-clustered NMF on the topical words, with c-TF-IDF keywords per topic.

Fitted on a subsample (at most :data:`FIT_SIZE` segments), then every segment gets its topic
weights. The keywords are BERTopic's class-based TF-IDF (tf of a word in the topic's segments ×
log(1 + mean words per topic / the word's frequency)), computed here directly: importing BERTopic
alone takes 20–40 s on a 2-core machine, a third of the whole run's time budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.feature_extraction.text import CountVectorizer

from ..errors import CorpusError
from . import _discover as D

FIT_SIZE = 20_000
CHUNK = 50_000
TOP = 10  # topic weights kept per segment (a category may hold several topics)


@dataclass
class Topics:
    """One row per segment (topic, its weight, runner-up topic and weight) and one per topic."""

    assignments: pl.DataFrame  # row, topic_id, weight (topic -1: no topical word), top_topics, top_weights
    table: pl.DataFrame  # topic_id, size, keywords (list), representative_ids (list), common_rate
    vocabulary: D.Vocabulary


def fit_topics(texts: list[str], seed: int = 0, progress=None) -> Topics:
    """Discover over-clustered topics in ``texts`` (nothing about the corpus is assumed)."""
    sub = D.subsample(len(texts), FIT_SIZE, seed)
    sample = [texts[i] for i in sub]
    voc = D.vocabulary(sample)
    if len(voc.topical) < 4:
        raise CorpusError(f"found only {len(voc.topical)} words that carry topics in {len(sample):,} segments: "
                          "the texts are too short, too few or too uniform to discover categories")
    X, idf = D.tfidf(sample, voc.topical)
    factors = D.fit_nmf(X, D.over_cluster(len(sample), len(voc.topical)), seed)
    parts = []
    for start in range(0, len(texts), CHUNK):
        Xc, _ = D.tfidf(texts[start:start + CHUNK], voc.topical, idf)
        parts.append(_top(D.weights(factors, Xc)))
        if progress:
            progress(min(start + CHUNK, len(texts)), len(texts))
    t, w = np.vstack([p[0] for p in parts]), np.vstack([p[1] for p in parts])
    assignments = pl.DataFrame({"row": np.arange(len(texts)), "topic_id": t[:, 0].astype(np.int32),
                                "weight": w[:, 0], "top_topics": t.astype(np.int32), "top_weights": w})
    assignments = assignments.with_columns(pl.col("top_topics").arr.to_list(), pl.col("top_weights").arr.to_list())
    return Topics(assignments, topic_table(texts, assignments, voc, seed), voc)


def _top(W: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` heaviest topics of each row and their weights (topic -1 where the weight is 0)."""
    order = np.argsort(-W, 1)[:, :k or TOP]
    w = np.take_along_axis(W, order, 1)
    return np.where(w > 1e-9, order, -1), w


def ctfidf(docs_per_class: list[str], vocabulary: list[str]) -> np.ndarray:
    """BERTopic's class-based TF-IDF of one concatenated document per class (rows: classes)."""
    cv = CountVectorizer(vocabulary=vocabulary, token_pattern=D.TOKENS, lowercase=True)
    counts = cv.transform(docs_per_class).toarray().astype(float)
    tf = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    idf = np.log(1 + counts.sum(1).mean() / np.maximum(counts.sum(0), 1))
    return tf * idf


def topic_table(texts, assignments: pl.DataFrame, voc: D.Vocabulary, seed: int, top: int = 12,
                per_topic: int = 400) -> pl.DataFrame:
    """Keywords (c-TF-IDF over a sample of each topic's segments), size, representatives, common-word rate."""
    rng = np.random.default_rng(seed)
    topic = assignments["topic_id"].to_numpy()
    weight = assignments["weight"].to_numpy()
    ids = sorted(int(t) for t in np.unique(topic) if t >= 0)
    members = {t: np.flatnonzero(topic == t) for t in ids}
    picks = {t: rng.choice(m, min(per_topic, len(m)), replace=False) for t, m in members.items()}
    words = voc.topical + voc.common
    scores = ctfidf([" ".join(texts[i] for i in picks[t]) for t in ids], words)
    common = CountVectorizer(vocabulary=voc.common or ["-"], token_pattern=D.TOKENS, lowercase=True)
    rows = []
    for j, t in enumerate(ids):
        order = np.argsort(-scores[j])[:top]
        reps = members[t][np.argsort(-weight[members[t]])[:5]]
        sample = [texts[i] for i in picks[t]]
        rate = float(common.transform(sample).sum() / max(len(sample), 1)) if voc.common else float("nan")
        rows.append({"topic_id": t, "size": len(members[t]), "keywords": [words[i] for i in order],
                     "representative_ids": reps.tolist(), "common_rate": rate})
    return pl.DataFrame(rows, schema={"topic_id": pl.Int32, "size": pl.Int64, "keywords": pl.List(pl.String),
                                      "representative_ids": pl.List(pl.Int64), "common_rate": pl.Float64})
