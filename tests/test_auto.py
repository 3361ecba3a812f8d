"""`%%auto`: local first, escalate the unsure rows — against a real strong and a real weak server."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import hybridnb
from hybridnb import backends, config
from hybridnb.core import auto as auto_mod
from hybridnb.errors import HybridnbError
from hybridnb.store.ledger import os_user

from cascade_servers import (LABELS, CascadeServer, prompt_tokens, scored_backend_class, strong_answer,
                             truth, weak_answer, weak_conf)

#: $ per 1M tokens: the reasoning model is gpt-4o-mini's list price (genai-prices); local is 1/25 of it
REASON_IN, REASON_OUT = 0.15, 0.60
LOCAL_IN, LOCAL_OUT = REASON_IN / 25, REASON_OUT / 25
TEMPLATE = "Ticket #{id}: {text}"


@pytest.fixture(scope="module")
def servers():
    strong, weak = CascadeServer(strong=True).start(), CascadeServer(strong=False).start()
    backends.register("scored-openai", scored_backend_class())
    yield strong, weak
    strong.stop()
    weak.stop()


@pytest.fixture
def cascade(hybridnb_home, servers):
    strong, weak = servers
    for k, v in {"reason.base_url": strong.base_url, "reason.api_key": "sk-test-0123456789",
                 "reason.model": "gpt-4o-mini", "local.backend": "scored-openai", "local.base_url": weak.base_url,
                 "local.model": "weak-model", "local.pricing": "tokens", "prices.weak-model.input": LOCAL_IN,
                 "prices.weak-model.output": LOCAL_OUT, "concurrency": 32}.items():
        config.session.set(k, v)
    auto_mod.set_threshold(None)
    yield strong, weak
    auto_mod.set_threshold(None)


def frame(ids):
    import polars as pl

    return pl.DataFrame({"id": list(ids), "text": [f"customer writes about case {i}" for i in ids],
                         "label": [truth(i) for i in ids]})


def test_one_prompt_keeps_a_confident_answer_and_escalates_an_unsure_one(cascade):
    sure = next(i for i in range(100) if weak_conf(i) >= 0.9)
    unsure = next(i for i in range(100) if weak_conf(i) < 0.6)
    r1 = hybridnb.auto(f"Ticket #{sure}: hello", choices=LABELS, threshold=0.8)
    r2 = hybridnb.auto(f"Ticket #{unsure}: hello", choices=LABELS, threshold=0.8)
    assert (r1.route, r1.escalated, r1.text) == ("local", False, weak_answer(sure))
    assert (r2.route, r2.escalated, r2.text) == ("reason", True, strong_answer(unsure))
    assert r1.local_confidence == pytest.approx(weak_conf(sure), rel=1e-9)
    assert "kept local" in r1.footer() and "escalated: local confidence" in r2.footer()
    led = hybridnb.ledger()
    assert set(led["via"]) == {"auto"} and set(led["user"]) == {os_user()}
    rows = led.select("route", "escalated", "confidence").rows()
    assert sorted(rows, key=str) == sorted([
        ("local", False, pytest.approx(weak_conf(sure))), ("local", False, pytest.approx(weak_conf(unsure))),
        ("reason", True, pytest.approx(weak_conf(unsure)))], key=str)
    u = r2.usage  # the prompt as sent also states the options: its tokens come from the server
    assert u.input_tokens >= prompt_tokens(f"Ticket #{unsure}: hello") and u.output_tokens == 1
    assert r2.cost_usd == pytest.approx((u.input_tokens * REASON_IN + u.output_tokens * REASON_OUT) / 1e6, rel=1e-9)


def test_calibrated_cascade_reaches_the_target_at_a_fraction_of_all_reason(cascade):
    cal = hybridnb.calibrate(frame(range(1000)), TEMPLATE, truth="label", choices=LABELS,
                             target_accuracy=0.95, progress=False)
    # the chosen threshold is the cheapest one on the curve that reaches the target, recomputed here
    conf = [weak_conf(i) for i in range(1000)]
    for row in cal.curve.iter_rows(named=True):
        esc = [c < row["threshold"] for c in conf]
        acc = sum((strong_answer(i) if e else weak_answer(i)) == truth(i) for i, e in enumerate(esc)) / 1000
        assert row["accuracy"] == pytest.approx(acc) and row["escalated"] == sum(esc)
    assert cal.reached and cal.accuracy >= 0.95
    assert cal.cost_usd == cal.curve.filter(cal.curve["accuracy"] >= 0.95)["cost_usd"].min()
    chart = cal.chart().to_dict()
    assert len(chart["layer"]) == 3

    ids = range(1000, 6000)
    df = frame(ids)
    out = hybridnb.map(df, TEMPLATE, route="auto", choices=LABELS, progress=False)  # the calibrated threshold
    stats = auto_mod.last_stats()
    expect_esc = [weak_conf(i) < cal.threshold for i in ids]
    assert out["escalated"].to_list() == expect_esc
    assert out["answer"].to_list() == [strong_answer(i) if e else weak_answer(i) for i, e in zip(ids, expect_esc)]
    led = hybridnb.ledger(where="via = 'auto'")  # every row priced from the tokens the servers billed
    assert led.height == 5000 + sum(expect_esc) and led.filter(led["route"] == "reason").height == sum(expect_esc)
    expect_cost = sum((r["input_tokens"] * (REASON_IN if r["route"] == "reason" else LOCAL_IN)
                       + r["output_tokens"] * (REASON_OUT if r["route"] == "reason" else LOCAL_OUT)) / 1e6
                      for r in led.iter_rows(named=True))
    assert out["cost_usd"].sum() == pytest.approx(expect_cost, rel=1e-9)
    assert stats.spent_usd == pytest.approx(expect_cost, rel=1e-9) and stats.escalated == sum(expect_esc)

    # every row on reason (the escalated ones come from the cache: a hit counts what it saved)
    base = hybridnb.map(df, TEMPLATE, route="reason", choices=LABELS, progress=False, verbose=False)
    led_base = hybridnb.ledger(where="route = 'reason' AND via = ''")
    all_reason = led_base["cost_usd"].sum() + led_base["saved_usd"].sum()
    assert led_base.height == 5000 and led_base["cached"].sum() == sum(expect_esc)
    accuracy = (out["answer"] == df["label"]).mean()
    share = out["cost_usd"].sum() / all_reason
    print(f"\n%%auto on 5K: accuracy {accuracy:.4f} (local alone {(df['label'] == [weak_answer(i) for i in ids]).mean():.4f}, "
          f"all-reason {(base['answer'] == df['label']).mean():.4f}), cost {share:.3f} of all-reason, "
          f"escalated {stats.escalation_rate:.3f} at threshold {cal.threshold:.3f}")
    assert accuracy >= 0.94 and share <= 0.35
    assert stats.all_reason_usd == pytest.approx(all_reason, rel=0.05)  # the footer's estimate of all-reason


def test_rerun_is_served_from_cache_with_the_same_decisions(cascade):
    df = frame(range(200))
    first = hybridnb.map(df, TEMPLATE, route="auto", choices=LABELS, threshold=0.8, progress=False)
    esc = sum(first["escalated"])
    line = next(x for x in str(hybridnb.summary()).splitlines() if "%%auto" in x)  # the summary's advice
    assert f"200 rows, {esc} escalated to %%reason ({esc / 200:.0%}), spent $" in line
    assert "all-reason ~$" in line and "saved ~$" in line
    again = hybridnb.map(df, TEMPLATE, route="auto", choices=LABELS, threshold=0.8, progress=False)
    assert again["escalated"].to_list() == first["escalated"].to_list()
    assert again["answer"].to_list() == first["answer"].to_list()
    assert again["cost_usd"].sum() == 0 and all(again["cached"])
    assert again["confidence"].to_list() == pytest.approx(first["confidence"].to_list())


def test_free_text_confidence_is_the_agreement_of_two_samples(cascade):
    sure = next(i for i in range(100) if weak_conf(i) >= 0.9)
    unsure = next(i for i in range(100) if weak_conf(i) < 0.6)
    r1 = hybridnb.auto(f"Summarise ticket #{sure}", threshold=0.9)
    r2 = hybridnb.auto(f"Summarise ticket #{unsure}", threshold=0.9)
    assert r1.local_confidence == 1.0 and not r1.escalated and r1.text == f"item {sure} is {weak_answer(sure)}"
    assert r2.local_confidence < 0.9 and r2.escalated and r2.text == f"item {unsure} is {strong_answer(unsure)}"
    assert hybridnb.ledger(where="route = 'local'").height == 4  # two samples per prompt


def test_bad_threshold_and_truth_column_are_one_clear_error(cascade):
    with pytest.raises(HybridnbError, match="between 0 and 1"):
        hybridnb.auto("Ticket #1: x", choices=LABELS, threshold=1.5)
    with pytest.raises(HybridnbError, match="truth='nope' is not a column"):
        hybridnb.calibrate(frame(range(3)), TEMPLATE, truth="nope", choices=LABELS)
    assert hybridnb.ledger().height == 0


def test_auto_cell_magic_single_and_over_a_frame(cascade, capsys):
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "hybridnb")
    ip.user_ns["tickets"] = frame(range(50))
    ip.run_cell_magic("auto", f"--choices {','.join(LABELS)} --threshold 0.8 -q -o one", "Ticket #3: hi")
    assert ip.user_ns["one"].text in LABELS
    ip.run_cell_magic("auto", f"--over tickets --choices {','.join(LABELS)} --threshold 0.8 -o lab -q", TEMPLATE)
    lab = ip.user_ns["lab"]
    assert lab["escalated"].to_list() == [weak_conf(i) < 0.8 for i in range(50)]
    assert "escalated to %%reason" in capsys.readouterr().out
    with pytest.raises(UsageError, match="between 0 and 1"):
        ip.run_cell_magic("auto", "--threshold 7", "Ticket #3: hi")
    for name in ("tickets", "one", "lab"):
        ip.user_ns.pop(name, None)
