"""Exact values of the corpus quality figures (issue 17) on hand-made labellings.

Every expected number is worked out by hand in the docstring or comment next to it, and where an
independent implementation exists (scipy's Spearman, scikit-learn's F1, a brute-force search over
every one-to-one assignment) the test also checks against it.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings

import numpy as np
import polars as pl
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import precision_recall_fscore_support

from hybridnb.corpus import _quality as Q
from hybridnb.corpus import _store

N = Q.NOISE
COLS = ("primary", "secondary", "true_primary", "true_secondary")


def frame(pairs, sec=None, true_sec=None) -> pl.DataFrame:
    """A frame from (seen primary, true primary) pairs given as [(pred, true, count), ...]."""
    pred = [p for p, _, k in pairs for _ in range(k)]
    true = [t for _, t, k in pairs for _ in range(k)]
    n = len(pred)
    return pl.DataFrame({"primary": pred, "secondary": sec or [None] * n, "true_primary": true,
                         "true_secondary": true_sec or [None] * n}, schema=dict.fromkeys(COLS, pl.String))


def worked():
    """11 segments. a: 3 A + 1 B; b: 2 B + 1 D; z: 1 A; off-topic: 2 noise + 1 B.

    Confusion (rows a, b, z, off-topic; columns A, B, D, noise): a 3 1 0 0, b 0 2 1 0, z 1 0 0 0,
    off-topic 0 1 0 2. The best one-to-one assignment a→A, b→B, off-topic→noise shares 7 segments;
    z is left over (A is taken) and D is never found."""
    return frame([("a", "A", 3), ("a", "B", 1), ("b", "B", 2), ("b", "D", 1), ("z", "A", 1),
                  (None, None, 2), (None, "B", 1)])


# --- one_to_one --------------------------------------------------------------------------------


def test_worked_example_mapping():
    df = worked()
    assert Q.one_to_one(df["primary"], df["true_primary"]) == {"a": "A", "b": "B", "z": None, N: N}


def test_a_pair_sharing_no_segment_is_no_mapping():
    """a: 3 A + 1 B, b: 1 A. a→A, b→B (3 + 0) beats a→B, b→A (1 + 1), but b shares nothing with B."""
    pred, true = ["a"] * 4 + ["b"], ["A", "A", "A", "B", "A"]
    assert Q.one_to_one(pred, true) == {"a": "A", "b": None}


def test_a_single_shared_segment_is_enough_to_map():
    assert Q.one_to_one(["a", "b"], ["A", "B"]) == {"a": "A", "b": "B"}
    assert Q.one_to_one([], []) == {}


def test_one_to_one_rejects_inputs_of_different_length_saying_the_lengths():
    with pytest.raises(ValueError, match=r"differ in length \(2 vs 1\)"):
        Q.one_to_one(["a", "b"], ["A"])


def _best_total(pred, true):
    """Brute force: the largest number of shared segments over every one-to-one assignment."""
    rows, cols = sorted(set(pred)), sorted(set(true))
    shared = {(r, c): sum(1 for p, t in zip(pred, true) if (p, t) == (r, c)) for r in rows for c in cols}
    best = 0
    for k in range(min(len(rows), len(cols)) + 1):
        for rs in itertools.combinations(rows, k):
            for cs in itertools.permutations(cols, k):
                best = max(best, sum(shared[r, c] for r, c in zip(rs, cs)))
    return best


@pytest.mark.parametrize("seed", range(8))
def test_one_to_one_is_the_best_assignment_found_by_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_pred, n_true = 3 + seed % 3, 2 + (seed * 7) % 4
    pred = [f"p{i}" for i in rng.integers(0, n_pred, 40)]
    true = [f"T{i}" for i in rng.integers(0, n_true, 40)]
    m = Q.one_to_one(pred, true)
    assert set(m) == set(pred)
    targets = [v for v in m.values() if v is not None]
    assert len(targets) == len(set(targets))  # no true category given twice
    got = sum(1 for p, t in zip(pred, true) if m[p] == t)
    assert got == _best_total(pred, true)
    assert all(any(p == k and t == v for p, t in zip(pred, true)) for k, v in m.items() if v is not None)


# --- per_category and the figures of the worked example ----------------------------------------


def test_per_category_rows_of_the_worked_example():
    """A: 4 true, 4 seen (a), 3 hits: P = R = F1 = .75. B: 4 true, 3 seen (b), 2 hits: P 2/3, R 1/2,
    F1 = 2·(2/3)(1/2)/(7/6) = 4/7. D: 1 true, never seen: 0, 0, 0. noise: 2 true, 3 seen, 2 hits:
    P 2/3, R 1, F1 4/5. Largest first (A and B tie at 4: by name), noise last; then z, unmapped."""
    df = worked()
    pred, true = df["primary"].to_list(), df["true_primary"].to_list()
    cats = Q.per_category(pred, true, Q.one_to_one(pred, true))
    assert cats.columns == ["true_category", "discovered", "true_segments", "seen_segments", "precision",
                            "recall", "f1"]
    assert cats.rows() == [
        ("A", "a", 4, 4, pytest.approx(0.75), pytest.approx(0.75), pytest.approx(0.75)),
        ("B", "b", 4, 3, pytest.approx(2 / 3), pytest.approx(0.5), pytest.approx(4 / 7)),
        ("D", None, 1, 0, 0.0, 0.0, 0.0),
        (N, N, 2, 3, pytest.approx(2 / 3), 1.0, pytest.approx(0.8)),
        (None, "z", 0, 1, 0.0, None, None),
    ]
    # the same per-class figures from scikit-learn on the mapped labels
    yp, yt = Q.mapped_labels(pred, Q.one_to_one(pred, true)), [N if t is None else t for t in true]
    p, r, f, s = precision_recall_fscore_support(yt, yp, labels=["A", "B", "D", N], zero_division=0)
    assert cats["precision"].to_list()[:4] == pytest.approx(list(p))
    assert cats["recall"].to_list()[:4] == pytest.approx(list(r))
    assert cats["f1"].to_list()[:4] == pytest.approx(list(f))
    assert cats["true_segments"].to_list()[:4] == list(s)


def test_mapped_labels_of_the_worked_example():
    df = worked()
    m = Q.one_to_one(df["primary"], df["true_primary"])
    assert Q.mapped_labels(df["primary"], m) == ["A"] * 4 + ["B"] * 3 + ["unmapped:z"] + [N] * 3


def test_figures_of_the_worked_example():
    """Macro-F1 counts every true class, D's 0 included: (.75 + 4/7 + 0 + .8)/4. Accuracy: 3 + 2 + 2
    of 11. Seen shares (of the 8 on-topic labels): a 4/8, b 3/8, z 1/8; true (of 9): A 4/9, B 4/9,
    D 1/9. Rows a, b, z, D(missed): seen (.5, .375, .125, 0) vs true (4/9, 4/9, 0, 1/9)."""
    q = Q.evaluate_frame(worked())
    f = q.figures
    assert f["n_segments"] == 11.0
    assert f["macro_f1"] == pytest.approx((0.75 + 4 / 7 + 0 + 0.8) / 4)
    assert f["accuracy"] == pytest.approx(7 / 11)
    # ranks seen (4, 3, 2, 1) vs true (3.5, 3.5, 1, 2): Σ(dev·dev) 3.5 / √(5 · 4.5)
    assert f["spearman_primary"] == pytest.approx(3.5 / math.sqrt(22.5))
    assert f["spearman_primary"] == pytest.approx(spearmanr([0.5, 0.375, 0.125, 0], [4 / 9, 4 / 9, 0, 1 / 9])[0])
    assert (f["top2_correct"], f["top3_correct"]) == (1.0, 0.0)  # (A, B, z) vs (A, B, D)
    # |errors|: 1/18, 5/72, 1/8, 1/9 → mean 26/288; the max leaves out the missed D
    assert f["primary_share_mae"] == pytest.approx(26 / 288)
    assert f["primary_share_max_error"] == pytest.approx(1 / 8)
    assert f["noise_true_share"] == pytest.approx(2 / 11) and f["noise_seen_share"] == pytest.approx(3 / 11)
    assert f["noise_recovered"] == 1.0
    assert (f["n_discovered"], f["n_unmapped"], f["n_mostly_noise"], f["n_missed"]) == (3.0, 1.0, 0.0, 1.0)
    assert f["secondary_scored"] == 0.0
    assert math.isnan(f["secondary_share_mae"]) and math.isnan(f["secondary_share_max_error"])
    assert q.kind == "truth" and q.basis == Q.TRUTH and q.unmapped == ["z"]


def test_ranking_check_of_the_worked_example():
    q = Q.evaluate_frame(worked())
    assert q.ranking_check.columns == ["category", "true_category", "status", "seen_share", "true_share",
                                       "share_error"]
    assert q.ranking_check.rows() == [
        ("a", "A", "mapped", 0.5, pytest.approx(4 / 9), pytest.approx(1 / 18)),
        ("b", "B", "mapped", 0.375, pytest.approx(4 / 9), pytest.approx(-5 / 72)),
        ("z", None, "unmapped", 0.125, 0.0, 0.125),
        (None, "D", "missed", 0.0, pytest.approx(1 / 9), pytest.approx(-1 / 9)),
    ]


def test_report_text_of_the_worked_example():
    text = Q.evaluate_frame(worked()).to_markdown()
    lines = text.splitlines()
    assert "- macro-F1 0.530, accuracy 63.6 % over 11 segments" in lines  # .5304, 7/11
    assert ("- primary ranking: Spearman 0.738, top-2 correct yes, top-3 correct no, share error max 12.5 %"
            in lines)
    assert "- noise: 27.3 % labelled off-topic vs 18.2 % true; 100.0 % of true noise recovered" in lines
    assert "- no secondary truth column: secondary shares not scored" in lines
    assert "- 3 discovered categories; unmapped: z; mostly noise: 0; true categories missed: 1" in lines
    assert "| z | – | unmapped | 12.5 % | 0.0 % | 12.5 % |" in lines
    assert "| – | D | missed | 0.0 % | 11.1 % | -11.1 % |" in lines
    assert "| B | b | 4 | 3 | 66.7 % | 50.0 % | 57.1 % | 0.0 % |" in lines


def test_per_category_with_as_many_rows_as_columns_is_still_read_row_by_row():
    """Six true classes (A 6 + 1 taken by z, B 5, C 4, D 3, E 2, noise 1) and one unmapped z: 7 rows,
    as many as the table has columns. A: 6 of 7 found, precision 1."""
    pairs = [("a", "A", 6), ("b", "B", 5), ("c", "C", 4), ("d", "D", 3), ("e", "E", 2), (None, None, 1),
             ("z", "A", 1)]
    df = frame(pairs)
    cats = Q.evaluate_frame(df).per_category
    assert cats["true_category"].to_list() == ["A", "B", "C", "D", "E", N, None]
    assert cats["discovered"].to_list() == ["a", "b", "c", "d", "e", N, "z"]
    assert cats["true_segments"].to_list() == [7, 5, 4, 3, 2, 1, 0]
    assert cats["seen_segments"].to_list() == [6, 5, 4, 3, 2, 1, 1]
    assert cats["recall"].to_list()[:6] == pytest.approx([6 / 7, 1, 1, 1, 1, 1])


def test_ranking_check_with_as_many_rows_as_columns_is_still_read_row_by_row():
    """a 4 A, b 3 B, c 2 C, d 1 D and z 2 (of A): 5 rows, as many as the table builds. Seen shares of
    12: a 4, b 3, c 2, z 2, d 1; c and z tie at 2/12: c (true 2/12) before z (true 0)."""
    df = frame([("a", "A", 4), ("b", "B", 3), ("c", "C", 2), ("d", "D", 1), ("z", "A", 2)])
    check = Q.evaluate_frame(df).ranking_check
    assert check["category"].to_list() == ["a", "b", "c", "z", "d"]
    assert check["status"].to_list() == ["mapped"] * 3 + ["unmapped", "mapped"]
    assert check["true_share"].to_list() == pytest.approx([6 / 12, 3 / 12, 2 / 12, 0, 1 / 12])


# --- ranking: statuses, ties, top-k ------------------------------------------------------------


def test_exactly_half_noise_is_not_mostly_noise():
    """a: 2 A + 2 noise (half: still mapped); b: 1 B + 2 noise (2/3: mostly noise, so B is missed);
    off-topic: 3 noise. Seen shares of 7: a 4/7, b 3/7; true of 3: A 2/3, B 1/3."""
    df = frame([("a", "A", 2), ("a", None, 2), ("b", "B", 1), ("b", None, 2), (None, None, 3)])
    q = Q.evaluate_frame(df)
    assert Q.one_to_one(df["primary"], df["true_primary"]) == {"a": "A", "b": "B", N: N}
    assert q.ranking_check.rows() == [
        ("a", "A", "mapped", pytest.approx(4 / 7), pytest.approx(2 / 3), pytest.approx(4 / 7 - 2 / 3)),
        ("b", None, "mostly noise", pytest.approx(3 / 7), 0.0, pytest.approx(3 / 7)),
        (None, "B", "missed", 0.0, pytest.approx(1 / 3), pytest.approx(-1 / 3)),
    ]
    assert (q.figures["n_mostly_noise"], q.figures["n_missed"], q.figures["n_unmapped"]) == (1.0, 1.0, 0.0)
    assert q.figures["primary_share_max_error"] == pytest.approx(3 / 7)


def test_off_topic_is_never_matched_to_a_true_category_when_the_truth_has_no_noise():
    """a: 3 A; the labeller calls 3 B segments off-topic. Off-topic is not a discovered category: B was
    missed (before, the matching paired off-topic with B and scored every segment right)."""
    df = frame([("a", "A", 3), (None, "B", 3)])
    assert Q.one_to_one(df["primary"].to_list(), df["true_primary"].to_list()) == {"a": "A", Q.NOISE: Q.NOISE}
    q = Q.evaluate_frame(df)
    assert [r[:7] for r in q.per_category.rows()] == [("A", "a", 3, 3, 1.0, 1.0, 1.0), ("B", None, 3, 0, 0.0, 0.0, 0.0)]
    f = q.figures
    assert (f["accuracy"], f["macro_f1"], f["n_discovered"], f["n_unmapped"], f["n_missed"]) == (0.5, 0.5, 1, 0, 1)
    assert q.unmapped == []
    assert q.ranking_check.rows() == [("a", "A", "mapped", 1.0, 0.5, 0.5), (None, "B", "missed", 0.0, 0.5, -0.5)]


def test_off_topic_maps_to_true_noise_even_when_it_shares_more_with_a_category():
    """a: 2 A; off-topic: 3 B + 1 noise. Off-topic pairs with noise (1), not B (3): B was missed."""
    df = frame([("a", "A", 2), (None, "B", 3), (None, None, 1)])
    pred, true = df["primary"].to_list(), df["true_primary"].to_list()
    assert Q.one_to_one(pred, true) == {"a": "A", Q.NOISE: Q.NOISE}
    f = Q.evaluate_frame(df).figures
    assert (f["accuracy"], f["noise_recovered"], f["n_missed"]) == (0.5, 1.0, 1)


def test_a_category_mapped_to_the_noise_class_has_status_noise():
    """a: 2 A; c: 3 noise; off-topic: 1 noise. c takes the noise class (3 > 1); the off-topic label
    is left unmapped. c holds 3/5 of the seen labels against a true share of 0."""
    df = frame([("a", "A", 2), ("c", None, 3), (None, None, 1)])
    q = Q.evaluate_frame(df)
    assert q.ranking_check.rows() == [("c", None, "noise", 0.6, 0.0, 0.6), ("a", "A", "mapped", 0.4, 1.0, -0.6)]
    assert q.figures["n_mostly_noise"] == 1.0
    assert q.figures["noise_recovered"] == pytest.approx(3 / 4)  # c's 3 of the 4 true noise


def test_seen_ties_are_broken_by_true_share_then_name():
    """a: 2 A, b: 1 A + 1 B → a→A, b→B; seen a .5, b .5 (a first: true A .75 > B .25). y and z: each
    1 segment of A, unmapped, equal shares: by name. Missed C (.2) before missed D (.1)."""
    df = frame([("a", "A", 2), ("b", "A", 1), ("b", "B", 1)])
    check = Q.evaluate_frame(df).ranking_check
    assert check["category"].to_list() == ["a", "b"]
    df = frame([("a", "A", 4), ("z", "A", 1), ("y", "A", 1), (None, "C", 2), (None, "D", 1), (None, None, 1)])
    check = Q.evaluate_frame(df).ranking_check
    assert check["category"].to_list() == ["a", "y", "z", None, None]
    assert check["true_category"].to_list() == ["A", None, None, "C", "D"]


def test_top2_on_a_tie_in_the_seen_ranking_follows_the_name_order():
    """a and b each .5 of the seen labels; a→A (true .75), b→B (.25): the reader's order a, b is
    the true order A, B."""
    q = Q.evaluate_frame(frame([("b", "B", 1), ("b", "A", 1), ("a", "A", 2)]))
    assert q.figures["top2_correct"] == 1.0


def test_a_tie_in_the_truth_is_ordered_by_name():
    """True A .5, B .5; the reader sees a (→A) .6, b (→B) .4: top-2 right only if the tie is A, B."""
    q = Q.evaluate_frame(frame([("a", "A", 5), ("a", "B", 1), ("b", "B", 4)]))
    assert q.figures["top2_correct"] == 1.0
    q = Q.evaluate_frame(frame([("b", "B", 5), ("b", "A", 1), ("a", "A", 4)]))
    assert q.figures["top2_correct"] == 0.0  # b (→B) seen first, truth tie ordered A, B


def test_one_true_category_never_makes_a_correct_top_two():
    """Truth has only A; the reader sees a (→A) .75 and z (unmapped) .25."""
    q = Q.evaluate_frame(frame([("a", "A", 3), ("z", "A", 1)]))
    assert q.figures["top2_correct"] == 0.0 and q.figures["top3_correct"] == 0.0


def test_three_categories_all_in_order():
    q = Q.evaluate_frame(frame([("a", "A", 3), ("b", "B", 2), ("c", "C", 1)]))
    f = q.figures
    assert (f["top2_correct"], f["top3_correct"], f["spearman_primary"]) == (1.0, 1.0, pytest.approx(1.0))
    assert (f["macro_f1"], f["accuracy"], f["primary_share_mae"], f["primary_share_max_error"]) == (
        1.0, 1.0, 0.0, 0.0)
    assert math.isnan(f["noise_recovered"]) and f["noise_true_share"] == 0.0


def test_the_largest_share_error_leaves_out_missed_categories():
    """a: 1 A, b: 1 B, off-topic: 8 C. Seen a .5, b .5; true A .1, B .1, C .8. C is missed in the
    ranking: its -.8 counts in the mean |error| ((.4 + .4 + .8)/3) but not in the max (.4)."""
    q = Q.evaluate_frame(frame([("a", "A", 1), ("b", "B", 1), (None, "C", 8)]))
    assert q.ranking_check["status"].to_list() == ["mapped", "mapped", "missed"]
    assert q.figures["primary_share_max_error"] == pytest.approx(0.4)
    assert q.figures["primary_share_mae"] == pytest.approx(1.6 / 3)
    assert q.figures["n_missed"] == 1.0


def test_nothing_seen_on_topic():
    """Every segment labelled off-topic: no seen ranking (max error and Spearman undefined)."""
    q = Q.evaluate_frame(frame([(None, "A", 1), (None, "B", 1)]))
    assert q.ranking_check["status"].to_list() == ["missed", "missed"]
    assert math.isnan(q.figures["primary_share_max_error"]) and math.isnan(q.figures["spearman_primary"])
    assert q.figures["primary_share_mae"] == pytest.approx(0.5)
    assert (q.figures["top2_correct"], q.figures["noise_seen_share"], q.figures["n_discovered"]) == (0.0, 1.0, 0.0)


def test_a_single_segment():
    q = Q.evaluate_frame(frame([("a", "A", 1)]))
    assert q.ranking_check.rows() == [("a", "A", "mapped", 1.0, 1.0, 0.0)]


def test_everything_off_topic_on_both_sides_gives_figures_not_a_crash():
    """One segment, noise in the truth and off-topic in the labels: nothing on-topic to rank (no share
    error, no Spearman), the noise class found in full. (This used to raise TypeError: the mean of
    an empty ranking is None.)"""
    q = Q.evaluate_frame(frame([(None, None, 1)]))
    f = q.figures
    assert (f["noise_true_share"], f["noise_seen_share"], f["noise_recovered"]) == (1.0, 1.0, 1.0)
    assert (f["macro_f1"], f["accuracy"], f["n_discovered"], f["n_missed"]) == (1.0, 1.0, 0.0, 0.0)
    assert math.isnan(f["primary_share_mae"]) and math.isnan(f["primary_share_max_error"])
    assert q.ranking_check.height == 0 and q.per_category.rows() == [(N, N, 1, 1, 1.0, 1.0, 1.0, None)]
    assert "share error max –" in q.to_markdown()


def test_no_segments_gives_undefined_figures_not_a_crash():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NaN by design, not numpy's "mean of empty slice"
        q = Q.evaluate_frame(frame([]))
    f = q.figures
    assert (f["n_segments"], f["noise_true_share"], f["noise_seen_share"], f["top2_correct"]) == (0.0, 0.0, 0.0, 0.0)
    for k in ("macro_f1", "accuracy", "spearman_primary", "primary_share_mae", "noise_recovered"):
        assert math.isnan(f[k]), k
    assert "- macro-F1 –, accuracy – over 0 segments" in q.to_markdown().splitlines()


# --- secondary shares --------------------------------------------------------------------------


def test_secondary_shares_of_mapped_and_unmapped_labels():
    """a: 2 A, b: 2 B. Secondary seen: b on segment 1 (→B), a on segment 3 (→A): A .25, B .25 of the
    4 on-topic. True secondary: B on segment 1 only: B .25, A 0. Errors A +.25, B 0."""
    df = frame([("a", "A", 2), ("b", "B", 2)], sec=["b", None, "a", None], true_sec=["B", None, None, None])
    m = Q.one_to_one(df["primary"], df["true_primary"])
    assert Q.secondary_check(df, m).rows() == [("A", 0.25, 0.0, 0.25), ("B", 0.25, 0.25, 0.0)]
    q = Q.evaluate_frame(df)
    assert q.figures["secondary_scored"] == 1.0  # one secondary truth label is enough
    assert (q.figures["secondary_share_mae"], q.figures["secondary_share_max_error"]) == (0.125, 0.25)
    assert q.per_category.columns[-3:] == ["seen_secondary_share", "true_secondary_share", "secondary_error"]
    assert q.per_category.select("true_category", "secondary_error").rows() == [("A", 0.25), ("B", 0.0)]
    lines = q.to_markdown().splitlines()
    assert "- secondary share error: mean 12.5 %, max 25.0 %" in lines


def test_secondary_on_a_single_segment():
    df = frame([("a", "A", 1)], sec=["b"], true_sec=["B"])
    got = Q.secondary_check(df, Q.one_to_one(df["primary"], df["true_primary"]))
    assert got.rows() == [("A", 0.0, 0.0, 0.0), ("B", 0.0, 1.0, -1.0), ("unmapped:b", 1.0, 0.0, 1.0)]


def test_secondary_labels_of_the_noise_class_and_of_off_topic_segments_do_not_count():
    """c takes the noise class: a secondary c is no theme. The off-topic segment's secondary is not
    on-topic. Seen on-topic: 4 (a, a, c, c); secondary a on one of them: A .25."""
    df = frame([("a", "A", 2), ("c", None, 2), (None, "A", 1)], sec=["c", "a", None, "c", "a"],
               true_sec=["B", None, None, None, None])
    m = Q.one_to_one(df["primary"], df["true_primary"])
    assert m == {"a": "A", "c": N, N: None}
    assert Q.secondary_check(df, m).rows() == [("A", 0.25, 0.0, 0.25), ("B", 0.0, pytest.approx(1 / 3),
                                                                          pytest.approx(-1 / 3))]


def test_unscored_secondary_keeps_only_the_seen_share_and_no_error():
    """Seen secondary b on 1 of 2 segments, no secondary truth: seen share shown, no error figures."""
    q = Q.evaluate_frame(frame([("a", "A", 1), ("b", "B", 1)], sec=["b", None]))
    assert q.figures["secondary_scored"] == 0.0
    assert math.isnan(q.figures["secondary_share_mae"]) and math.isnan(q.figures["secondary_share_max_error"])
    assert q.per_category.columns == ["true_category", "discovered", "true_segments", "seen_segments",
                                      "precision", "recall", "f1", "seen_secondary_share"]
    assert q.per_category["seen_secondary_share"].to_list() == [0.0, 0.5]


def test_has_secondary_truth():
    df = frame([("a", "A", 2)])
    assert not Q.has_secondary_truth(df)  # column there, every value null
    assert not Q.has_secondary_truth(df.drop("true_secondary"))
    assert Q.has_secondary_truth(frame([("a", "A", 2)], true_sec=[None, "B"]))


# --- spearman, top_k_correct, wilson -----------------------------------------------------------


@pytest.mark.parametrize("a,b", [
    ([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]),
    ([0.4, 0.3, 0.2, 0.1], [0.1, 0.4, 0.3, 0.2]),
    ([1, 1, 2, 2], [1, 2, 3, 4]),  # ranks (1.5, 1.5, 3.5, 3.5): standard deviation exactly 1
    ([1, 2, 3, 4], [1, 1, 2, 2]),
    ([3, 1, 2], [1, 3, 3]),
])
def test_spearman_matches_scipy(a, b):
    assert Q.spearman(a, b) == pytest.approx(spearmanr(a, b)[0])


def test_spearman_by_hand():
    assert Q.spearman([1, 1, 2, 2], [1, 2, 3, 4]) == pytest.approx(4 / math.sqrt(20))  # 2·(1·1.5 + 1·.5)
    assert Q.spearman([1, 2], [2, 1]) == pytest.approx(-1.0)  # two points are enough
    assert Q.spearman([1, 2], [1, 2]) == pytest.approx(1.0)


def test_spearman_undefined_cases_are_nan_without_numpy_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a constant side must not reach np.corrcoef's division by zero
        assert math.isnan(Q.spearman([], []))
        assert math.isnan(Q.spearman([1], [2]))
        assert math.isnan(Q.spearman([2, 2, 2], [1, 2, 3]))
        assert math.isnan(Q.spearman([1, 2, 3], [5, 5, 5]))
    with pytest.raises(ValueError, match=r"differ in length \(3 vs 2\)"):
        Q.spearman([1, 2, 3], [1, 2])


def test_top_k_with_exactly_k_entries():
    assert Q.top_k_correct(["A", "B"], ["A", "B"], 2)
    assert not Q.top_k_correct(["A"], ["A"], 2)
    assert Q.top_k_correct(["A", "B", "C"], ["A", "B", "C"], 3)


def test_wilson_values():
    """p = 1 of 1: centre (1 + z²/2)/(1 + z²), half z/(1 + z²)·√(z²/4): low (1 + z²/2 - z²/2)/(1 + z²)."""
    z2 = Q.Z95 ** 2
    low, high = Q.wilson(1, 1)
    assert low == pytest.approx(1 / (1 + z2)) and high == 1.0
    assert Q.wilson(0, 5)[0] == 0.0
    assert Q.wilson(3, 4, z=1.0) == pytest.approx(((0.75 + 1 / 8 - math.sqrt(0.75 * 0.25 / 4 + 1 / 64)) / 1.25,
                                                   (0.75 + 1 / 8 + math.sqrt(0.75 * 0.25 / 4 + 1 / 64)) / 1.25))
    assert all(math.isnan(x) for x in Q.wilson(0, 0))


def test_wilson_upper_bound_never_exceeds_one():
    # at p = 1 the upper bound is 1 in exact arithmetic; in floating point centre + half can come out
    # a hair above 1 (here at n = 16), which the interval clips
    assert Q.wilson(16, 16)[1] == 1.0
    assert all(Q.wilson(n, n)[1] <= 1.0 for n in range(1, 200))


# --- agreement (no truth) ----------------------------------------------------------------------


def test_agreement_figures_and_per_label_rows():
    """Pairs (local, reference): x/x, y/x, off/off, x/off, y/y → 3 of 5 agree. Per reference label:
    noise 1 of 2, x 1 of 2, y 1 of 1."""
    q = Q.agreement([("x", "x"), ("y", "x"), (None, None), ("x", None), ("y", "y")])
    assert q.kind == "agreement" and q.basis == Q.REASONING
    assert q.figures == {"agreement": 0.6, "agreement_low": pytest.approx(Q.wilson(3, 5)[0]),
                         "agreement_high": pytest.approx(Q.wilson(3, 5)[1]), "agreement_n": 5.0}
    assert q.per_category.columns == ["reasoning_label", "held_out", "agreement"]
    assert q.per_category.rows() == [(N, 2, 0.5), ("x", 2, 0.5), ("y", 1, 1.0)]
    text = q.to_markdown()
    assert "The local labels agree with 60.0 % of 5 held-out reasoning-route labels" in text
    assert "| (noise) | 2 | 50.0 % |" in text.splitlines()


def test_agreement_with_nothing_held_out():
    q = Q.agreement([], basis=Q.STAND_IN)
    assert q.basis == Q.STAND_IN and q.figures["agreement_n"] == 0.0
    assert all(math.isnan(q.figures[k]) for k in ("agreement", "agreement_low", "agreement_high"))
    assert q.per_category.height == 0 and q.per_category.columns == ["reasoning_label", "held_out", "agreement"]


# --- evaluate: which kind, what lands in the results table ------------------------------------


def _db(tmp_path):
    return _store.open_store(tmp_path / "q.duckdb")


def _kind_detail(con):
    return json.loads(con.execute("SELECT detail FROM results WHERE name = 'quality.kind'").fetchall()[0][0])


def test_evaluate_with_nothing_to_compare_is_not_measured(tmp_path):
    con = _db(tmp_path)
    q = Q.evaluate(con)
    assert (q.kind, q.figures, q.unmapped, q.basis) == ("none", {}, [], "")
    assert _kind_detail(con) == {"kind": "none", "unmapped": [], "basis": ""}
    assert con.execute("SELECT count(*) FROM results WHERE name LIKE 'quality.%'").fetchall()[0][0] == 1
    assert q.to_markdown() == "**Quality:** not measured (no truth column and no held-out reasoning labels)."


def test_evaluate_with_final_labels_only_or_held_out_labels_only_is_not_measured(tmp_path):
    con = _db(tmp_path)
    con.execute("INSERT INTO final_labels (segment_id, primary_label) VALUES (0, 'x')")
    assert Q.evaluate(con).kind == "none"
    con2 = _store.open_store(tmp_path / "q2.duckdb")
    con2.execute("INSERT INTO labels (segment_id, round, label, source, split) VALUES (0, 1, 'x', 'reason', "
                 "'validate')")
    assert Q.evaluate(con2).kind == "none"


def test_evaluate_against_a_single_truth_row(tmp_path):
    con = _db(tmp_path)
    con.execute("INSERT INTO truth VALUES (0, 'A', NULL)")
    con.execute("INSERT INTO final_labels (segment_id, primary_label) VALUES (0, 'z')")
    q = Q.evaluate(con)
    assert q.kind == "truth" and q.figures["accuracy"] == 1.0  # z shares its one segment with A
    assert _kind_detail(con) == {"kind": "truth", "unmapped": [], "basis": Q.TRUTH}


def test_evaluate_records_the_unmapped_categories(labelled_store):
    con = labelled_store(worked())
    q = Q.evaluate(con)
    assert _kind_detail(con) == {"kind": "truth", "unmapped": ["z"], "basis": Q.TRUTH}
    got = dict(con.execute("SELECT name, value FROM results WHERE name LIKE 'quality.%' AND name != "
                           "'quality.kind'").fetchall())
    assert set(got) == {f"quality.{k}" for k in q.figures}
    assert got["quality.macro_f1"] == pytest.approx((0.75 + 4 / 7 + 0.8) / 4)
    assert got["quality.secondary_share_mae"] is None  # NaN is stored as NULL


def test_evaluate_when_truth_and_labels_share_no_segment(tmp_path):
    con = _db(tmp_path)
    con.execute("INSERT INTO truth VALUES (0, 'A', NULL)")
    con.execute("INSERT INTO final_labels (segment_id, primary_label) VALUES (1, 'a')")
    q = Q.evaluate(con)
    assert q.kind == "truth" and q.figures["n_segments"] == 0.0
    assert con.execute("SELECT value FROM results WHERE name = 'quality.macro_f1'").fetchall() == [(None,)]


def _agreement_db(tmp_path, rows):
    con = _db(tmp_path)
    con.executemany("INSERT INTO labels (segment_id, round, label, source, split) VALUES (?, 1, ?, ?, ?)", rows)
    con.executemany("INSERT INTO final_labels (segment_id, primary_label) VALUES (?, 'x')",
                    [(r[0],) for r in rows])
    return con


@pytest.mark.parametrize("sources,basis", [
    (["reason", "reason"], Q.REASONING),
    (["stand-in", "stand-in"], Q.STAND_IN),
    (["reason", "stand-in"], f"{Q.REASONING} and {Q.STAND_IN}"),
])
def test_agreement_basis_names_what_the_labels_came_from(tmp_path, sources, basis):
    con = _agreement_db(tmp_path, [(i, "x", s, "validate") for i, s in enumerate(sources)])
    q = Q.evaluate(con)
    assert (q.kind, q.basis, q.figures["agreement"]) == ("agreement", basis, 1.0)
    assert _kind_detail(con) == {"kind": "agreement", "unmapped": [], "basis": basis}


def test_agreement_with_no_held_out_label_says_reasoning_route_and_nan(tmp_path):
    con = _agreement_db(tmp_path, [(0, "x", "reason", "train"), (1, "x", "evidence", "validate")])
    q = Q.evaluate(con)
    assert (q.kind, q.basis, q.figures["agreement_n"]) == ("agreement", Q.REASONING, 0.0)
    got = dict(con.execute("SELECT name, value FROM results WHERE name LIKE 'quality.agreement%'").fetchall())
    assert got == {"quality.agreement": None, "quality.agreement_low": None, "quality.agreement_high": None,
                   "quality.agreement_n": 0.0}
