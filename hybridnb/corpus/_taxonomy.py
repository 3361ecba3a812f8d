"""Taxonomy v1 on the reasoning route, free-form: name every topic, then consolidate.

Per topic the model proposes a short name, a one-line description and whether the topic is
off-topic (JSON schema), from the topic's keywords and representative segments; one
consolidation call merges near-duplicates into categories (JSON schema). Offline, the
deterministic stand-in answers instead (and is named so): it names a topic from its own
c-TF-IDF keywords, calls it off-topic when its segments hardly use the corpus's common
vocabulary, and merges topics by centroid similarity and keyword overlap, cutting the merge tree
at its largest gap (into sqrt(topics) groups when that cut is degenerate and no real gap). An analyst's
prior codebook is a hint, never required.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from ..errors import CorpusError
from ._reasoning import Ask, ask

GAP_RATIO = 10  # a merge-tree gap is a real cut when it is >= this many times the median step of the upper half
OFF_RATE = 0.35  # off-topic: the topic uses the corpus's common words < this share of the median topic's rate
NAME = {"type": "string", "maxLength": 60}
TEXT = {"type": "string", "maxLength": 300}
RELEVANCE = {"type": "string", "enum": ["on-topic", "off-topic"]}
TOPIC_SCHEMA = {"type": "object", "properties": {"name": NAME, "description": TEXT, "relevance": RELEVANCE},
                "required": ["name", "description", "relevance"]}
CONSOLIDATE_SCHEMA = {"type": "object", "required": ["categories"], "properties": {"categories": {
    "type": "array", "items": {"type": "object", "required": ["name", "description", "topics", "relevance"],
                               "properties": {"name": NAME, "description": TEXT, "relevance": RELEVANCE,
                                              "topics": {"type": "array", "items": {"type": "integer"}}}}}}}


@dataclass
class Taxonomy:
    """One taxonomy version: categories (name -> description, keywords, topics, off_topic) and changes."""

    version: int
    categories: dict[str, dict] = field(default_factory=dict)
    changes: list[dict] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """On-topic category names (the label set), sorted."""
        return sorted(k for k, v in self.categories.items() if not v.get("off_topic"))

    def topic_map(self) -> dict[int, str | None]:
        """topic id -> category name (None for an off-topic category)."""
        return {int(t): (None if v.get("off_topic") else k) for k, v in self.categories.items() for t in v["topics"]}

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame([{"version": self.version, "category": k, "description": v.get("description", ""),
                              "keywords": " ".join(v["keywords"][:12]), "topics": json.dumps(sorted(v["topics"])),
                              "is_noise": bool(v.get("off_topic"))} for k, v in sorted(self.categories.items())],
                            schema={"version": pl.Int32, "category": pl.String, "description": pl.String,
                                    "keywords": pl.String, "topics": pl.String, "is_noise": pl.Boolean})


def read_prior(codebook) -> dict[str, str]:
    """A prior codebook (dict, or a JSON/TOML file of name -> description/words) as name -> text."""
    if codebook is None:
        return {}
    if isinstance(codebook, (str, Path)):
        path = Path(codebook)
        if not path.is_file():
            raise CorpusError(f"codebook file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
            codebook = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorpusError(f"codebook {path} is not valid JSON/TOML: {exc}") from exc
    if not isinstance(codebook, dict) or not codebook:
        raise CorpusError("a codebook is a non-empty mapping of category name -> description or words")
    return {str(k): " ".join(v) if isinstance(v, list) else str(v) for k, v in codebook.items()}


def off_topic_flags(common_rate, sizes, keywords: list[list[str]]) -> np.ndarray:
    """Topics whose segments hardly use the words the rest of the corpus shares (below
    :data:`OFF_RATE` of the size-weighted median topic), or whose keywords are mostly garbled
    function words (one edit away from a stop word: transcription noise)."""
    rate = np.nan_to_num(np.asarray(common_rate, float), nan=1.0)
    sizes = np.asarray(sizes, float)
    order = np.argsort(rate)
    cum = np.cumsum(sizes[order])
    med = float(rate[order][np.searchsorted(cum, cum[-1] / 2)]) if len(rate) else 0.0
    low = rate < OFF_RATE * med if med > 0 else np.zeros(len(rate), bool)
    garbled = np.array([np.mean([_near_stop(w) for w in kw[:12]]) >= 0.5 if kw else False for kw in keywords])
    return low | garbled


def _near_stop(word: str) -> bool:
    """One deletion, insertion, substitution or swap away from a stop word (and not one itself)."""
    from ._discover import STOP_WORDS

    if word in STOP_WORDS or len(word) > 9:
        return False
    for stop in STOP_WORDS:
        if abs(len(stop) - len(word)) <= 1 and _one_edit(word, stop):
            return True
    return False


def _one_edit(a: str, b: str) -> bool:
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                                  and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def _hint(keywords: list[str], book: dict[str, str]) -> str | None:
    """The codebook name whose words share most (>= 2) words with the topic's keywords."""
    kw = set(keywords[:12])
    best = max(book.items(), key=lambda kv: len(kw & set(kv[1].lower().split())), default=None)
    return best[0] if best and len(kw & set(best[1].lower().split())) >= 2 else None


def topic_asks(table: pl.DataFrame, texts: list[str], book: dict[str, str]) -> list[Ask]:
    off = off_topic_flags(table["common_rate"].to_numpy(), table["size"].to_numpy(), table["keywords"].to_list())
    asks = []
    for row, is_off in zip(table.iter_rows(named=True), off):
        kw = row["keywords"]
        reps = "\n".join(f"- {' '.join(texts[i].split()[:40])}" for i in row["representative_ids"][:4])
        hint = (f"\nThe analyst's prior codebook (a hint; use a name from it only if it fits): "
                f"{'; '.join(book)}." if book else "")
        prompt = (f"{' '.join(kw[:3])}: keywords of topic {row['topic_id']} ({row['size']:,} segments): "
                  f"{', '.join(kw)}.\nRepresentative segments:\n{reps}\n"
                  f"Propose a short category name and a one-line description, and say whether the topic is "
                  f"on-topic or off-topic (chit-chat, logistics, noise) for an analysis of this corpus.{hint}")
        name = _hint(kw, book) or " / ".join(kw[:3])
        evidence = {"name": name, "description": f"segments about {', '.join(kw[:6])}",
                    "relevance": "off-topic" if is_off else "on-topic"}
        asks.append(Ask(f"topic:{row['topic_id']}", prompt, evidence, TOPIC_SCHEMA, max_tokens=200))
    return asks


def similarity(centroids: np.ndarray, keywords: list[list[str]]) -> np.ndarray:
    """Mean of centroid cosine and keyword Jaccard (top 10) between topics."""
    c = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    kw = [set(k[:10]) for k in keywords]
    jac = np.array([[len(a & b) / max(1, len(a | b)) for b in kw] for a in kw])
    return (c @ c.T + jac) / 2


def merge_groups(sim: np.ndarray) -> np.ndarray:
    """Average-linkage merge tree of topics, cut at the largest gap among its upper half of heights; when
    that cut leaves too few groups (< sqrt(topics)/2, at least 3) and the gap is no real one (< :data:`GAP_RATIO`
    times the median step there: heights rise smoothly, the last merge is no answer), cut into sqrt(topics) groups."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    if len(sim) < 3:
        return np.arange(len(sim))
    dist = np.clip(1 - sim, 0, 2)
    np.fill_diagonal(dist, 0)
    tree = linkage(squareform((dist + dist.T) / 2, checks=False), "average")
    h = tree[:, 2]
    lo = len(h) // 2  # over-clustered: at least half of the merges join parts of one theme
    steps = np.diff(h[lo - 1:])
    i = lo - 1 + int(np.argmax(steps)) if len(h) > 2 else len(h) - 1
    groups = fcluster(tree, (h[i] + h[min(i + 1, len(h) - 1)]) / 2, "distance") - 1
    few = groups.max() + 1 < max(3, round(len(sim) ** 0.5 / 2))  # e.g. all topics but one outlier together
    if few and len(steps) >= 8 and steps.max() < GAP_RATIO * np.median(steps):  # and no real gap: smooth heights
        return fcluster(tree, max(2, round(len(sim) ** 0.5)), "maxclust") - 1
    return groups


def consolidate_ask(table: pl.DataFrame, proposals: dict[int, dict], sim: np.ndarray) -> Ask:
    """One consolidation question; the stand-in's answer merges on-topic topics by :func:`merge_groups`."""
    ids = table["topic_id"].to_list()
    on = [i for i, t in enumerate(ids) if proposals[t]["relevance"] == "on-topic"]
    groups = merge_groups(sim[np.ix_(on, on)]) if on else np.array([], int)
    size = dict(zip(ids, table["size"].to_list()))
    cats = []
    for g in sorted(set(groups.tolist())):
        members = sorted((ids[on[j]] for j in np.flatnonzero(groups == g)), key=lambda t: -size[t])
        lead = proposals[members[0]]
        cats.append({"name": lead["name"], "description": lead["description"], "topics": members,
                     "relevance": "on-topic"})
    off = [t for t in ids if proposals[t]["relevance"] != "on-topic"]
    if off:
        cats.append({"name": "Off-topic", "description": "chit-chat, logistics and noise", "topics": off,
                     "relevance": "off-topic"})
    lines = "\n".join(f"- topic {t} ({size[t]:,} segments): {p['name']} — {p['description']} [{p['relevance']}]"
                      for t, p in proposals.items())
    prompt = ("Topics proposed for a corpus (one line each):\n" + lines +
              "\nMerge near-duplicates into categories an analyst would report; every topic goes into exactly "
              "one category; off-topic topics go into off-topic categories.")
    return Ask("consolidate", prompt, {"categories": cats}, CONSOLIDATE_SCHEMA, max_tokens=2000)


def taxonomy_v1(con, table: pl.DataFrame, texts: list[str], centroids: np.ndarray, trust: str,
                codebook=None) -> tuple[Taxonomy, dict[int, dict]]:
    """Name every topic and consolidate into v1 (reasoning route, or the stand-in offline)."""
    book = read_prior(codebook)
    answers = ask(con, "name_topics", topic_asks(table, texts, book), trust)
    proposals = {int(k.split(":")[1]): a.value for k, a in answers.items()}
    sim = similarity(centroids, table["keywords"].to_list())
    cons = ask(con, "consolidate", [consolidate_ask(table, proposals, sim)], trust)["consolidate"]
    cats = _checked(cons.value["categories"], set(proposals)) or consolidate_ask(table, proposals, sim).evidence["categories"]
    keywords = dict(zip(table["topic_id"].to_list(), table["keywords"].to_list()))
    tax = Taxonomy(1)
    for c in cats:
        name = _unique(c["name"].strip(), tax.categories)
        kw = list(dict.fromkeys(w for t in c["topics"] for w in keywords[t][:6]))
        tax.categories[name] = {"description": c["description"], "keywords": kw, "topics": list(c["topics"]),
                                "off_topic": c["relevance"] == "off-topic"}
        tax.changes.append({"change": "add", "category": name, "detail": f"topics {sorted(c['topics'])}",
                            "decided_by": cons.decided_by})
    if len(tax.names) < 2:
        raise CorpusError(f"the taxonomy has {len(tax.names)} on-topic categories: too few to rank "
                          "(the corpus may be too small or too uniform)")
    return tax, proposals


def _checked(cats, topics: set[int]):
    """The model's categories when every topic is in exactly one of them; else None."""
    seen = [t for c in cats for t in c["topics"]]
    return cats if sorted(seen) == sorted(topics) else None


def _unique(name: str, taken: dict) -> str:
    out, i = name or "category", 2
    while out in taken:
        out, i = f"{name} ({i})", i + 1
    return out


def diff(a: Taxonomy, b: Taxonomy) -> pl.DataFrame:
    """What changed from version ``a`` to ``b`` (each change with who decided it), plus kept categories."""
    rows = [{k: c[k] for k in ("change", "category", "detail", "decided_by")} for c in b.changes]
    touched = {r["category"] for r in rows}
    rows += [{"change": "keep", "category": n, "detail": "", "decided_by": "-"}
             for n in b.names if n in a.categories and n not in touched]
    return pl.DataFrame(rows, schema={"change": pl.String, "category": pl.String, "detail": pl.String,
                                      "decided_by": pl.String})
