"""The opt-in semantic cache: near-duplicate prompts served from an earlier answer (real embeddings,
a real SQLite index, the loopback OpenAI server counting what was actually sent)."""

from __future__ import annotations

import pytest

import hybridnb
from hybridnb import config
from hybridnb.core import extras
from hybridnb.errors import MissingExtra
from hybridnb.store import semantic

BASE = "Summarise this complaint: my parcel arrived two weeks late and the box was crushed"
NEAR = "summarise this complaint:  my parcel arrived two weeks late, and the box was crushed!"


def sent(server) -> int:
    return len(server.log)


def test_off_by_default_near_duplicates_are_sent(reason_on_server):
    hybridnb.reason(BASE)
    hybridnb.reason(NEAR)
    assert sent(reason_on_server) == 2
    assert hybridnb.ledger()["similarity"].null_count() == 2


def test_a_near_duplicate_is_a_semantic_hit_with_its_similarity(reason_on_server):
    first = hybridnb.reason(BASE, cache="semantic")
    second = hybridnb.reason(NEAR, cache="semantic")
    assert sent(reason_on_server) == 1
    assert second.cached and second.text == first.text and second.cost_usd == 0
    assert second.saved_usd == pytest.approx(first.cost_usd) and first.cost_usd > 0
    led = hybridnb.ledger()
    hit = led.filter(led["status"] == "cached").row(0, named=True)
    assert hit["similarity"] >= config.get_settings()["cache_similarity"] and hit["similarity"] <= 1.0
    assert hit["saved_usd"] == pytest.approx(first.cost_usd)
    assert led.filter(led["status"] == "ok")["similarity"].null_count() == 1


def test_different_meaning_or_scope_is_not_a_hit(reason_on_server):
    hybridnb.reason("Classify: the parcel was late", cache="semantic")
    hybridnb.reason("Classify: the parcel was early", cache="semantic")  # same static vector, other text
    hybridnb.reason("Summarise this complaint: the app crashes whenever I open settings", cache="semantic")
    hybridnb.reason("Classify: the parcel was late", cache="semantic", system="answer in French")
    hybridnb.reason("Classify: the parcel was late!", cache="semantic", max_tokens=50)
    assert sent(reason_on_server) == 5
    assert hybridnb.ledger()["similarity"].null_count() == 5


def test_the_setting_and_the_index_outlive_the_process_state(reason_on_server, monkeypatch):
    from hybridnb.core.dispatcher import reset_dispatcher

    config.session.set("cache", "semantic")
    config.session.set("cache_similarity", 0.9)
    hybridnb.reason(BASE)
    reset_dispatcher()
    monkeypatch.setattr(semantic, "_indexes", {})  # a new kernel: only the file on disk is shared
    r = hybridnb.reason(NEAR)
    assert r.cached and sent(reason_on_server) == 1
    config.session.set("cache", "false")
    hybridnb.reason(NEAR + " ")
    assert sent(reason_on_server) == 2


def test_batch_near_duplicates_are_served_and_exact_duplicates_sent_once(reason_on_server):
    import polars as pl

    df = pl.DataFrame({"text": [BASE[27:], NEAR[27:], BASE[27:], "the app crashes whenever I open settings"]})
    out = hybridnb.map(df, "Summarise this complaint: {text}", route="reason", cache="semantic", progress=False,
                       verbose=False)
    assert out["error"].null_count() == 4
    assert sent(reason_on_server) == 3  # BASE once, its exact repeat deduplicated; NEAR in the same batch is sent
    again = hybridnb.map(df.with_columns(pl.col("text") + "."), "Summarise this complaint: {text}",
                         route="reason", cache="semantic", progress=False, verbose=False)
    assert all(again["cached"]) and sent(reason_on_server) == 3


def test_missing_extra_is_one_clear_error_naming_pip(reason_on_server, monkeypatch):
    monkeypatch.setitem(extras.EXTRAS, "semantic", (("numpy", "no_such_module_for_hybridnb"), "the semantic cache"))
    with pytest.raises(MissingExtra, match=r"pip install 'hybridnb\[semantic\]'"):
        hybridnb.reason(BASE, cache="semantic")
    assert sent(reason_on_server) == 0 and hybridnb.ledger().height == 0
