"""Secondary concern from a segment's own words (hybridnb.corpus._secondary), on a small made-up corpus."""

from __future__ import annotations

import numpy as np
import pytest

from hybridnb.corpus import _secondary

# made-up words for three themes, and words every theme uses
THEMES = {"alpha": "brisket marrow tallow sirloin gristle flank brine cleaver".split(),
          "beta": "sonnet stanza couplet meter rhyme ballad elegy quatrain".split(),
          "gamma": "piston gasket crankshaft camshaft valve throttle gearbox clutch".split()}
COMMON = "meeting people weekend morning office coffee question answer".split()


def _corpus(n: int = 1500, seed: int = 3):
    """Segments of one theme and common words; a third also mention one other theme: each of their
    theme words is then that theme's with probability 0.3 (so a few mentions show no word of it)."""
    rng = np.random.default_rng(seed)
    names = sorted(THEMES)
    texts, prim, sec, seen = [], [], [], []
    for _ in range(n):
        p = names[rng.integers(3)]
        s = names[(names.index(p) + 1 + rng.integers(2)) % 3] if rng.random() < 0.33 else None
        other = rng.random(rng.integers(6, 12)) < (0.3 if s else 0.0)
        words = [rng.choice(THEMES[s if o else p]) for o in other] + list(rng.choice(COMMON, rng.integers(2, 6)))
        rng.shuffle(words)
        texts.append(" ".join(words))
        prim.append(p)
        sec.append(s)
        seen.append(bool(other.any()))
    return texts, prim, sec, np.array(seen)


def test_mentions_are_found_from_the_words_with_a_posterior():
    texts, prim, truth, shown = _corpus()
    sec, conf = _secondary.secondary_from_words(texts, prim)
    sec, truth = np.array(sec, dtype=object), np.array(truth, dtype=object)
    has = truth != None  # noqa: E711
    assert np.mean(sec[shown] == truth[shown]) > 0.9  # one or two words of another theme are seen
    assert np.mean(sec[~has] == None) > 0.9  # noqa: E711
    assert abs(np.mean(sec != None) - np.mean(has)) < 0.03  # noqa: E711  the share, not only the strong cases
    given = sec != None  # noqa: E711
    assert np.all(np.isfinite(conf[given])) and np.all((conf[given] > 0) & (conf[given] <= 1))
    assert np.all(np.isnan(conf[~given]))
    assert not any(s == p for s, p in zip(sec, prim))


def test_off_topic_rows_get_no_secondary_and_one_category_gives_none():
    texts, prim, _, _ = _corpus(600)
    prim = [None if i % 5 == 0 else p for i, p in enumerate(prim)]
    sec, _ = _secondary.secondary_from_words(texts, prim)
    assert all(s is None for s, p in zip(sec, prim) if p is None)
    assert any(s is not None for s in sec)
    only, conf = _secondary.secondary_from_words(texts, ["alpha"] * len(texts))
    assert only == [None] * len(texts) and np.isnan(conf).all()


@pytest.mark.parametrize("texts", [["um uh the", "the of and"], ["", ""]])
def test_texts_without_content_words_give_no_secondary(texts):
    sec, conf = _secondary.secondary_from_words(texts, ["alpha", "beta"])
    assert sec == [None, None] and np.isnan(conf).all()


def test_the_expected_count_goes_to_the_most_likely_rows():
    R = np.array([[0.0, 0.7], [0.0, 0.2], [0.5, 0.0], [0.0, 0.0], [0.9, 0.0]])
    on = np.array([True, True, True, True, False])
    take = _secondary.expected_count_rows(R, on)  # round(0.7 + 0.2 + 0.5) = 1 row of the four with a primary
    assert take.tolist() == [True, False, False, False, False]


def test_local_labeller_probability_of_no_labels_and_of_each_label():
    from hybridnb.corpus import _labels

    texts, prim, _, _ = _corpus(300)
    model = _labels.LocalLabeller().fit(texts, None, np.array(prim))
    _, _, proba = model.predict(texts[:4])
    assert model.probability_of(proba[:0], []).shape == (0,)  # no row moved: nothing to look up
    got = model.probability_of(proba, ["alpha", "beta", None, "unknown"])
    classes = list(model.clf.classes_)
    assert got[0] == pytest.approx(proba[0, classes.index("alpha")]) and got[3] == 0.0
