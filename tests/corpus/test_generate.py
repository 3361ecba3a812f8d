"""The bundled corpus generator: realistic shape, ground truth, drift, custom shares, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from hybridnb.corpus import generate, load_spec
from hybridnb.errors import CorpusError


@pytest.fixture(scope="module")
def df():
    return generate(20_000, seed=7)


def test_deterministic_per_seed():
    a, b, c = generate(2_000, seed=1), generate(2_000, seed=1), generate(2_000, seed=2)
    assert a.equals(b)
    assert not a["text"].equals(c["text"])


def test_columns_and_spoken_lengths(df):
    assert df.columns == ["segment_id", "event", "year", "session", "vendor", "speaker_role", "ts", "text",
                          "true_primary", "true_secondary", "is_noise"]
    words = df["text"].str.split(" ").list.len()
    assert 3 <= words.min() and words.max() <= 90
    assert 15 <= words.median() <= 21
    assert set(df["speaker_role"].unique()) == {"presenter", "delegate", "host"}
    assert df["ts"].dtype == pl.Datetime("ms")


def test_noise_and_multi_topic_rates(df):
    noise = df["is_noise"].mean()
    assert 0.15 <= noise <= 0.25
    assert (df.filter(pl.col("is_noise"))["true_primary"] == "noise").all()
    topical = df.filter(~pl.col("is_noise"))
    multi = topical["true_secondary"].is_not_null().mean()
    assert 0.20 <= multi <= 0.30
    assert df.filter(pl.col("is_noise"))["true_secondary"].null_count() == df["is_noise"].sum()


def test_default_shares_risk_and_complexity_lead_cost_is_frequent_secondary(df):
    topical = df.filter(~pl.col("is_noise"))
    primary = topical["true_primary"].value_counts(sort=True)["true_primary"].to_list()
    assert primary[:2] == ["security_risk", "complexity"]
    assert primary.index("cost") >= 2
    secondary = topical["true_secondary"].drop_nulls().value_counts(sort=True)["true_secondary"]
    assert secondary[0] == "cost"
    # naive counting of primary + secondary mentions over-ranks cost relative to its primary rank
    mentions = pl.concat([topical["true_primary"], topical["true_secondary"].drop_nulls()]).value_counts(sort=True)
    assert mentions["true_primary"].to_list().index("cost") < primary.index("cost")


def test_drift_ai_readiness_rises(df):
    by_year = (df.filter(~pl.col("is_noise")).group_by("year")
               .agg((pl.col("true_primary") == "ai_readiness").mean().alias("ai")).sort("year"))
    ai = by_year["ai"].to_list()
    assert ai[-1] > 2 * ai[0]


def test_host_speaks_mostly_noise(df):
    rate = df.group_by("speaker_role").agg(pl.col("is_noise").mean()).sort("speaker_role")
    rates = dict(zip(rate["speaker_role"], rate["is_noise"]))
    assert rates["host"] > 0.5 > rates["delegate"]


def test_custom_shares_toml_with_new_category(tmp_path):
    path = tmp_path / "shares.toml"
    path.write_text("""
multi_topic = 0.1
[shares]
cost = 0.6
quantum = 0.4
[categories.quantum]
name = "Quantum readiness"
words = "qubits quantum annealing entanglement error correction cryptography"
""")
    spec = load_spec(path)
    assert [c.name for c in spec.categories] == ["Cost & FinOps", "Quantum readiness"]
    out = generate(4_000, seed=0, shares=path)
    top = out.filter(~pl.col("is_noise"))["true_primary"].value_counts(sort=True)
    assert top["true_primary"].to_list() == ["cost", "quantum"]
    assert 0.5 < top["count"][0] / top["count"].sum() < 0.7
    assert out.filter(pl.col("true_primary") == "quantum")["text"].str.contains("qubits|quantum").mean() > 0.5


def test_custom_shares_json(tmp_path):
    path = tmp_path / "shares.json"
    path.write_text(json.dumps({"shares": {"complexity": 0.5, "talent": 0.5}}))
    out = generate(1_000, seed=0, shares=path)
    assert set(out["true_primary"].unique()) == {"complexity", "talent", "noise"}


@pytest.mark.parametrize("text, match", [
    ("[shares]\ncost = 0.5\ntalent = 0.2\n", "sum to 0.7"),
    ("[shares]\ncost = 1.0\n", "at least 2 categories"),
    ("[shares]\n", "at least 2 categories"),
    ("[shares]\ncost = 0.5\nmystery = 0.5\n", "not a built-in one"),
    ("[shares]\ncost = 1.2\ntalent = -0.2\n", ">= 0"),
    ("[shares\ncost = 0.5", "not valid"),
    ("multi_topic = 2\n[shares]\ncost = 0.5\ntalent = 0.5\n", "multi_topic"),
    ('frequent_secondary = "x"\n[shares]\ncost = 0.5\ntalent = 0.5\n', "not one of its categories"),
    ('shared = "too few"\n[shares]\ncost = 0.5\ntalent = 0.5\n', "at least 5 words"),
    ('[noise]\nlogistics = "a b c d e"\n[shares]\ncost = 0.5\ntalent = 0.5\n', "logistics` and `banter"),
])
def test_bad_shares_file(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(CorpusError, match=match):
        generate(100, shares=path)


def test_missing_shares_file_and_empty_corpus(tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        generate(100, shares=tmp_path / "nope.toml")
    for n in (0, -5):
        with pytest.raises(CorpusError, match="positive"):
            generate(n)


def test_words_come_from_the_primary_vocabulary(df):
    spec = load_spec(None)
    vocab = {c.id: set(c.words) for c in spec.categories}
    sample = df.filter(~pl.col("is_noise") & pl.col("true_secondary").is_null()).head(500)
    hits = [len(set(t.split()) & vocab[p]) > 0 for t, p in zip(sample["text"], sample["true_primary"])]
    assert np.mean(hits) > 0.97


DATA = Path(__file__).parent / "data"


def _default_words() -> set[str]:
    from hybridnb.corpus import _vocab

    words = set(_vocab.SHARED) | set(_vocab.FILLER)
    for name, _, _, vocab in _vocab.CATEGORIES.values():
        words |= set(vocab.split()) | set(name.lower().split())
    for pool in _vocab.NOISE.values():
        words |= set(pool.split())
    return words


@pytest.mark.parametrize("name", ["invented_apiary.toml", "invented_syllables.toml"])
def test_invented_vocabulary_shares_no_word_or_name_with_the_default(name):
    spec, default = load_spec(DATA / name), load_spec(None)
    mine = set(spec.shared) | set(spec.noise_words[0]) | set(spec.noise_words[1])
    for c in spec.categories:
        mine |= set(c.words)
    assert not mine & _default_words()
    assert not {c.id for c in spec.categories} & set(default.ids)
    assert not {c.name for c in spec.categories} & {c.name for c in default.categories}
    assert spec.frequent_secondary in spec.ids
    words = [w for c in spec.categories for w in c.words]
    assert len(words) == len(set(words))  # no word in two categories


def test_invented_vocabulary_generates_its_own_words_and_shares():
    from hybridnb.corpus import _vocab

    spec = load_spec(DATA / "invented_apiary.toml")
    out = generate(20_000, seed=3, shares=spec)
    words = set(out["text"].str.split(" ").explode().unique().to_list())
    leaked = words & (_default_words() - set(_vocab.FILLER))
    assert not {w for w in leaked if len(w) > 3}  # only ASR-style corruptions of short words may collide
    topical = out.filter(~pl.col("is_noise"))
    order = topical["true_primary"].value_counts(sort=True)["true_primary"].to_list()
    assert order[:2] == ["varroa", "forage"]
    assert topical["true_secondary"].drop_nulls().value_counts(sort=True)["true_secondary"][0] == "swarming"


@pytest.mark.parametrize("first, order", [
    ("security", ["security_risk", "complexity", "cost"]),
    ("complexity", ["complexity", "cost", "security_risk"]),
    ("cost", ["cost", "security_risk", "complexity"]),
])
def test_close_race_files_put_the_top_three_within_two_points(first, order):
    out = generate(100_000, seed=5, shares=DATA / f"close_race_{first}.toml")
    topical = out.filter(~pl.col("is_noise"))
    shares = topical["true_primary"].value_counts(sort=True, normalize=True)
    assert shares["true_primary"][:3].to_list() == order
    top = shares["proportion"][:3].to_list()
    assert top[0] - top[2] < 0.02 and top[0] - top[1] > 0.002
    assert topical["true_secondary"].drop_nulls().value_counts(sort=True)["true_secondary"][0] == "cost"
