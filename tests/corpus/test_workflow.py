"""The corpus workflow end to end on small corpora.

Offline (no reasoning API): the deterministic stand-in decides, its token economics are ledgered as
simulated without running a model; quality is computed against the generator's truth by the
one-to-one mapping — for the default vocabulary and for an invented one the analysis never saw.
With a real loopback reasoning server: the model's valid answers decide, calls are billed, and a
second or interrupted run does not pay twice.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import duckdb
import pytest

from hybridnb import corpus
from hybridnb.errors import CorpusError

N = 6_000
DATA = Path(__file__).parent / "data"
ANALYSIS = ("_discover", "_topics", "_taxonomy", "_reasoning", "_labels", "_iterate", "_distil", "_stages",
            "_workflow", "_report", "_output", "_store", "_core", "_embed", "_secondary")


def _isolate(mp, home, server=None):
    from hybridnb import config
    from hybridnb.core.dispatcher import reset_dispatcher

    for key in [k for k in os.environ if k.startswith("HYBRIDNB_")] + ["OPENAI_API_KEY"]:
        mp.delenv(key, raising=False)
    mp.setenv("HYBRIDNB_HOME", str(home))
    if server is not None:
        mp.setenv("HYBRIDNB_REASON_BASE_URL", server.base_url)
        mp.setenv("HYBRIDNB_REASON_API_KEY", "sk-test-SECRET-0123456789")
        mp.setenv("HYBRIDNB_REASON_MODEL", "gpt-4o-mini")
    config.session.clear()
    reset_dispatcher()


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("hnb-home")
    _isolate(mp, home)
    root = tmp_path_factory.mktemp("corpus")
    default = corpus.run(n=N, db=root / "default.duckdb", seed=3, progress=False)
    invented = corpus.run(n=N, db=root / "invented.duckdb", seed=4, shares=str(DATA / "invented_apiary.toml"),
                          progress=False)
    yield default, invented, home
    mp.undo()
    _isolate(pytest.MonkeyPatch(), home)


def test_nothing_of_the_generator_reaches_the_analysis():
    root = Path(corpus.__file__).parent
    for name in ANALYSIS:
        tree = ast.parse((root / f"{name}.py").read_text())
        imported = {f"{n.module or ''}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                    for a in n.names}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        for m in imported:
            assert not {"_generate", "_spec", "_vocab"} & set(m.split(".")), (name, m)
        sql = (root / f"{name}.py").read_text().lower()
        assert "from truth" not in sql and "join truth" not in sql, name


def test_default_corpus_discovered_with_honest_quality(offline):
    q = offline[0].quality
    assert q["quality.macro_f1"] >= 0.85 and q["quality.spearman_primary"] >= 0.85
    assert q["quality.noise_recovered"] >= 0.8 and q["quality.n_unmapped"] == 0
    assert q["quality.n_mostly_noise"] == 0


def test_invented_vocabulary_gives_the_same_quality(offline):
    default, invented, _ = offline
    a, b = default.quality, invented.quality
    assert b["quality.macro_f1"] >= 0.85 and b["quality.spearman_primary"] >= 0.85
    assert abs(a["quality.macro_f1"] - b["quality.macro_f1"]) <= 0.08
    assert b["quality.n_unmapped"] == 0


def test_primary_and_secondary_labels(offline):
    result = offline[0]
    con = duckdb.connect(str(result.db), read_only=True)
    try:
        n, on, sec, same = con.execute("""SELECT count(*), count(primary_label), count(secondary_label),
            count(*) FILTER (WHERE primary_label = secondary_label) FROM final_labels""").fetchall()[0]
        assert n == N and 0 < sec < on < n and same == 0
        bad = con.execute("""SELECT count(*) FROM final_labels WHERE secondary_label IS NOT NULL
            AND (secondary_confidence IS NULL OR primary_label IS NULL)""").fetchall()[0][0]
        assert bad == 0
    finally:
        con.close()
    assert abs(result.ranking["primary_share"].sum() - 1) < 1e-9
    assert result.secondary.height >= 2 and (result.secondary["secondary_share"] > 0).all()


def test_stand_in_decides_offline_and_is_ledgered_as_simulated(offline):
    result, _, home = offline
    con = duckdb.connect(str(result.db), read_only=True)
    try:
        who = dict(con.execute("SELECT decided_by, count(*) FROM reason_calls GROUP BY 1").fetchall())
        steps = {r[0] for r in con.execute("SELECT DISTINCT step FROM reason_calls").fetchall()}
        versions = [r[0] for r in con.execute("SELECT DISTINCT version FROM taxonomy ORDER BY 1").fetchall()]
    finally:
        con.close()
    assert set(who) == {"stand-in"}
    assert {"name_topics", "consolidate", "taxonomy_v2", "review_round_1", "validate"} <= steps
    assert versions == [1, 2]
    rows = corpus_rows(home, result)
    assert rows.height == sum(who.values()) and rows["simulated"].all()
    assert set(rows["backend"]) == {"corpus-stand-in"} and rows["cost_usd"].sum() > 0
    report = result.report.read_text()
    assert "deterministic stand-in" in report
    for heading in ("Ranking of priorities", "Secondary mentions", "Taxonomy v1 (discovered)",
                    "Taxonomy v1 → v2", "Label stability", "Reasoning calls", "Cost comparison", "Quality"):
        assert f"## {heading}" in report


def corpus_rows(home, result):
    from hybridnb.store import ledger

    led = ledger.read(home)
    run_id = duckdb.connect(str(result.db), read_only=True).execute(
        "SELECT value FROM schema_info WHERE key = 'run_id'").fetchall()[0][0]
    return led.filter(led["batch"].str.starts_with(f"corpus:{run_id}:") & (led["route"] == "reason"))


def test_reasoning_route_decides_and_resumes_without_paying_twice(_server, tmp_path):
    mp = pytest.MonkeyPatch()
    try:
        _isolate(mp, tmp_path / "home", _server)
        _server.reset()
        db = tmp_path / "r.duckdb"
        first = corpus.run(n=3_000, db=db, seed=5, progress=False)
        served = len(_server.log)
        con = duckdb.connect(str(db), read_only=True)
        named = dict(con.execute("SELECT decided_by, count(*) FROM reason_calls WHERE step = 'name_topics' "
                                 "GROUP BY 1").fetchall())
        con.close()
        assert named.get("reason", 0) > 0 and served >= sum(named.values())
        rows = corpus_rows(tmp_path / "home", first)
        assert (~rows["simulated"]).all() and rows["cost_usd"].sum() > 0
        again = corpus.run(n=3_000, db=db, seed=5, progress=False)
        assert set(again.resumed) == set(corpus.STAGES) - {"report"} and len(_server.log) == served
        # an interrupted taxonomy stage: its answers partly lost, the stage not marked done
        con = duckdb.connect(str(db))
        con.execute("DELETE FROM runs WHERE stage IN ('taxonomy', 'sample', 'label_rounds', 'validate', 'distil')")
        con.execute("DELETE FROM reason_calls WHERE key IN (SELECT key FROM reason_calls "
                    "WHERE step = 'name_topics' LIMIT 5)")
        con.close()
        corpus.run(n=3_000, db=db, seed=5, progress=False)
        asked = [e for e in _server.log[served:] if "keywords of topic" in json.dumps(e["body"])]
        assert asked == []  # the core cache answered the lost calls
        assert "sk-test-SECRET" not in first.report.read_text()
    finally:
        mp.undo()


def test_codebook_is_a_hint_and_bad_input_is_one_error(tmp_path, monkeypatch):
    _isolate(monkeypatch, tmp_path / "home")
    with pytest.raises(CorpusError, match="codebook file not found"):
        corpus.run(n=2_000, db=tmp_path / "a.duckdb", codebook=tmp_path / "missing.toml", progress=False)
    with pytest.raises(CorpusError, match="unknown labeller"):
        corpus.run(n=2_000, db=tmp_path / "b.duckdb", labeller="oracle", progress=False)
    book = {"Mite control": "varroa mites oxalic miticide", "Made-up theme": "nothing here at all"}
    r = corpus.run(n=3_000, db=tmp_path / "c.duckdb", seed=1, shares=str(DATA / "invented_apiary.toml"),
                   codebook=book, progress=False)
    names = set(r.ranking["category"])
    assert "Mite control" in names and "Made-up theme" not in names


def test_foreign_and_old_db(tmp_path):
    foreign = tmp_path / "foreign.duckdb"
    con = duckdb.connect(str(foreign))
    con.execute("CREATE TABLE sales (x INT)")
    con.close()
    with pytest.raises(CorpusError, match="not a hybridnb corpus DB"):
        corpus.open_store(foreign)
    old = tmp_path / "old.duckdb"
    corpus.open_store(old).close()
    con = duckdb.connect(str(old))
    con.execute("UPDATE schema_info SET value = '2' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(CorpusError, match="schema version 2"):
        corpus.run(n=1_000, db=old, progress=False)


def test_local_llm_labeller_goes_through_map_on_the_local_route(_server, tmp_path):
    """--labeller local-llm: every segment is labelled by hybridnb.map(route="local", choices=taxonomy)."""
    mp = pytest.MonkeyPatch()
    try:
        _isolate(mp, tmp_path / "home")
        mp.setenv("HYBRIDNB_LOCAL_BASE_URL", _server.base_url)
        mp.setenv("HYBRIDNB_LOCAL_MODEL", "test-local-model")
        _server.reset()
        result = corpus.run(n=1_500, db=tmp_path / "l.duckdb", seed=2, labeller="local-llm", progress=False)
        asked = [e for e in _server.log if "Which category is this segment mainly about" in json.dumps(e["body"])]
        assert len(asked) == 1_500
        con = duckdb.connect(str(result.db), read_only=True)
        n, labelled = con.execute("SELECT count(*), count(primary_label) FROM final_labels").fetchall()[0]
        names = {r[0] for r in con.execute("SELECT category FROM taxonomy WHERE version = 2 AND NOT is_noise")
                 .fetchall()}
        got = {r[0] for r in con.execute("SELECT DISTINCT primary_label FROM final_labels "
                                         "WHERE primary_label IS NOT NULL").fetchall()}
        con.close()
        assert n == 1_500 and got <= names  # the loopback "model" may call everything off-topic
        from hybridnb.store import ledger

        local = ledger.read(tmp_path / "home").filter(pl_col_route("local"))
        assert local.filter(local["status"] == "ok").height == 1_500 and (local["pricing"] == "compute").all()
    finally:
        mp.undo()


def pl_col_route(route: str):
    import polars as pl

    return (pl.col("route") == route) & (pl.col("kind") == "call")


@pytest.mark.slow
def test_a_one_percent_category_keeps_a_category_of_its_own(tmp_path, monkeypatch):
    """Made-up words, 12 categories from 38 % down to 1 %: the smallest one is found, not merged."""
    _isolate(monkeypatch, tmp_path / "home")
    r = corpus.run(n=30_000, db=tmp_path / "s.duckdb", seed=1, shares=str(DATA / "invented_syllables.toml"),
                   progress=False)
    q = r.quality
    assert q["quality.n_missed"] == 0 and q["quality.n_unmapped"] == 0
    assert q["quality.macro_f1"] >= 0.88  # 0.82 with one category merged away, 0.92 when written
