"""Taxonomy v1 → v2 changes on hand-made label rounds: a merge or drop never leaves fewer than two categories."""

from __future__ import annotations

import numpy as np

from hybridnb.corpus import _iterate
from hybridnb.corpus._taxonomy import Taxonomy


def v1(*names: str) -> Taxonomy:
    return Taxonomy(1, {n: {"description": "", "keywords": [], "topics": [i]} for i, n in enumerate(names)})


def crossing(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Round 1 where the first two categories swap 40 % of their segments; the rest stay put."""
    evidence, round1 = [], []
    for n in names[:2]:
        other = names[1] if n == names[0] else names[0]
        evidence += [n] * 100
        round1 += [n] * 60 + [other] * 40
    for n in names[2:]:
        evidence += [n] * 100
        round1 += [n] * 100
    return np.array(evidence, object), np.array(round1, object)


def test_stand_in_merges_crossing_categories_but_never_below_two():
    three = ["a / x", "b / y", "c / z"]
    ev, r1 = crossing(three)
    merges = [c for c in _iterate.stand_in_changes(v1(*three), ev, r1, {}, "reason") if c["change"] == "merge"]
    assert len(merges) == 1 and {merges[0]["category"], merges[0]["into"]} == {"a / x", "b / y"}
    two = ["a / x", "b / y"]
    ev, r1 = crossing(two)
    changes = _iterate.stand_in_changes(v1(*two), ev, r1, {}, "reason")
    assert not [c for c in changes if c["change"] in ("merge", "drop")]


def test_a_models_merge_or_drop_to_one_category_is_refused():
    tax = Taxonomy(2, v1("a", "b").categories)
    mapping = {"a": "a", "b": "b"}
    for ch in ({"change": "merge", "category": "a", "into": "b", "reason": ""},
               {"change": "drop", "category": "a", "into": "off-topic", "reason": ""}):
        assert _iterate._apply(tax, mapping, ch, "reason") == mapping
    assert tax.names == ["a", "b"] and not tax.changes
    three = Taxonomy(2, v1("a", "b", "c").categories)
    out = _iterate._apply(three, {"a": "a", "b": "b", "c": "c"}, {"change": "merge", "category": "a", "into": "b",
                                                                  "reason": ""}, "reason")
    assert out["a"] == "b" and three.names == ["b", "c"]
