"""The ranking figures on a hand-made ranking whose top-2 is right and top-3 wrong (issue 17): a metric
computed truth-vs-truth (Spearman 1.0) or a top-k that is always 0 fails here."""

from __future__ import annotations

import polars as pl
import pytest

from hybridnb.corpus import _quality as Q


def test_top_two_right_top_three_wrong_and_spearman_from_what_the_reader_sees():
    """Truth A 40 / B 30 / C 20 / D 10. The labeller puts 12 C segments in c and 8 C + 10 D in d, so a
    reader sees a .40, b .30, d .18, c .12 (c maps to C, d to D): ranks (1,2,4,3) against (1,2,3,4),
    Σd² = 2 → Spearman 1 - 6·2/(4·15) = 0.8; top-2 (A, B) right, top-3 (A, B, D) wrong."""
    true = ["A"] * 40 + ["B"] * 30 + ["C"] * 20 + ["D"] * 10
    pred = ["a"] * 40 + ["b"] * 30 + ["c"] * 12 + ["d"] * 8 + ["d"] * 10
    n = len(pred)
    df = pl.DataFrame({"primary": pred, "secondary": [None] * n, "true_primary": true,
                       "true_secondary": [None] * n},
                      schema={c: pl.String for c in ("primary", "secondary", "true_primary", "true_secondary")})
    assert Q.one_to_one(pred, true) == {"a": "A", "b": "B", "c": "C", "d": "D"}
    q = Q.evaluate_frame(df)
    seen = q.ranking_check.filter(pl.col("category").is_not_null())
    assert seen["category"].to_list() == ["a", "b", "d", "c"]
    assert seen["seen_share"].to_list() == pytest.approx([0.40, 0.30, 0.18, 0.12])
    assert seen["true_share"].to_list() == pytest.approx([0.40, 0.30, 0.10, 0.20])
    assert q.figures["spearman_primary"] == pytest.approx(0.8)
    assert q.figures["top2_correct"] == 1.0 and q.figures["top3_correct"] == 0.0
    assert q.figures["primary_share_max_error"] == pytest.approx(0.08)
