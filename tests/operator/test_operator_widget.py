"""The spend widget's traits after constructed calls, from the ledger and live."""

from __future__ import annotations

import threading
import time

import pytest

from _operator_records import make_record
from hybridnb.store.ledger import connect
from hybridnb.spend.signals import tracker
from hybridnb.notebook.widget import SpendState, SpendWidget


def _records():
    return [
        make_record(input_tokens=1000, output_tokens=100, cost_usd=0.002, prompt_hash="a"),
        make_record(status="cached", cached=True, saved_usd=0.002, prompt_hash="a"),
        make_record(model="gpt-4.1", input_tokens=2000, output_tokens=300, cost_usd=0.01),
        make_record(route="local", backend="vllm", model="qwen", pricing="compute", input_tokens=500,
                    output_tokens=40, held_s=100.0, busy_s=25.0, gpus=1, cost_usd=0.05),
        make_record(status="error", error_class="ServerError"),
    ]


def _check(w: SpendWidget):
    assert w.total_usd == pytest.approx(0.062)
    assert w.calls == 4 and w.cache_hits == 1 and w.errors == 1
    assert w.saved_usd == pytest.approx(0.002)
    assert w.input_tokens == 3500 and w.output_tokens == 440
    routes = {r["route"]: r for r in w.routes}
    assert routes["reason"]["cost_usd"] == pytest.approx(0.012)
    assert routes["local"]["cost_usd"] == pytest.approx(0.05)
    assert [r["route"] for r in w.routes] == ["local", "reason"]  # by spend
    assert {(m["backend"], m["model"]) for m in w.models} == {
        ("openai", "gpt-4o-mini"), ("openai", "gpt-4.1"), ("vllm", "qwen")}
    (loc,) = w.local
    assert loc["utilisation"] == pytest.approx(0.25)
    assert loc["idle_usd"] == pytest.approx(0.05 * 0.75)
    assert len(w.recent) == 5 and w.recent[0]["status"] == "error"  # newest first
    assert w.series[-1][1] == pytest.approx(0.062)
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(w.series, w.series[1:]))


def test_apply_updates_traits():
    w = SpendWidget(budget_usd=1.0)
    assert w.total_usd == 0 and w.calls == 0
    for r in _records():
        w.apply(r)
    _check(w)
    assert w.budget_usd == 1.0


def test_from_ledger_equals_incremental(write, home):
    write(*_records())
    w = SpendWidget.from_ledger(home, budget_usd=0.5)
    _check(w)
    # and the numbers equal DuckDB over the same files
    (total,) = connect(home).sql("SELECT sum(cost_usd) FROM ledger").fetchall()[0]
    assert w.total_usd == pytest.approx(total)
    # one more call arrives: totals move, series grows
    n = len(w.series)
    w.apply(make_record(cost_usd=0.1, input_tokens=10))
    assert w.total_usd == pytest.approx(0.162)
    assert w.calls == 5 and len(w.series) == n + 1


def test_from_ledger_shows_ledger_advice(write, home):
    write(*[dict(prompt_hash="dup", cost_usd=0.01) for _ in range(4)])
    w = SpendWidget.from_ledger(home)
    assert [a["kind"] for a in w.advice] == ["dont_reason_twice"]


def test_series_stays_bounded():
    s = SpendState()
    for i in range(2000):
        s.apply(make_record(cost_usd=0.001))
    view = s.view()
    assert len(view["series"]) <= 240
    assert view["series"][-1][1] == pytest.approx(2.0)
    assert len(view["recent"]) == 8


def test_state_syncs_as_json():
    w = SpendWidget()
    w.apply(make_record(cost_usd=0.001))
    state = w.get_state()
    assert state["total_usd"] == pytest.approx(0.001)
    assert state["routes"][0]["route"] == "reason"
    assert "_esm" in state and "export default" in state["_esm"]


class _Dispatcher:
    """The dispatcher's subscribe contract: callbacks from a background thread."""

    def __init__(self):
        self.callbacks = []

    def subscribe(self, cb):
        self.callbacks.append(cb)
        return lambda: self.callbacks.remove(cb)

    def emit_from_thread(self, records):
        t = threading.Thread(target=lambda: [cb(r) for r in records for cb in list(self.callbacks)])
        t.start()
        t.join()


def test_live_feed_is_throttled_and_complete():
    d = _Dispatcher()
    w = SpendWidget(max_rate=4.0)
    flushes = []
    w.observe(lambda ch: flushes.append(ch["new"]), names="updated")
    w.attach(d, poll_s=60)
    try:
        d.emit_from_thread([make_record(cost_usd=0.001) for _ in range(200)])
        deadline = time.monotonic() + 5
        while w.calls < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert w.calls == 200 and w.total_usd == pytest.approx(0.2)
        assert 1 <= len(flushes) <= 10, "200 records must not mean 200 trait updates"
        assert w.live
    finally:
        w.detach()
    assert d.callbacks == [] and not w.live


def test_lanes_come_from_the_tracker():
    tracker.reset()
    try:
        tracker.enqueued("local", "vllm", 12, max_concurrency=4)
        tracker.started("local", "vllm", 4, wait_s=0.5)
        w = SpendWidget()
        (lane,) = w.lanes
        assert lane["queue_depth"] == 8 and lane["in_flight"] == 4
        assert lane["saturation"] == 1.0
    finally:
        tracker.reset()


def test_budget_bar_shows_the_budget_in_its_basis(hybridnb_home, monkeypatch):
    """A day budget counts every kernel's spend today, read from the ledger, and says so."""
    from hybridnb import config
    from hybridnb.spend import render
    from hybridnb.store.ledger import LedgerWriter

    now = time.time()
    other = LedgerWriter(hybridnb_home, "k-other")
    other.extend([make_record(ts=now, cost_usd=0.25), make_record(ts=now - 3 * 86400, cost_usd=4.0)])
    other.close()
    config.session.set("budget_per", "day")
    w = SpendWidget.from_ledger(hybridnb_home, budget_usd=1.0)
    assert w.budget_usd == 1.0 and w.budget_spent_usd == 0.25
    assert w.budget["label"] == "today's budget" and w.budget["state"] == "ok"
    w.apply(make_record(ts=now, cost_usd=0.5))  # this kernel's new call counts at once
    assert w.budget_spent_usd == 0.75
    assert w.budget["line"] == "today's budget: $0.7500 of $1.00 spent (75%), $0.2500 left"
    assert w.strings["budget"] == w.budget["line"]
    assert w.strings["cost"] == render.money(w.total_usd)  # the widget shows the report's strings


def test_token_priced_calls_are_not_in_the_local_table():
    w = SpendWidget()
    w.apply(make_record(held_s=3.0, busy_s=3.0, cost_usd=0.001))  # a token call still has timing
    assert w.local == []
    w.apply(make_record(route="local", backend="embedded", model="smollm2", pricing="compute",
                        held_s=10.0, busy_s=10.0, cost_usd=0.0))
    assert [m["model"] for m in w.local] == ["smollm2"] and w.local[0]["utilisation"] == 1.0


def test_public_widget_stays_callable(home, write):
    import hybridnb

    write(*_records())
    first = hybridnb.widget(home=home, live=False)
    import hybridnb.notebook.widget as sub  # importing the subpackage must not break either spelling

    second = hybridnb.widget(home=home, live=False)
    third = sub(home=home, live=False)
    for w in (first, second, third):
        assert isinstance(w, SpendWidget) and not w.live
        _check(w)  # each one reads the ledger under ``home``: the same totals


def test_widget_follows_the_real_dispatcher(reason_on_server, hybridnb_home):
    import hybridnb
    w = hybridnb.widget()
    try:
        assert w.live and w.calls == 0
        for i in range(3):
            hybridnb.reason(f"question number {i}")
        hybridnb.reason("question number 0")  # served from cache
        deadline = time.monotonic() + 5
        while (w.calls, w.cache_hits) != (3, 1) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (w.calls, w.cache_hits) == (3, 1)
        assert w.total_usd > 0 and w.saved_usd > 0
        assert w.budget["label"] == "session budget"
        (total,) = connect(hybridnb_home).sql("SELECT sum(cost_usd) FROM ledger").fetchall()[0]
        assert w.total_usd == pytest.approx(total)
        assert [lane["route"] for lane in w.lanes] == ["reason"]
    finally:
        w.detach()
