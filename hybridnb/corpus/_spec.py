"""The generator's specification: categories with shares, and loading a custom shares file.

A shares file (TOML or JSON) may reuse built-in categories by id or define entirely new ones::

    multi_topic = 0.25                 # share of topical segments with a secondary concern
    frequent_secondary = "swarming"    # a category often mentioned second (default: cost, if present)
    frequent_secondary_rate = 0.4      # (alias: cost_secondary)
    noise_scale = 1.0                  # 0..1.6 × the default off-topic rates
    shared = "hive colony season ..."  # optional: words every category uses (default: the built-in list)

    [noise]                            # optional: off-topic words (both lists)
    logistics = "raffle marquee parking ..."
    banter = "cuppa biscuits drizzle ..."

    [categories.swarming]              # one table per category: share, and for a new id name + words
    name = "Swarm management"
    share = 0.15
    words = "swarm swarming cells split ..."   # at least 5, most frequent first; drift = 0.0 optional

or a ``[shares]`` table of ``id = share`` next to the ``[categories.*]`` tables. Shares must sum to 1.
``tests/corpus/data/invented_apiary.toml`` is a complete example with no word of the default vocabulary.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CorpusError
from . import _vocab

SHARE_TOLERANCE = 0.01


@dataclass(frozen=True)
class Category:
    """One CTO-priority category of the generator."""

    id: str
    name: str
    share: float
    drift: float
    words: tuple[str, ...]


@dataclass(frozen=True)
class Spec:
    """What the generator draws from: categories, multi-topic and noise rates."""

    categories: tuple[Category, ...]
    multi_topic: float = 0.25
    cost_secondary: float = 0.4
    noise_scale: float = 1.0
    source: str = "default"
    extra: dict = field(default_factory=dict)
    frequent_secondary: str | None = "cost"  # drawn as secondary at rate ``cost_secondary``
    shared: tuple[str, ...] | None = None  # words every category uses (None: the default list)
    noise_words: tuple[tuple[str, ...], tuple[str, ...]] | None = None  # (logistics, banter) words

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.categories]


def default_spec() -> Spec:
    """The default shares: risk/security and complexity lead, cost is a frequent secondary."""
    cats = tuple(Category(cid, name, share, drift, tuple(words.split()))
                 for cid, (name, share, drift, words) in _vocab.CATEGORIES.items())
    return Spec(cats)


def load_spec(shares: "str | Path | dict | Spec | None") -> Spec:
    """Resolve ``shares`` (None, a TOML/JSON path, a dict or a Spec) into a validated Spec."""
    if shares is None:
        return default_spec()
    if isinstance(shares, Spec):
        return shares
    if isinstance(shares, dict):
        return _from_dict(shares, "dict")
    return _from_dict(_read_file(Path(shares)), str(shares))


def _read_file(path: Path) -> dict:
    if not path.is_file():
        raise CorpusError(f"shares file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise CorpusError(f"shares file {path} is not valid {path.suffix[1:] or 'TOML'}: {exc}") from exc


def _from_dict(data: dict, source: str) -> Spec:
    if not isinstance(data, dict):
        raise CorpusError(f"shares in {source} must be a table/object")
    defs = data.get("categories", {}) or {}
    shares = data.get("shares")
    if shares is None:  # shares given inside each category table
        shares = {k: v.get("share") for k, v in defs.items() if isinstance(v, dict)}
    if not isinstance(shares, dict) or len(shares) < 2:
        raise CorpusError(f"shares in {source} must name at least 2 categories, got {len(shares or {})}")
    cats = tuple(_category(cid, share, defs.get(cid, {}), source) for cid, share in shares.items())
    total = sum(c.share for c in cats)
    if not math.isclose(total, 1.0, abs_tol=SHARE_TOLERANCE):
        raise CorpusError(f"shares in {source} sum to {total:.4f}, not 1 (tolerance {SHARE_TOLERANCE})")
    multi = _rate(data, "multi_topic", 0.25, source)
    cost2 = _rate(data, "frequent_secondary_rate" if "frequent_secondary_rate" in data else "cost_secondary",
                  0.4, source)
    noise = float(data.get("noise_scale", 1.0))
    if not 0 <= noise <= 1.6:
        raise CorpusError(f"noise_scale in {source} must be within [0, 1.6], got {noise}")
    ids = [c.id for c in cats]
    frequent = data.get("frequent_secondary", "cost" if "cost" in ids else None)
    if frequent is not None and frequent not in ids:
        raise CorpusError(f"frequent_secondary {frequent!r} in {source} is not one of its categories: {ids}")
    shared = _words(data["shared"], "shared", source) if "shared" in data else None
    noise_words = None
    if "noise" in data:
        table = data["noise"] if isinstance(data["noise"], dict) else {}
        if set(table) != {"logistics", "banter"}:
            raise CorpusError(f"noise in {source} must be a table with `logistics` and `banter` word lists")
        noise_words = (_words(table["logistics"], "noise.logistics", source),
                       _words(table["banter"], "noise.banter", source))
    return Spec(cats, multi, cost2, noise, source, frequent_secondary=frequent, shared=shared,
                noise_words=noise_words)


def _words(value, what: str, source: str) -> tuple[str, ...]:
    words = value.split() if isinstance(value, str) else value
    if not isinstance(words, (list, tuple)) or len(words) < 5 or not all(isinstance(w, str) for w in words):
        raise CorpusError(f"{what} in {source} must be at least 5 words (a string or a list of strings)")
    return tuple(words)


def _rate(data: dict, key: str, default: float, source: str) -> float:
    value = data.get(key, default)
    if not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise CorpusError(f"{key} in {source} must be a number within [0, 1], got {value!r}")
    return float(value)


def _category(cid: str, share, definition: dict, source: str) -> Category:
    if not isinstance(share, (int, float)) or isinstance(share, bool) or share < 0:
        raise CorpusError(f"share of {cid!r} in {source} must be a number >= 0, got {share!r}")
    known = _vocab.CATEGORIES.get(cid)
    words = definition.get("words", known[3] if known else None)
    if words is None:
        raise CorpusError(f"category {cid!r} in {source} is not a built-in one and has no `words`")
    if isinstance(words, str):
        words = words.split()
    if len(words) < 5:
        raise CorpusError(f"category {cid!r} in {source} needs at least 5 words, got {len(words)}")
    name = definition.get("name", known[0] if known else cid.replace("_", " ").title())
    drift = float(definition.get("drift", known[2] if known else 0.0))
    return Category(cid, str(name), float(share), drift, tuple(str(w) for w in words))
