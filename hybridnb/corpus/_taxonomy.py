"""Taxonomy on the reasoning route: name topics, merge into v1, iterate to v2.

The analyst starts from a *codebook* of candidate category names (CTO-priority names from
prior surveys, each with a few seed words, plus near-synonyms and decoys that may not occur
at all). Evidence ranks candidates per topic from its c-TF-IDF keywords and its centroid; the
reasoning route chooses among the top candidates. Nothing here knows which category leads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ._reasoning import Decision, decide
from ._spec import Spec

OFF_TOPIC = "Off-topic: logistics, banter, ASR noise"
UNCLEAR = "Mixed / unclear"
# near-synonyms and decoys an analyst's codebook would hold (seed words)
EXTRA_CODEBOOK = {
    "Cyber threats": "attackers phishing malware hackers",
    "Legacy modernisation": "mainframe rewrite decommission modernise",
    "Cloud spend": "bill overspend reserved instances",
    "Customer experience": "customers journeys satisfaction loyalty",
    "Edge & IoT": "edge devices sensors iot",
    "Quantum computing": "quantum qubits cryptography research",
    OFF_TOPIC: "hear slides coffee break thanks applause welcome session umm uhh soo",
}


def codebook(spec: Spec) -> dict[str, list[str]]:
    """Candidate names -> seed words (the four most characteristic words of each concern)."""
    book = {c.name: list(c.words[:4]) for c in spec.categories}
    book.update({k: v.split() for k, v in EXTRA_CODEBOOK.items() if k not in book})
    return book


@dataclass
class Taxonomy:
    """One taxonomy version: categories with their keywords and topics."""

    version: int
    categories: dict[str, dict] = field(default_factory=dict)  # name -> {keywords, topics}
    changes: list[dict] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return sorted(self.categories)

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame([{"version": self.version, "category": k,
                              "keywords": " ".join(v["keywords"][:12]),
                              "topics": json.dumps(v["topics"]), "is_noise": k == OFF_TOPIC}
                             for k, v in sorted(self.categories.items())])


def rank_candidates(keywords: list[str], centroid: np.ndarray, book: dict[str, list[str]],
                    book_vecs: np.ndarray) -> list[tuple[str, float]]:
    """Score every codebook name for a topic: weighted keyword hits + centroid cosine."""
    weights = {w: 1.0 / (1 + 0.3 * r) for r, w in enumerate(keywords)}
    names = list(book)
    cos = book_vecs @ centroid / max(np.linalg.norm(centroid), 1e-9)
    scores = [sum(weights.get(s, 0.0) for s in book[n]) + 0.5 * float(c) for n, c in zip(names, cos)]
    return sorted(zip(names, scores), key=lambda x: -x[1])


def name_topics(con, topics: pl.DataFrame, texts: list[str], book: dict[str, list[str]],
                book_vecs: np.ndarray, centroids: np.ndarray, trust: str) -> pl.DataFrame:
    """Ask the reasoning route to name every topic; evidence backs every answer."""
    decisions = []
    for row, centroid in zip(topics.iter_rows(named=True), centroids):
        ranked = rank_candidates(row["keywords"], centroid, book, book_vecs)
        best = ranked[0][0] if ranked[0][1] > 0.9 else UNCLEAR
        options = list(dict.fromkeys([best] + [n for n, _ in ranked[:3]] + [OFF_TOPIC, UNCLEAR]))
        reps = "\n".join(f"- {' '.join(texts[i].split()[:25])}" for i in row["representative_ids"][:2])
        prompt = (f"Topic keywords: {', '.join(row['keywords'][:10])}\n"
                  f"Representative transcript segments:\n{reps}\n"
                  f"Which category name fits this topic best? Options, most likely first: "
                  f"{'; '.join(options)}.")
        decisions.append(Decision(f"topic:{row['topic_id']}", prompt, options, best))
    answers = decide(con, "name_topics", decisions, trust, template="name_topics")
    return topics.with_columns(pl.Series("name", [answers[d.key] for d in decisions]))


def taxonomy_v1(named: pl.DataFrame) -> Taxonomy:
    """Merge topics that got the same name into categories (unclear topics stay unassigned)."""
    tax = Taxonomy(1)
    for row in named.filter(pl.col("name") != UNCLEAR).iter_rows(named=True):
        cat = tax.categories.setdefault(row["name"], {"keywords": [], "topics": []})
        cat["topics"].append(row["topic_id"])
        cat["keywords"] += [w for w in row["keywords"] if w not in cat["keywords"]]
    for name in tax.categories:
        tax.changes.append({"change": "add", "category": name, "detail": "named from topics "
                            + ", ".join(map(str, tax.categories[name]["topics"])), "decided_by": "-"})
    return tax


def diff(a: Taxonomy, b: Taxonomy) -> pl.DataFrame:
    """What changed from version ``a`` to ``b`` (added, removed, merged, kept)."""
    rows = [{"change": c["change"], "category": c["category"], "detail": c["detail"],
             "decided_by": c["decided_by"]} for c in b.changes]
    for name in b.names:
        if name in a.categories and not any(r["category"] == name for r in rows):
            rows.append({"change": "keep", "category": name, "detail": "", "decided_by": "-"})
    return pl.DataFrame(rows, schema={"change": pl.String, "category": pl.String, "detail": pl.String,
                                      "decided_by": pl.String})
