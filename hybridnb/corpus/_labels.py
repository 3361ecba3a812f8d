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
SECONDARY_RATIO = 0.35  # evidence: a second theme carries at least this share of the primary's weight


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


def evidence_labels(topic, weight, topic2, weight2, topic_map: dict) -> tuple[np.ndarray, np.ndarray]:
    """Primary and secondary label per row from its topic weights (via the taxonomy's topic map)."""
    def cat(t):
        return topic_map.get(int(t)) or OFF if t >= 0 else OFF
    prim = np.array([cat(t) for t in topic], dtype=object)
    second = np.array([cat(t) for t in topic2], dtype=object)
    keep = (second != OFF) & (second != prim) & (prim != OFF) & (np.asarray(weight2) >= SECONDARY_RATIO * np.asarray(weight))
    return prim.astype(str), np.where(keep, second, OFF).astype(str)


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


def second_choice(proba: np.ndarray, classes: np.ndarray, primary_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The best on-topic class other than the primary, and its probability, per row."""
    p = proba.copy()
    p[np.arange(len(p)), primary_idx] = -1
    p[:, classes == OFF] = -1
    j = p.argmax(1)
    return j, p[np.arange(len(p)), j]


def calibrate_secondary(proba, classes, primary: np.ndarray, secondary: np.ndarray) -> float:
    """Threshold on the runner-up probability that gives as many secondaries as the labels have."""
    on = primary != OFF
    if not on.any():
        return 1.0
    rate = float(np.mean(secondary[on] != OFF))
    _, p2 = second_choice(proba, classes, np.searchsorted(classes, primary))
    if rate <= 0:
        return 1.0
    return float(np.quantile(p2[on], 1 - rate))


class LocalLabeller:
    """The distilled labeller: a linear classifier on words (+ embeddings), runs on CPU."""

    model_id = "logreg-tfidf"

    def __init__(self, seed: int = 0):
        self.featurizer = Featurizer()
        self.clf = new_classifier(seed)
        self.threshold = 1.0

    def fit(self, texts: list[str], emb, y: np.ndarray, y2: np.ndarray, seed: int = 0) -> "LocalLabeller":
        X = self.featurizer.fit(texts).transform(texts, emb)
        res = cross_fit(X, y, seed=seed)
        self.threshold = calibrate_secondary(res.proba, res.classes, y, y2)
        self.clf.fit(X, y)
        return self

    def predict(self, texts: list[str], emb=None):
        """Primary (None = off-topic), secondary (or None), and a probability for each."""
        classes = self.clf.classes_
        p = self.clf.predict_proba(self.featurizer.transform(texts, emb))
        j1 = p.argmax(1)
        conf = p[np.arange(len(p)), j1]
        j2, p2 = second_choice(p, classes, j1)
        prim = classes[j1].astype(object)
        sec = classes[j2].astype(object)
        sec[(p2 < self.threshold) | (prim == OFF) | (p2 <= 0)] = None
        prim[prim == OFF] = None
        return prim, sec, conf, np.where(sec == None, np.nan, p2)  # noqa: E711
