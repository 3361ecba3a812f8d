"""Altair charts carry the ledger's numbers and mark the break-even point."""

from __future__ import annotations

import math

import altair as alt
import pytest

from hybridnb.spend import charts
from hybridnb.spend.advice import Thresholds


def _values(chart):
    spec = chart.to_dict()
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "values" in node and isinstance(node["values"], list):
                found.append(node["values"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    return found


@pytest.fixture
def spent(write):
    write(*[dict(cost_usd=0.001, template="t") for _ in range(30)])
    write(*[dict(route="local", backend="vllm", model="q", pricing="compute", cost_usd=0.0001)
            for _ in range(10)])


def test_spend_over_time(home, spent):
    c = charts.spend_over_time(home)
    assert isinstance(c, alt.Chart)
    (vals,) = _values(c)
    last = {}
    for v in vals:
        last[v["route"]] = v["cum_usd"]
    assert last["reason"] == pytest.approx(0.03) and last["local"] == pytest.approx(0.001)


def test_cost_per_1k_rows(home, spent):
    (vals,) = _values(charts.cost_per_1k_rows(home))
    per = {v["route"]: v["usd_per_1k"] for v in vals}
    assert per == {"reason": pytest.approx(1.0), "local": pytest.approx(0.1)}


def test_breakeven_marks_crossing(home, spent):
    t = Thresholds(setup_usd=1.0)
    d = charts.breakeven_data(home, thresholds=t)
    assert d["local_usd_per_row_source"] == "ledger"
    be = 1.0 / (0.001 - 0.0001)
    assert d["breakeven_rows"] == math.ceil(be)
    chart = charts.breakeven(home, thresholds=t)
    assert isinstance(chart, alt.LayerChart)
    points = [v for vals in _values(chart) for v in vals if "label" in v]
    assert points and points[0]["rows"] == math.ceil(be)
    # at the marked point the two lines meet
    lines = [v for vals in _values(chart) for v in vals if v.get("rows") == points[0]["rows"] and "pricing" in v]
    tokens = next(v["usd"] for v in lines if v["pricing"] == "tokens")
    local = next(v["usd"] for v in lines if v["pricing"] != "tokens")
    assert tokens == pytest.approx(local, rel=1e-3)


def test_breakeven_without_crossing(home, write):
    write(*[dict(route="local", pricing="compute", cost_usd=0.01) for _ in range(3)])
    d = charts.breakeven_data(home)
    assert d["breakeven_rows"] is None
    chart = charts.breakeven(home)
    assert not [v for vals in _values(chart) for v in vals if "label" in v]


def test_charts_on_empty_ledger(home):
    assert _values(charts.spend_over_time(home)) == [[]]  # no spend: no points, not a crash
    assert _values(charts.cost_per_1k_rows(home)) == [[]]
    d = charts.breakeven_data(home)
    assert d["observed_rows"] == 0 and d["tokens_usd_per_row"] == 0.0
    assert d["breakeven_rows"] is None and d["breakeven_usd"] is None  # tokens cost nothing: never breaks even
    (lines,) = _values(charts.breakeven(home))  # no break-even point, no observed-rows rule
    local = sorted((v["rows"], v["usd"]) for v in lines if v["pricing"] != "tokens")
    assert [x for x, _ in local] == [0, d["rows"]]
    assert local[0][1] == d["setup_usd"] and local[1][1] == pytest.approx(d["setup_usd"] + d["local_usd_per_row"] * d["rows"])
    assert all(v["usd"] == 0.0 for v in lines if v["pricing"] == "tokens")


def test_compute_records_count_their_rows(home, write):
    write(*[dict(cost_usd=0.001) for _ in range(10)])
    # one record_compute() row: a local classifier that labelled 5,000 rows for $0.05
    write(dict(route="local", backend="classifier", model="distilled", pricing="compute",
               kind="compute", rows=5000, cost_usd=0.05, held_s=72.0, busy_s=72.0, gpus=1))
    (vals,) = _values(charts.cost_per_1k_rows(home))
    per = {v["route"]: v for v in vals}
    assert per["local"]["rows"] == 5000 and per["local"]["usd_per_1k"] == pytest.approx(0.01)
    d = charts.breakeven_data(home)
    assert d["local_usd_per_row"] == pytest.approx(0.05 / 5000)
    assert d["local_usd_per_row_source"] == "ledger"
