"""Taxonomy v1 → v2 from the disagreements of the first label round.

The round-1 labels (evidence from topic weights, with reviews applied) are compared with what a
classifier that did not see the row predicts. The reasoning route is shown each category's share, its re-derived keywords and
where its segments went, and answers a list of changes (merge, split, rename, drop; JSON schema).
Offline the stand-in proposes the changes by rule and is recorded as such:

* merge — two categories whose segments cross over to each other (>= :data:`MERGE_CROSS` of the smaller);
* drop — a category with less than :data:`MIN_SHARE` of the round; it joins where its segments went;
* rename — a stand-in name whose words are no longer among the category's re-derived keywords.
"""

from __future__ import annotations

import numpy as np

from ._labels import OFF
from ._reasoning import Ask, ask
from ._taxonomy import NAME, TEXT, Taxonomy
from ._topics import ctfidf

MERGE_CROSS = 0.3
MIN_SHARE = 0.005
CHANGE_SCHEMA = {"type": "object", "required": ["changes"], "properties": {"changes": {"type": "array", "items": {
    "type": "object", "required": ["change", "category", "into", "reason"],
    "properties": {"change": {"type": "string", "enum": ["merge", "split", "rename", "drop"]},
                   "category": NAME, "into": NAME, "reason": TEXT,
                   "topics": {"type": "array", "items": {"type": "integer"}}}}}}}


def confusion(a: np.ndarray, b: np.ndarray, names: list[str]) -> np.ndarray:
    idx = {n: i for i, n in enumerate(names)}
    m = np.zeros((len(names), len(names)))
    np.add.at(m, ([idx[x] for x in a], [idx[x] for x in b]), 1)
    return m


def stand_in_changes(v1: Taxonomy, evidence: np.ndarray, round1: np.ndarray, keywords: dict, named_by: str) -> list:
    names = [OFF] + v1.names
    m = confusion(evidence, round1, names)
    size = m.sum(1)
    changes, gone = [], set()
    for i in range(1, len(names)):
        for j in range(i + 1, len(names)):
            cross = (m[i, j] + m[j, i]) / max(1.0, min(size[i], size[j]))
            if (cross >= MERGE_CROSS and names[i] not in gone and names[j] not in gone
                    and len(v1.names) - len(gone) > 2):  # never merge below two categories
                small, big = sorted((names[i], names[j]), key=lambda n: size[names.index(n)])
                changes.append({"change": "merge", "category": small, "into": big,
                                "reason": f"{cross:.0%} of their segments cross over between the two"})
                gone.add(small)
    share = np.array([np.mean(round1 == n) for n in names])
    for i in range(1, len(names)):
        if names[i] not in gone and share[i] < MIN_SHARE and len(v1.names) - len(gone) > 2:
            row = m[i].copy()
            row[i] = -1
            changes.append({"change": "drop", "category": names[i], "into": names[int(row.argmax())] or "off-topic",
                            "reason": f"{share[i]:.2%} of round 1 (< {MIN_SHARE:.1%})"})
            gone.add(names[i])
    if named_by != "reason":
        for n in v1.names:
            kw = keywords.get(n, [])
            if n not in gone and kw and " / " in n and not set(n.split(" / ")) & set(kw[:10]):  # keyword names only
                changes.append({"change": "rename", "category": n, "into": " / ".join(kw[:3]),
                                "reason": f"its re-derived keywords are {', '.join(kw[:6])}"})
    return changes


def v2_ask(v1: Taxonomy, evidence, round1, keywords: dict, named_by: str) -> Ask:
    names = [OFF] + v1.names
    m = confusion(evidence, round1, names)
    lines = []
    for i, n in enumerate(names[1:], 1):
        went = {names[j] or "off-topic": int(m[i, j]) for j in np.argsort(-m[i])[:3] if j != i and m[i, j] > 0}
        topics = sorted(v1.categories[n]["topics"])
        lines.append(f"- {n}: {np.mean(round1 == n):.1%} of round 1; topics {topics}; keywords "
                     f"{', '.join(keywords.get(n, [])[:8])}; its evidence segments the classifier put elsewhere: {went}")
    prompt = ("Categories after the first label round:\n" + "\n".join(lines) +
              "\nPropose changes (merge, split off listed topics, rename, drop); an empty list keeps v1.")
    return Ask("v2", prompt, {"changes": stand_in_changes(v1, evidence, round1, keywords, named_by)}, CHANGE_SCHEMA,
               max_tokens=1500)


def category_keywords(texts: list[str], labels: np.ndarray, names: list[str], vocabulary: list[str]) -> dict:
    scores = ctfidf([" ".join(t for t, y in zip(texts, labels) if y == n) for n in names], vocabulary)
    return {n: [vocabulary[k] for k in np.argsort(-scores[i])[:15]] for i, n in enumerate(names)}


def taxonomy_v2(con, v1: Taxonomy, evidence, round1, texts, vocabulary, trust: str, named_by: str):
    """v2 and old name -> new name ("" = off-topic)."""
    keywords = category_keywords(texts, round1, v1.names, vocabulary)
    answer = ask(con, "taxonomy_v2", [v2_ask(v1, evidence, round1, keywords, named_by)], trust)["v2"]
    v2 = Taxonomy(2, {k: {**v, "keywords": keywords.get(k, v["keywords"]), "topics": list(v["topics"])}
                      for k, v in v1.categories.items()})
    mapping = {n: n for n in v1.names}
    for ch in answer.value.get("changes", []):
        mapping = _apply(v2, mapping, ch, answer.decided_by)
    return v2, mapping


def _apply(v2: Taxonomy, mapping: dict, ch: dict, who: str) -> dict:
    kind, cat, into = ch.get("change"), ch.get("category"), (ch.get("into") or "").strip()
    if cat not in v2.categories or v2.categories[cat].get("off_topic"):
        return mapping
    if kind == "rename" and into and into not in v2.categories:
        v2.categories[into] = v2.categories.pop(cat)
    elif (kind in ("merge", "drop") and (into in v2.names or (kind == "drop" and into == "off-topic"))
          and into != cat and len(v2.names) > 2):  # a ranking needs two categories: refuse going below
        src = v2.categories.pop(cat)
        if into in v2.categories:
            v2.categories[into]["topics"] += src["topics"]
        into = into if into in v2.categories else OFF
    elif kind == "split" and into and into not in v2.categories and ch.get("topics"):
        moved = [t for t in ch["topics"] if t in v2.categories[cat]["topics"]]
        if not moved or len(moved) == len(v2.categories[cat]["topics"]):
            return mapping
        v2.categories[cat]["topics"] = [t for t in v2.categories[cat]["topics"] if t not in moved]
        v2.categories[into] = {"description": ch.get("reason", ""), "keywords": [], "topics": moved}
        v2.changes.append({"change": "split", "category": cat, "detail": f"topics {moved} → '{into}': "
                           f"{ch.get('reason', '')}", "decided_by": who})
        return mapping
    else:
        return mapping
    v2.changes.append({"change": kind, "category": cat, "detail": f"→ '{into or 'off-topic'}': {ch.get('reason', '')}",
                       "decided_by": who})
    return {k: (into if v == cat else v) for k, v in mapping.items()}
