"""Honest quality: hand-made labellings whose right answers are worked out by hand in each test."""

from __future__ import annotations

import polars as pl
import pytest

from hybridnb.corpus import _quality as Q
from hybridnb.corpus import _store


def frame(pred, true, sec=None, true_sec=None) -> pl.DataFrame:
    n = len(pred)
    return pl.DataFrame({"primary": pred, "secondary": sec or [None] * n, "true_primary": true,
                         "true_secondary": true_sec or [None] * n},
                        schema={c: pl.String for c in ("primary", "secondary", "true_primary", "true_secondary")})


def swapped():
    """Truth A 40 / B 30 / C 20 / D 10; the labeller sends 10 B segments to c, so a reader sees
    a 40, c 30, b 20, d 10: ranks (1,3,2,4) against (1,2,3,4) → Spearman 1 - 6·2/(4·15) = 0.8."""
    true = ["A"] * 40 + ["B"] * 30 + ["C"] * 20 + ["D"] * 10
    pred = ["a"] * 40 + ["b"] * 20 + ["c"] * 10 + ["c"] * 20 + ["d"] * 10
    return frame(pred, true)


def test_spearman_known_values():
    assert Q.spearman([4, 3, 2, 1], [4, 3, 1, 2]) == pytest.approx(0.8)
    assert Q.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert Q.spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(0.8660254)  # ties get average ranks


def test_top_k_needs_the_same_names_in_the_same_order():
    assert Q.top_k_correct(["A", "B", "C"], ["A", "B", "C"], 2)
    assert not Q.top_k_correct(["B", "A", "C"], ["A", "B", "C"], 2)
    assert not Q.top_k_correct([None, "A", "B"], ["A", "B"], 2)  # a noise label ranked first
    assert Q.top_k_correct(["A", "B", None], ["A", "B", "C"], 2)
    assert not Q.top_k_correct(["A", "B", None], ["A", "B", "C"], 3)


def test_one_to_one_never_gives_a_true_category_twice():
    # x: 30 A; y: 20 A + 5 B. Majority would map both to A; one-to-one maps y to B.
    pred = ["x"] * 30 + ["y"] * 25
    true = ["A"] * 50 + ["B"] * 5
    assert Q.one_to_one(pred, true) == {"x": "A", "y": "B"}


def test_one_to_one_leaves_a_surplus_category_unmapped_and_noise_is_a_class():
    pred = ["a"] * 10 + ["b"] * 3 + [None] * 4
    true = ["A"] * 12 + [None] * 5
    assert Q.one_to_one(pred, true) == {"a": "A", "b": None, Q.NOISE: Q.NOISE}


def test_ranking_figures_compare_what_a_reader_sees_with_the_truth():
    q = Q.evaluate_frame(swapped())
    assert q.kind == "truth"
    assert q.figures["spearman_primary"] == pytest.approx(0.8)  # truth vs truth would be 1.0
    assert q.figures["top2_correct"] == 0.0 and q.figures["top3_correct"] == 0.0
    assert q.figures["primary_share_max_error"] == pytest.approx(0.10)
    b = q.per_category.filter(pl.col("true_category") == "B").row(0, named=True)
    assert (b["precision"], b["recall"]) == (pytest.approx(1.0), pytest.approx(20 / 30))
    c = q.per_category.filter(pl.col("true_category") == "C").row(0, named=True)
    assert (c["precision"], c["recall"]) == (pytest.approx(20 / 30), pytest.approx(1.0))


def test_a_label_that_is_mostly_noise_ranked_first_is_an_error_not_dropped():
    """Truth A 30, B 20, noise 50. 'Cloud' holds 40 noise segments and leads the seen ranking
    (40/90); the off-topic label holds the other 10. Seen shares (.444, .333, .222) against true
    (0, .6, .4): ranks (3,2,1) vs (1,3,2), Σd² = 6 → Spearman 1 - 36/24 = -0.5."""
    true = ["A"] * 30 + ["B"] * 20 + [None] * 50
    pred = ["a"] * 30 + ["b"] * 20 + ["Cloud"] * 40 + [None] * 10
    q = Q.evaluate_frame(frame(pred, true))
    first = q.ranking_check.row(0, named=True)
    assert first["category"] == "Cloud" and first["true_category"] is None
    assert first["status"] in ("noise", "mostly noise")
    assert q.figures["top2_correct"] == 0.0
    assert q.figures["spearman_primary"] == pytest.approx(-0.5)
    assert q.figures["n_mostly_noise"] == 1.0
    assert q.figures["noise_recovered"] == pytest.approx(40 / 50)  # Cloud took the noise class


def test_mostly_noise_label_mapped_to_a_true_category_still_counts_against_it():
    # 'Cloud' holds 25 A-segments (all of A) and 30 noise; the off-topic label holds 40 noise, so the
    # noise class goes to the off-topic label and Cloud maps to A. Mapped naively, the reader's ranking
    # (Cloud→A, b→B) would equal the truth (A 25, B 10); but Cloud is 30/55 noise, so it is an error.
    true = ["A"] * 25 + [None] * 30 + ["B"] * 10 + [None] * 40
    pred = ["Cloud"] * 55 + ["b"] * 10 + [None] * 40
    q = Q.evaluate_frame(frame(pred, true))
    cloud = q.ranking_check.filter(pl.col("category") == "Cloud").row(0, named=True)
    assert cloud["status"] == "mostly noise" and cloud["true_share"] == 0.0
    assert Q.one_to_one(pred, true)["Cloud"] == "A"
    assert q.figures["top2_correct"] == 0.0  # the reader sees a mostly-noise label first


def test_unmapped_category_is_listed_with_zero_precision():
    pred = ["a"] * 10 + ["b"] * 3 + [None] * 4
    true = ["A"] * 12 + ["A"] + [None] * 4
    q = Q.evaluate_frame(frame(pred, true))
    assert q.unmapped == ["b"] and q.figures["n_unmapped"] == 1.0
    row = q.per_category.filter(pl.col("discovered") == "b").row(0, named=True)
    assert row["seen_segments"] == 3 and row["precision"] == 0.0
    assert "unmapped: b" in q.to_markdown()


def test_noise_and_secondary_share_figures():
    # 20 true noise, 10 of them labelled off-topic; secondary B true on 20 of 80 on-topic,
    # seen as b on 10 of 90 labelled on-topic.
    true = ["A"] * 80 + [None] * 20
    pred = ["a"] * 80 + ["a"] * 10 + [None] * 10
    true_sec = ["B"] * 20 + [None] * 80
    sec = ["b"] * 10 + [None] * 90
    q = Q.evaluate_frame(frame(pred, true, sec, true_sec))
    assert q.figures["noise_recovered"] == pytest.approx(0.5)
    assert q.figures["noise_true_share"] == pytest.approx(0.2)
    assert q.figures["noise_seen_share"] == pytest.approx(0.1)
    df = frame(pred, true, sec, true_sec)
    sec_check = Q.secondary_check(df, Q.one_to_one(df["primary"], df["true_primary"]))
    err = dict(zip(sec_check["true_category"], sec_check["secondary_error"]))
    # b is no primary category, so it maps to nothing: B's seen secondary share is 0 against a true
    # 20/80, and b's 10/90 counts as an error of its own
    assert err["B"] == pytest.approx(-0.25) and err["unmapped:b"] == pytest.approx(10 / 90)
    assert q.figures["secondary_share_max_error"] == pytest.approx(0.25)


def test_wilson_interval_known_value():
    low, high = Q.wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)


def _db(tmp_path):
    return _store.open_store(tmp_path / "q.duckdb")


def test_evaluate_writes_truth_figures_to_the_db(labelled_store):
    con = labelled_store(swapped())
    q = Q.evaluate(con)
    got = dict(con.execute("SELECT name, value FROM results WHERE name LIKE 'quality.%'").fetchall())
    assert q.kind == "truth" and got["quality.spearman_primary"] == pytest.approx(0.8)
    assert got["quality.top2_correct"] == 0.0
    assert "against the input's truth column" in q.to_markdown()


def test_evaluate_without_truth_reports_agreement_with_an_interval(tmp_path):
    con = _db(tmp_path)
    con.execute("""INSERT INTO labels (segment_id, round, label, source, split) VALUES
        (0, 1, 'x', 'reason', 'validate'), (0, 2, 'y', 'reason', 'validate'),
        (1, 1, 'y', 'reason', 'validate'), (2, 1, NULL, 'reason', 'validate'),
        (3, 1, 'x', 'reason', 'validate'), (4, 1, 'x', 'evidence', 'validate'),
        (5, 1, 'x', 'reason', 'train')""")
    con.execute("""INSERT INTO final_labels (segment_id, primary_label) VALUES
        (0, 'y'), (1, 'y'), (2, NULL), (3, 'y'), (4, 'y'), (5, 'y')""")
    q = Q.evaluate(con)
    # held out: 0→y (latest round), 1→y, 2→off-topic, 3→x; local agrees on 0, 1, 2 → 3/4
    assert q.kind == "agreement" and q.figures["agreement"] == pytest.approx(0.75)
    low, high = Q.wilson(3, 4)
    assert (q.figures["agreement_low"], q.figures["agreement_high"]) == (pytest.approx(low), pytest.approx(high))
    assert low < 0.75 < high
    assert "agreement with held-out reasoning-route labels" in q.to_markdown()
    kind = con.execute("SELECT detail FROM results WHERE name = 'quality.kind'").fetchall()[0][0]
    assert '"agreement"' in kind


def test_offline_agreement_says_it_is_against_the_stand_in(tmp_path):
    con = _db(tmp_path)
    con.execute("""INSERT INTO labels (segment_id, round, label, source, split) VALUES
        (0, 1, 'x', 'stand-in', 'validate'), (1, 1, 'y', 'stand-in', 'validate')""")
    con.execute("INSERT INTO final_labels (segment_id, primary_label) VALUES (0, 'x'), (1, 'x')")
    q = Q.evaluate(con)
    assert q.figures["agreement"] == pytest.approx(0.5) and q.basis == Q.STAND_IN
    assert "not a model" in q.to_markdown() and "reasoning-route" not in q.to_markdown()


def test_without_secondary_truth_secondary_shares_are_not_scored(labelled_store):
    # secondary labels seen, but the truth has no secondary column: no error figure against zero
    con = labelled_store(frame(["a"] * 6 + ["b"] * 4, ["A"] * 6 + ["B"] * 4, ["b"] * 3 + [None] * 7))
    q = Q.evaluate(con)
    text = q.to_markdown()
    assert "no secondary truth column: secondary shares not scored" in text
    assert "secondary share error" not in text and "secondary_error" not in q.per_category.columns
    got = dict(con.execute("SELECT name, value FROM results WHERE name LIKE 'quality.secondary%'").fetchall())
    assert got["quality.secondary_scored"] == 0.0 and got["quality.secondary_share_mae"] is None
    # with a secondary truth the same seen shares are scored
    scored = Q.evaluate_frame(frame(["a"] * 6 + ["b"] * 4, ["A"] * 6 + ["B"] * 4, ["b"] * 3 + [None] * 7,
                                    ["B"] * 3 + [None] * 7))
    assert scored.figures["secondary_scored"] == 1.0 and "secondary share error" in scored.to_markdown()
