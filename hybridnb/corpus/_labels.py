"""Label rounds on the fine-tuning sample, the stability criterion, and the local labeller."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

TOKENS = r"(?u)\b[\w']+\b"
EMB_WEIGHT = 1.0


class Featurizer:
    """TF-IDF over the sample's vocabulary plus the sentence embedding (sparse matrix)."""

    def __init__(self, max_features: int = 20_000):
        self.tfidf = TfidfVectorizer(sublinear_tf=True, min_df=2, max_features=max_features,
                                     token_pattern=TOKENS)

    def fit(self, texts: list[str]) -> "Featurizer":
        self.tfidf.fit(texts)
        return self

    def transform(self, texts: list[str], emb: np.ndarray) -> sp.csr_matrix:
        words = self.tfidf.transform(texts)
        return sp.hstack([words, sp.csr_matrix(emb * EMB_WEIGHT)], format="csr")


class _Single(LogisticRegression):
    """Logistic regression that fits with one BLAS thread (oversubscribed cores slow it 10×)."""

    def fit(self, X, y, sample_weight=None):
        with threadpool_limits(1):
            return super().fit(X, y, sample_weight)


def new_classifier(seed: int = 0) -> LogisticRegression:
    return _Single(C=10.0, max_iter=300, random_state=seed)


def keyword_scores(texts: list[str], keywords: dict[str, list[str]]) -> tuple[list[str], np.ndarray]:
    """Per text and category: keyword hits, each word weighted 1 / (categories that list it)."""
    names = sorted(keywords)
    owners: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        for w in set(keywords[n]):
            owners.setdefault(w, []).append(i)
    score = np.zeros((len(texts), len(names)))
    for row, t in enumerate(texts):
        for w in t.lower().split():
            for i in owners.get(w, ()):
                score[row, i] += 1.0 / len(owners[w])
    return names, score


def keyword_seeds(texts: list[str], keywords: dict[str, list[str]], min_margin: float = 0.5):
    """Label segments whose keywords clearly favour one category (else None)."""
    names, score = keyword_scores(texts, keywords)
    top = np.argsort(-score, 1)[:, :2]
    best = score[np.arange(len(texts)), top[:, 0]]
    ok = (best > 0) & (best - score[np.arange(len(texts)), top[:, 1]] >= min_margin)
    return [names[t] if k else None for t, k in zip(top[:, 0], ok)]


@dataclass
class RoundResult:
    labels: np.ndarray  # str per sample segment
    proba: np.ndarray  # (n, k) class probabilities
    classes: np.ndarray


def cross_fit(X: sp.csr_matrix, y: np.ndarray, train_mask: np.ndarray, folds: int = 3,
              seed: int = 0) -> RoundResult:
    """Predict every row with a classifier that did not see it (rows outside train_mask: full fit)."""
    classes = np.unique(y[train_mask])
    proba = np.zeros((X.shape[0], len(classes)))
    idx = np.flatnonzero(train_mask)
    counts = np.unique(y[idx], return_counts=True)[1]
    k = max(2, min(folds, int(counts.min()))) if len(counts) > 1 else 2
    for fit_i, pred_i in StratifiedKFold(k, shuffle=True, random_state=seed).split(idx, y[idx]):
        clf = new_classifier(seed).fit(X[idx[fit_i]], y[idx[fit_i]])
        proba[np.ix_(idx[pred_i], np.searchsorted(classes, clf.classes_))] = clf.predict_proba(X[idx[pred_i]])
    rest = np.flatnonzero(~train_mask)
    if len(rest):
        clf = new_classifier(seed).fit(X[idx], y[idx])
        proba[np.ix_(rest, np.searchsorted(classes, clf.classes_))] = clf.predict_proba(X[rest])
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


class LocalLabeller:
    """The distilled labeller: a linear classifier on words + embeddings, runs on CPU."""

    model_id = "logreg-tfidf+static64"

    def __init__(self, seed: int = 0):
        self.featurizer = Featurizer()
        self.clf = new_classifier(seed)

    def fit(self, texts: list[str], emb: np.ndarray, y: np.ndarray) -> "LocalLabeller":
        self.featurizer.fit(texts)
        self.clf.fit(self.featurizer.transform(texts, emb), y)
        return self

    def predict(self, texts: list[str], emb: np.ndarray, chunk: int = 50_000):
        """Primary label, secondary label (or None) and top-1 probability per text."""
        classes = self.clf.classes_
        prim, sec, conf = [], [], []
        for s in range(0, len(texts), chunk):
            p = self.clf.predict_proba(self.featurizer.transform(texts[s:s + chunk], emb[s:s + chunk]))
            order = np.argsort(-p, 1)
            prim.append(classes[order[:, 0]])
            second = classes[order[:, 1]].astype(object)
            second[p[np.arange(len(p)), order[:, 1]] < 0.2] = None
            sec.append(second)
            conf.append(p[np.arange(len(p)), order[:, 0]])
        return np.concatenate(prim), np.concatenate(sec), np.concatenate(conf)
