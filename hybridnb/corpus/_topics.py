"""Topics with BERTopic on precomputed embeddings (fast KMeans default, UMAP+HDBSCAN option)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.util import find_spec

import numpy as np
import polars as pl

from ..errors import CorpusError

SPOKEN_STOP = {"um", "uh", "yeah", "like", "know", "think", "really", "basically", "actually",
               "kind", "lot", "going", "just", "right", "well", "it's", "need", "so"}
METHODS = ("kmeans", "umap_hdbscan")


@dataclass
class Topics:
    """Topic model output: one topic id per segment and a table of topics."""

    assignments: np.ndarray  # topic id per segment (-1 = outlier)
    table: pl.DataFrame  # topic_id, size, keywords (list), representative_ids (list)
    method: str
    model: object = None


def fit_topics(texts: list[str], embeddings: np.ndarray, method: str = "kmeans",
               n_topics: int = 40, seed: int = 0, gpu: bool | None = None) -> Topics:
    """Fit BERTopic on ``embeddings``; no embedding model is loaded, nothing is downloaded."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if method not in METHODS:
        raise CorpusError(f"unknown topic method {method!r}; choose one of {METHODS}")
    if len(texts) < max(50, n_topics * 3):
        raise CorpusError(f"too few segments ({len(texts)}) for {n_topics} topics")
    from bertopic import BERTopic
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

    reducer, clusterer = _components(method, n_topics, seed, len(texts), gpu)
    vectorizer = CountVectorizer(stop_words=sorted(ENGLISH_STOP_WORDS | SPOKEN_STOP), min_df=2)
    model = BERTopic(embedding_model=None, umap_model=reducer, hdbscan_model=clusterer,
                     vectorizer_model=vectorizer, top_n_words=10, calculate_probabilities=False)
    assignments, _ = model.fit_transform(texts, embeddings=embeddings)
    assignments = np.asarray(assignments)
    return Topics(assignments, _table(model, assignments, embeddings), method, model)


def _components(method: str, k: int, seed: int, n: int, gpu: bool | None):
    use_gpu = find_spec("cuml") is not None if gpu is None else gpu
    if method == "kmeans":
        from sklearn.cluster import MiniBatchKMeans
        from sklearn.decomposition import PCA

        return (PCA(n_components=10, random_state=seed),
                MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096))
    if use_gpu:
        from cuml.cluster import HDBSCAN
        from cuml.manifold import UMAP
    else:
        from hdbscan import HDBSCAN
        from umap import UMAP
    min_size = max(15, n // (k * 4))
    return (UMAP(n_components=5, n_neighbors=15, min_dist=0.0, metric="cosine", random_state=seed),
            HDBSCAN(min_cluster_size=min_size, prediction_data=True))


def _table(model, assignments: np.ndarray, embeddings: np.ndarray) -> pl.DataFrame:
    rows = []
    for topic_id in sorted(set(assignments.tolist())):
        idx = np.flatnonzero(assignments == topic_id)
        words = [w for w, _ in (model.get_topic(topic_id) or [])]
        centroid = embeddings[idx].mean(0)
        reps = idx[np.argsort(-(embeddings[idx] @ centroid))[:5]]
        rows.append({"topic_id": int(topic_id), "size": len(idx), "keywords": words,
                     "representative_ids": reps.tolist()})
    return pl.DataFrame(rows)
