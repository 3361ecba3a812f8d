"""Taxonomy v1 → v2 from the first label round: the iteration an analyst does after reading labels.

* unclear topics join the category most of their labelled segments got;
* every category's keywords are re-derived from its labelled segments (class-based TF-IDF);
* a category without distinctive words of its own (its top words are shared by everyone) is
  dissolved: its segments are relabelled among the others in the next round;
* categories whose re-derived keywords overlap are proposed for a merge (the reasoning route confirms);
* categories too small to matter are dropped into their nearest neighbour.
"""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

from ._reasoning import Decision, decide
from ._taxonomy import OFF_TOPIC, Taxonomy
from ._topics import SPOKEN_STOP

MERGE_JACCARD = 0.4  # overlap of re-derived keywords above which two categories may be one concern
DISTINCT = 0.3  # a category whose top words it holds on average less than this share of is dissolved
MIN_SHARE = 0.01  # categories below this share of the round are dropped
ADOPT_SHARE = 0.5  # an unclear topic joins a category that holds this share of its segments


def taxonomy_v2(con, v1: Taxonomy, labels: np.ndarray, texts: list[str], topic_of: np.ndarray,
                centroids: dict, trust: str) -> tuple[Taxonomy, dict[str, str]]:
    """Build v2 from round-1 ``labels`` of the sample; returns v2 and old name -> new name."""
    v2 = Taxonomy(2, {k: {"keywords": list(v["keywords"]), "topics": list(v["topics"])}
                      for k, v in v1.categories.items()})
    mapping = {n: n for n in v1.names}
    _adopt_unclear(v2, labels, topic_of)
    distinct = _refresh_keywords(v2, labels, texts, v1)
    mapping = _dissolve(v2, mapping, distinct)
    mapping = _merges(con, v2, mapping, trust)
    mapping = _drops(v2, mapping, labels, centroids)
    return v2, mapping


def _dissolve(v2: Taxonomy, mapping: dict, distinct: dict[str, float]) -> dict:
    """Remove categories with no words of their own; their segments map to '' (relabelled later)."""
    for name, score in sorted(distinct.items()):
        if score < DISTINCT and name != OFF_TOPIC and len(v2.categories) > 2:
            v2.categories.pop(name)
            mapping = {k: "" if v == name else v for k, v in mapping.items()}
            v2.changes.append({"change": "dissolve", "category": name, "detail": f"its top words are "
                               f"shared by other categories (it holds {score:.0%} of them on average); "
                               f"its segments are relabelled among the others", "decided_by": "evidence"})
    return mapping


def _adopt_unclear(v2: Taxonomy, labels, topic_of) -> None:
    named = {t for c in v2.categories.values() for t in c["topics"]}
    for t in sorted(set(topic_of.tolist()) - named):
        got, counts = np.unique(labels[topic_of == t], return_counts=True)
        if len(got) and counts.max() / counts.sum() >= ADOPT_SHARE:
            cat = str(got[counts.argmax()])
            v2.categories[cat]["topics"].append(int(t))
            v2.changes.append({"change": "adopt topic", "category": cat, "detail":
                               f"unclear topic {t}: {counts.max() / counts.sum():.0%} of its labelled "
                               f"segments are '{cat}'", "decided_by": "evidence"})


def _core(words: list[str], everywhere: set[str]) -> set[str]:
    return set(words[:15]) - everywhere


def _merges(con, v2: Taxonomy, mapping: dict, trust: str) -> dict:
    names = [n for n in v2.names if n != OFF_TOPIC]
    seen: dict[str, int] = {}
    for n in names:
        for w in set(v2.categories[n]["keywords"][:15]):
            seen[w] = seen.get(w, 0) + 1
    everywhere = {w for w, c in seen.items() if c >= 3}
    proposals = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ka, kb = _core(v2.categories[a]["keywords"], everywhere), _core(v2.categories[b]["keywords"], everywhere)
            jac = len(ka & kb) / max(1, len(ka | kb))
            if jac >= MERGE_JACCARD / 2:
                proposals.append((a, b, jac))
    decisions = [Decision(f"merge:{a}|{b}",
                          f"Categories '{a}' (keywords: {', '.join(v2.categories[a]['keywords'][:8])}) and "
                          f"'{b}' (keywords: {', '.join(v2.categories[b]['keywords'][:8])}) share "
                          f"{jac:.0%} of their keywords. Are they one concern of CTOs?",
                          *_ordered(jac >= MERGE_JACCARD))
                 for a, b, jac in proposals]
    answers = decide(con, "taxonomy_v2", decisions, trust, template="taxonomy_v2")
    by = dict(con.execute("SELECT key, decided_by FROM reason_calls WHERE step = 'taxonomy_v2'").fetchall())
    for (a, b, jac), dec in zip(proposals, decisions):
        a, b = _current(mapping, a), _current(mapping, b)
        if answers[dec.key] != "merge" or a == b or not a or not b:
            continue
        keep, gone = sorted((a, b), key=lambda n: -len(v2.categories[n]["topics"]))
        _merge_into(v2, keep, gone)
        mapping = {k: keep if v == gone else v for k, v in mapping.items()}
        v2.changes.append({"change": "merge", "category": keep, "detail": f"'{gone}' merged into '{keep}' "
                           f"(keyword overlap {jac:.0%})", "decided_by": by.get(dec.key, "evidence")})
    return mapping


def _current(mapping: dict, name: str) -> str:
    return mapping.get(name, name)


def _ordered(merge: bool) -> tuple[list[str], str]:
    """Choices with the evidence's answer first, and that answer."""
    return (["merge", "keep separate"], "merge") if merge else (["keep separate", "merge"], "keep separate")


def _drops(v2: Taxonomy, mapping: dict, labels: np.ndarray, centroids: dict) -> dict:
    share: dict[str, float] = {}
    for old, new in mapping.items():
        if new:
            share[new] = share.get(new, 0.0) + float(np.mean(labels == old))
    for name in [n for n in v2.names if share.get(n, 0) < MIN_SHARE and n != OFF_TOPIC]:
        others = [n for n in v2.names if n != name]
        target = max(others, key=lambda o: float(centroids.get(name, 0) @ centroids.get(o, 0))
                     if name in centroids and o in centroids else 0.0)
        _merge_into(v2, target, name)
        mapping = {k: target if v == name else v for k, v in mapping.items()}
        v2.changes.append({"change": "drop", "category": name, "detail": f"share {share.get(name, 0):.1%} "
                           f"< {MIN_SHARE:.0%} of round 1; its segments go to '{target}'", "decided_by": "evidence"})
    return mapping


def _merge_into(tax: Taxonomy, keep: str, gone: str) -> None:
    src = tax.categories.pop(gone)
    dst = tax.categories[keep]
    dst["topics"] += src["topics"]
    dst["keywords"] += [w for w in src["keywords"] if w not in dst["keywords"]]


def _refresh_keywords(v2: Taxonomy, labels: np.ndarray, texts: list[str], v1: Taxonomy,
                      top: int = 15) -> dict[str, float]:
    """Class-based TF-IDF over the labelled segments of each category; returns distinctiveness.

    Distinctiveness of a category: the mean share of each of its top-10 words' occurrences that
    fall in this category (own vocabulary ≈ 1, words everyone uses ≈ 1 / categories).
    """
    names = v2.names
    docs = [" ".join(t for t, y in zip(texts, labels) if y == n) for n in names]
    vec = CountVectorizer(stop_words=sorted(ENGLISH_STOP_WORDS | SPOKEN_STOP), token_pattern=r"(?u)\b[\w']+\b")
    counts = vec.fit_transform(docs).toarray().astype(float)
    tf = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    idf = np.log(1 + counts.sum(1).mean() / np.maximum(counts.sum(0), 1))
    vocab = np.array(vec.get_feature_names_out())
    owned = counts / np.maximum(counts.sum(0, keepdims=True), 1)
    distinct = {}
    for i, n in enumerate(names):
        order = np.argsort(-(tf[i] * idf))
        distinct[n] = float(owned[i, order[:10]].mean())
        new = vocab[order[:top]].tolist()
        old = v1.categories.get(n, {}).get("keywords", [])[:top]
        added, removed = [w for w in new if w not in old], [w for w in old if w not in new]
        v2.categories[n]["keywords"] = new
        if added or removed:
            v2.changes.append({"change": "keywords", "category": n, "detail":
                               f"+{' +'.join(added[:6])}  −{' −'.join(removed[:6])}".strip(),
                               "decided_by": "evidence"})
    return distinct
