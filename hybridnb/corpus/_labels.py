"""Label rounds on the fine-tuning sample and the local (distilled) labeller: primary + secondary.

Labels are strings; ``""`` is the off-topic class while training (``None`` once written out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from ._discover import STOP_WORDS, TOKENS

OFF = ""
SECONDARY_RATIO = 0.15  # a second theme carries at least this share of the heaviest category's topic weight
PAIR_SHARPNESS = 12.0  # log-evidence scale of the subject-vs-mention decision (see subject_of_pair)


class Featurizer:
    """TF-IDF over the sample's vocabulary (plus sentence embeddings when there are any)."""

    def __init__(self, max_features: int = 30_000):
        self.tfidf = TfidfVectorizer(sublinear_tf=True, min_df=2, max_features=max_features,
                                     token_pattern=TOKENS, stop_words=sorted(STOP_WORDS))

    def fit(self, texts: list[str]) -> "Featurizer":
        self.tfidf.fit(texts)
        return self

    def transform(self, texts: list[str], emb: np.ndarray | None = None) -> sp.csr_matrix:
        words = self.tfidf.transform(texts)
        if emb is None or emb.size == 0:
            return words.tocsr()
        return sp.hstack([words, sp.csr_matrix(emb)], format="csr")


class _Single(LogisticRegression):
    """Logistic regression that fits with one BLAS thread (oversubscribed cores slow it 10×)."""

    def fit(self, X, y, sample_weight=None):
        with threadpool_limits(1):
            return super().fit(X, y, sample_weight)


def new_classifier(seed: int = 0) -> LogisticRegression:
    return _Single(C=5.0, max_iter=300, random_state=seed)


def evidence_labels(top_topics, top_weights, topic_map: dict) -> tuple[np.ndarray, np.ndarray]:
    """Primary and secondary label per row from its heaviest topics, summed per category (topic map)."""
    names, M = category_weights(top_topics, top_weights, topic_map)
    labels = np.array(names + [OFF], dtype=object)
    j = M.argmax(1)
    prim = np.where(M.max(1) > 0, labels[j], OFF)
    sec, _ = secondary_from_topics(top_topics, top_weights, topic_map, np.where(prim == OFF, None, prim))
    return prim.astype(str), np.array([x or OFF for x in sec], dtype=str)


@dataclass
class RoundResult:
    labels: np.ndarray  # str per sample row ("" = off-topic)
    proba: np.ndarray  # (n, k) class probabilities
    classes: np.ndarray


def cross_fit(X: sp.csr_matrix, y: np.ndarray, folds: int = 3, seed: int = 0) -> RoundResult:
    """Predict every row with a classifier that did not see it."""
    classes, counts = np.unique(y, return_counts=True)
    proba = np.zeros((X.shape[0], len(classes)))
    k = max(2, min(folds, int(counts.min()))) if len(classes) > 1 else 2
    rare = counts < k  # classes too small to stratify: predicted from the others' folds only
    ok = ~np.isin(y, classes[rare])
    idx = np.flatnonzero(ok)
    for fit_i, pred_i in StratifiedKFold(k, shuffle=True, random_state=seed).split(idx, y[idx]):
        clf = new_classifier(seed).fit(X[idx[fit_i]], y[idx[fit_i]])
        proba[np.ix_(idx[pred_i], np.searchsorted(classes, clf.classes_))] = clf.predict_proba(X[idx[pred_i]])
    if (~ok).any():
        clf = new_classifier(seed).fit(X[idx], y[idx])
        proba[np.ix_(np.flatnonzero(~ok), np.searchsorted(classes, clf.classes_))] = clf.predict_proba(X[~ok])
    return RoundResult(classes[proba.argmax(1)], proba, classes)


def least_sure(proba: np.ndarray, exclude: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` rows with the smallest top-1 − top-2 margin (not in ``exclude``)."""
    top2 = -np.sort(-proba, 1)[:, :2]
    margin = top2[:, 0] - (top2[:, 1] if proba.shape[1] > 1 else 0)
    margin[exclude] = np.inf
    order = np.argsort(margin)
    return order[:k][np.isfinite(margin[order[:k]])]


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b)) if len(a) else 1.0


def category_weights(top_topics: np.ndarray, top_weights: np.ndarray, topic_map: dict) -> tuple[list, np.ndarray]:
    """Per row, the topic weights summed per category: (on-topic names, (n, k + 1) matrix whose
    last column is the weight of off-topic topics)."""
    names = sorted({c for c in topic_map.values() if c})
    col = {c: j for j, c in enumerate(names)}
    size = max([0, *topic_map]) + 2
    lookup = np.full(size, len(names) + 1)  # unknown topics: a discarded column
    for t, c in topic_map.items():
        lookup[int(t)] = col[c] if c else len(names)
    t = np.asarray(top_topics)
    cat = np.where(t >= 0, lookup[np.clip(t, 0, size - 1)], len(names) + 1)
    M = np.zeros((len(t), len(names) + 2))
    rows = np.repeat(np.arange(len(t)), t.shape[1])
    np.add.at(M, (rows, cat.ravel()), np.asarray(top_weights, dtype=float).ravel())
    return names, M[:, :-1]


def secondary_from_topics(top_topics, top_weights, topic_map: dict, primary) -> tuple[list, np.ndarray]:
    """Secondary concern per row: the heaviest other on-topic category of its topic weights when it
    carries >= :data:`SECONDARY_RATIO` of the heaviest category's weight; confidence = that ratio."""
    names, M = category_weights(top_topics, top_weights, topic_map)
    if not names:
        return [None] * len(primary), np.full(len(primary), np.nan)
    top = M.max(1)
    M = M[:, :-1]
    prim = np.asarray(primary, dtype=object)
    own = np.array(names, dtype=object)[None, :] == prim[:, None]
    other = np.where(own, -1.0, M)
    j = other.argmax(1)
    w = other[np.arange(len(M)), j]
    ok = (prim != None) & (top > 0) & (w > 0) & (w >= SECONDARY_RATIO * top)  # noqa: E711
    sec = np.where(ok, np.array(names, dtype=object)[j], None)
    return sec.tolist(), np.where(ok, np.minimum(1.0, w / np.maximum(top, 1e-12)), np.nan)


def subject_of_pair(M: np.ndarray, iters: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which of a row's two heaviest categories is its subject, with the corpus's own pair priors.

    ``M`` is :func:`category_weights`' matrix (last column off-topic). A category that this corpus
    often mentions *in passing* (it is frequently the lighter of a row's two themes) needs more
    evidence to be the subject: for the pair (a heavier, b lighter) the rows are re-read with the
    log prior odds ``log(C[b, a] / C[a, b])`` (C = how often the corpus's rows hold the pair as
    subject, mention) against ``PAIR_SHARPNESS * log(w_a / w_b)``; C is re-estimated a few times.
    Returns (heaviest, runner-up, swap) column indices and a bool per row.
    """
    on = M[:, :-1]
    n, k = on.shape
    if k < 2:
        z = np.zeros(n, dtype=int)
        return z, z, np.zeros(n, dtype=bool)
    order = np.argsort(-on, 1, kind="stable")
    a, b = order[:, 0], order[:, 1]
    wa, wb = on[np.arange(n), a], on[np.arange(n), b]
    pair = (M.argmax(1) < k) & (wa > 0) & (wb > 0)
    lr = PAIR_SHARPNESS * np.log(np.maximum(wa, 1e-12) / np.maximum(wb, 1e-12))
    swap = np.zeros(n, dtype=bool)
    for _ in range(iters):
        C = np.ones((k, k))
        np.add.at(C, (np.where(swap, b, a)[pair], np.where(swap, a, b)[pair]), 1)
        swap = pair & (lr < np.log(C[b, a] / C[a, b]))
    return a, b, swap


def subject_primary(prim, top_topics, top_weights, topic_map: dict) -> np.ndarray:
    """Primary labels re-decided between each row's two heaviest categories (:func:`subject_of_pair`)
    where the given primary is one of them; other rows keep theirs."""
    names, M = category_weights(top_topics, top_weights, topic_map)
    prim = np.asarray(prim, dtype=object)
    if len(names) < 2:
        return prim
    a, b, swap = subject_of_pair(M)
    nm = np.array(names, dtype=object)
    ea, eb = nm[a], nm[b]
    subject = np.where(swap, eb, ea)
    return np.where((prim == ea) | (prim == eb), subject, prim)


class LocalLabeller:
    """The distilled primary labeller: a linear classifier on words (+ embeddings), runs on CPU."""

    model_id = "logreg-tfidf"

    def __init__(self, seed: int = 0):
        self.featurizer = Featurizer()
        self.clf = new_classifier(seed)

    def fit(self, texts: list[str], emb, y: np.ndarray) -> "LocalLabeller":
        self.clf.fit(self.featurizer.fit(texts).transform(texts, emb), y)
        return self

    def predict(self, texts: list[str], emb=None):
        """Primary label (None = off-topic), its probability, and every class's probability per text."""
        p = self.clf.predict_proba(self.featurizer.transform(texts, emb))
        j = p.argmax(1)
        prim = self.clf.classes_[j].astype(object)
        prim[prim == OFF] = None
        return prim, p[np.arange(len(p)), j], p.astype(np.float32)

    def probability_of(self, proba: np.ndarray, labels) -> np.ndarray:
        """Each row's probability of the given label (None = off-topic) under :meth:`predict`'s ``proba``."""
        classes = list(self.clf.classes_)
        col = np.array([classes.index(x or OFF) if (x or OFF) in classes else -1 for x in labels], dtype=int)
        out = proba[np.arange(len(proba)), np.maximum(col, 0)].astype(float)
        return np.where(col >= 0, out, 0.0)
