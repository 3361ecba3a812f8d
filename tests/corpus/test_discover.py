"""Discovery pieces on hand-made inputs: topical vs common words, the merge cut, off-topic flags,
category weights, and the stand-in's ledger economics."""

from __future__ import annotations

import numpy as np
import pytest

from hybridnb.corpus import _discover, _labels, _taxonomy

GROUPS = {"a": "alpha amber azure anvil aspen acorn", "b": "bison birch basil bronze brook bugle",
          "c": "cedar cobalt comet coral crane cumin"}
SHARED = "project team plan update"


def texts(n: int = 3_000, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    out, truth = [], []
    for _ in range(n):
        g = rng.choice(list(GROUPS))
        words = list(rng.choice(GROUPS[g].split(), 4)) + list(rng.choice(SHARED.split(), 2)) + ["um", "the"]
        rng.shuffle(words)
        out.append(" ".join(words))
        truth.append(g)
    return out, truth


def test_topical_and_common_words_are_told_apart():
    voc = _discover.vocabulary(texts()[0])
    assert set(" ".join(GROUPS.values()).split()) <= set(voc.topical)
    assert set(SHARED.split()) <= set(voc.common) and not set(SHARED.split()) & set(voc.topical)
    assert "um" not in voc.mass and "the" not in voc.mass  # stop words and fillers never count


def test_merge_cut_recovers_blocks_of_an_over_clustered_similarity():
    rng = np.random.default_rng(1)
    blocks = np.repeat(np.arange(4), 5)  # 20 topics, 4 themes
    sim = np.where(blocks[:, None] == blocks[None, :], 0.6, 0.02) + rng.uniform(0, 0.05, (20, 20))
    sim = (sim + sim.T) / 2
    groups = _taxonomy.merge_groups(sim)
    assert len(set(groups)) == 4
    assert all(len(set(groups[blocks == b])) == 1 for b in range(4))


def smooth_tree_with_an_outlier(levels: int = 5) -> np.ndarray:
    """Similarity whose average-linkage heights rise smoothly (a balanced tree of 2**levels topics,
    no real gap), then one outlier topic joins last with the largest step: the last merge is no cut."""
    n = 2 ** levels
    dist = np.zeros((n + 1, n + 1))
    for i in range(n):
        for j in range(n):
            if i != j:
                level = (i ^ j).bit_length()  # height of the lowest common ancestor
                dist[i, j] = 0.5 + 0.05 * (level - 1) + 0.04 * (i >> level) / (n >> level)
    dist[n, :n] = dist[:n, n] = dist.max() + 0.03
    return 1 - dist


def test_merge_cut_without_a_real_gap_keeps_several_groups():
    sim = smooth_tree_with_an_outlier()
    groups = _taxonomy.merge_groups(sim)
    sizes = np.bincount(groups)
    assert len(sizes) > 2 and sizes.max() <= len(sim) // 2  # not one group of everything + the outlier
    # the cut follows the tree: each quarter of the balanced tree falls into at most two groups
    quarters = np.arange(len(sim) - 1) // 8
    assert all(len(set(groups[:-1][quarters == q])) <= 2 for q in range(4))
    assert groups[-1] not in set(groups[:-1])  # the outlier stays apart


def test_off_topic_flags_low_common_rate_and_garbled_function_words():
    rate = [2.0, 1.8, 2.2, 0.0, 1.9]
    kw = [["alpha"], ["bison"], ["cedar"], ["thanks"], ["soo", "tink", "adn", "wee"]]
    flags = _taxonomy.off_topic_flags(rate, [100, 100, 100, 50, 40], kw)
    assert flags.tolist() == [False, False, False, True, True]
    assert _taxonomy._one_edit("adn", "and") and not _taxonomy._one_edit("cedar", "and")


def test_evidence_sums_topic_weights_per_category():
    topic_map = {0: "A", 1: "A", 2: "B", 3: None}
    top = np.array([[2, 0, 1, -1, -1], [3, 0, -1, -1, -1], [0, 2, -1, -1, -1]])
    w = np.array([[0.5, 0.3, 0.3, 0, 0], [0.9, 0.1, 0, 0, 0], [0.6, 0.1, 0, 0, 0]])
    prim, sec = _labels.evidence_labels(top, w, topic_map)
    # row 0: B alone is heaviest topic, but A's two topics sum to more -> A primary, B secondary
    assert prim.tolist() == ["A", "", "A"] and sec.tolist() == ["B", "", "B"]


def _rows(count: int, weights: dict[int, float]) -> np.ndarray:
    row = np.zeros(5)  # categories 0..3, last column off-topic
    for j, w in weights.items():
        row[j] = w
    return np.tile(row, (count, 1))


def test_a_theme_often_mentioned_in_passing_needs_more_evidence_to_be_the_subject():
    # category 2 is this corpus's frequent passing mention (of 0); 0 and 1 mention each other equally often
    M = np.vstack([_rows(1000, {0: 0.6, 2: 0.35}), _rows(100, {2: 0.6, 0: 0.35}),  # clear subject + mention
                   _rows(30, {2: 0.50, 0: 0.48}),  # near tie, the frequent mention a hair heavier
                   _rows(200, {0: 0.6, 1: 0.35}), _rows(200, {1: 0.6, 0: 0.35}),
                   _rows(30, {1: 0.50, 0: 0.48}),  # near tie between two symmetric themes
                   _rows(20, {3: 0.9}), _rows(5, {4: 0.9, 0: 0.1})])  # single theme; off-topic
    a, b, swap = _labels.subject_of_pair(M)
    tie = slice(1100, 1130)
    assert (a[tie] == 2).all() and (b[tie] == 0).all() and swap[tie].all()  # subject: 0, 2 is the mention
    assert not swap[:1100].any()  # clear cases keep their heavier theme, also when it is the frequent mention
    assert not swap[1130:].any()  # symmetric pair, single themes and off-topic rows are left alone
    top = np.tile(np.arange(5), (len(M), 1))
    topic_map = {0: "A", 1: "B", 2: "C", 3: "D", 4: None}
    given = np.array(["C"] * 1130 + ["B"] * 430 + ["D"] * 20 + [None] * 5, dtype=object)
    given[1100] = "D"  # the classifier chose neither of the pair: kept
    prim = _labels.subject_primary(given, top, M[:, :5], topic_map)
    assert prim[1101:1130].tolist() == ["A"] * 29 and prim[1100] == "D"
    assert prim[:1000].tolist() == ["A"] * 1000 and prim[1000:1100].tolist() == ["C"] * 100
    assert prim[-5:].tolist() == [None] * 5


def test_stand_in_calls_are_ledgered_as_simulated_without_a_model(tmp_path, monkeypatch):
    for key in ("HYBRIDNB_REASON_API_KEY", "OPENAI_API_KEY", "HYBRIDNB_REASON_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HYBRIDNB_HOME", str(tmp_path))
    from hybridnb import config
    from hybridnb.core.dispatcher import reset_dispatcher
    from hybridnb.corpus import _core
    from hybridnb.store import ledger

    config.session.clear()
    reset_dispatcher()
    target = _core.reasoning_target()
    assert target.simulated
    reqs = [_core.build_request("name this topic: alpha amber azure", target.model, tags={"batch": "t"})]
    (tokens, usd), = _core.ledger_simulated(reqs, ['{"name": "A"}'], target)
    rows = ledger.read(tmp_path)
    assert rows.height == 1 and rows["simulated"][0] and rows["backend"][0] == _core.STAND_IN_BACKEND
    assert tokens > 0 and usd == pytest.approx(rows["cost_usd"][0]) and usd > 0
    reset_dispatcher()
