"""Secondary concern per segment from its own words: a two-theme mixture fitted on the corpus.

A segment whose primary is ``p`` either speaks of ``p`` alone or also mentions one other category
``c``; then a share ``lam`` of its (non-stop) words comes from ``c``'s word profile. The profiles
are learned from the corpus itself (the words of each category's primary segments, refined by
EM as the mentions are found), never given. Per segment, the evidence for "also mentions c" is
the likelihood ratio of its words under the mixture against ``p`` alone, marginalised over a few
mixing shares :data:`MIX_SHARES`; EM also learns how often each primary carries each secondary
(the prior). A segment with one or two words of ``c`` is caught even where topic weights miss it.

The decision is a count first: the model expects ``sum(posteriors)`` secondary mentions; that many
are given, to the segments most likely to carry one (their best category), so the secondary
share the report shows is the model's estimate rather than only the segments with strong evidence.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer

from ._discover import STOP_WORDS, TOKENS

MIX_SHARES = (0.2, 0.3, 0.4)  # share of a segment's words from its secondary theme (chosen on 30K seeds 1-2)
SMOOTH = 0.02  # Dirichlet prior mass per word, × vocabulary size, towards the corpus's word frequencies
ITERATIONS = 8


def word_counts(texts: list[str]) -> sp.csr_matrix:
    """Counts of the non-stop words (seen in >= 3 segments, or 1 for a tiny corpus) per segment."""
    cv = CountVectorizer(stop_words=sorted(STOP_WORDS), token_pattern=TOKENS, lowercase=True,
                         min_df=3 if len(texts) >= 1000 else 1, dtype=np.float64)
    try:
        return cv.fit_transform(texts).tocsr()
    except ValueError:  # nothing but stop words
        return sp.csr_matrix((len(texts), 1))


def secondary_from_words(texts: list[str], primary) -> tuple[list, np.ndarray]:
    """Secondary label per segment (None = none) and its posterior probability (NaN when none)."""
    prim = np.asarray([p if p else "" for p in primary], dtype=object)
    names = sorted(set(prim.tolist()) - {""})
    n = len(prim)
    if len(names) < 2:
        return [None] * n, np.full(n, np.nan)
    col = {c: i for i, c in enumerate(names)}
    of = np.array([col.get(p, -1) for p in prim])
    R = fit_mixture(word_counts(texts), of, len(names))
    best, post = R.argmax(1), R.max(1)
    take = expected_count_rows(R, of >= 0)
    sec = np.where(take, np.array(names, dtype=object)[best], None)
    return sec.tolist(), np.where(take, post, np.nan)


def expected_count_rows(R: np.ndarray, on: np.ndarray) -> np.ndarray:
    """The ``round(sum of R)`` rows (of ``on``) with the highest posterior of their best secondary."""
    k = int(round(float(R[on].sum())))
    post = np.where(on, R.max(1), -1.0)
    take = np.zeros(len(R), dtype=bool)
    if k > 0:
        take[np.argsort(-post, kind="stable")[:k]] = True
    return take & on & (post > 0)


def fit_mixture(X: sp.csr_matrix, of: np.ndarray, k: int) -> np.ndarray:
    """EM over the two-theme mixture; returns (n, k) posteriors of each secondary (0 on the primary's
    own column and for rows without a primary)."""
    V = X.shape[1]
    bg = np.asarray(X.sum(0)).ravel() + 1.0
    bg /= bg.sum()
    rows = [np.flatnonzero(of == p) for p in range(k)]
    Xp = [X[r] for r in rows]
    counts = np.array([np.asarray(x.sum(0)).ravel() for x in Xp])
    theta = _normalise(counts + SMOOTH * V * bg)
    prior = np.full((k, k), 0.02)
    np.fill_diagonal(prior, 0.0)
    R = np.zeros((X.shape[0], k))
    for _ in range(ITERATIONS):
        N = np.zeros((k, V))
        for p in range(k):
            if len(rows[p]) == 0:
                continue
            Rp = _posteriors(Xp[p], theta, p, prior[p])
            R[rows[p]] = Rp
            prior[p] = Rp.mean(0)
            _expected_words(N, Xp[p], Rp, theta, p)
        theta = _normalise(N + SMOOTH * V * bg)
    return R


def _normalise(M: np.ndarray) -> np.ndarray:
    return M / M.sum(1, keepdims=True)


def _posteriors(Xp: sp.csr_matrix, theta: np.ndarray, p: int, prior: np.ndarray) -> np.ndarray:
    """P(secondary = c | words) for rows of primary ``p`` (columns c; p's own column 0)."""
    own = np.log(theta[p])[None, :]
    S = np.stack([Xp @ (np.log((1 - lam) * theta[p][None, :] + lam * theta) - own).T for lam in MIX_SHARES])
    top = S.max(0)
    S = top + np.log(np.exp(S - top).mean(0))  # marginal over the mixing shares
    S[:, p] = -np.inf
    lp = np.log(np.maximum(prior, 1e-12))[None, :] + S
    none = np.log(max(1.0 - float(prior.sum()), 1e-9))
    m = np.maximum(lp.max(1), none)
    e = np.exp(lp - m[:, None])
    return e / (e.sum(1) + np.exp(none - m))[:, None]


def _expected_words(N: np.ndarray, Xp: sp.csr_matrix, Rp: np.ndarray, theta: np.ndarray, p: int) -> None:
    """Add the expected word counts of primary ``p``'s rows to each theme (M-step), in place."""
    lam = float(np.mean(MIX_SHARES))
    N[p] += np.asarray(Xp.T @ (1.0 - Rp.sum(1))).ravel()
    W = np.asarray((Xp.T @ Rp).T)  # (k, V): words of rows weighted by their posterior of each c
    for c in range(len(theta)):
        if c == p:
            continue
        g = lam * theta[c] / ((1 - lam) * theta[p] + lam * theta[c])
        N[c] += W[c] * g
        N[p] += W[c] * (1 - g)
