"""Advice rules fire at their thresholds and not just below them."""

from __future__ import annotations

import math

import pytest

from hybridnb.store.ledger import connect
from hybridnb.spend.advice import (
    Thresholds,
    add_capacity,
    breakeven_rows,
    compute_advice,
    dont_reason_twice,
    idle_capacity,
    move_the_work,
)
from hybridnb.spend.signals import Tracker

T = Thresholds()


def _kinds(advice):
    return [a.kind for a in advice]


# ------------------------------------------------------------- add capacity


def _lane(started: int, wait_s: float, metrics=None):
    tr = Tracker()
    tr.enqueued("local", "vllm", started + 3, max_concurrency=4)
    tr.started("local", "vllm", started, wait_s=wait_s)
    for _ in range(started):
        tr.finished("local", "vllm", latency_s=0.1, error=False)
    if metrics is not None:
        tr.set_backend_metrics("local", "vllm", metrics)
    return tr.snapshot()


@pytest.mark.parametrize(
    "started,wait,fires",
    [(10, 2.0, True), (10, 1.99, False), (9, 5.0, False), (50, 3.0, True)],
)
def test_add_capacity_on_sustained_queue_wait(started, wait, fires):
    advice = add_capacity(_lane(started, wait), T)
    assert _kinds(advice) == (["add_capacity"] if fires else [])
    if fires:
        n = advice[0].numbers
        assert n["wait_p50_s"] == pytest.approx(wait)
        assert n["queue_depth"] == 3 and n["started"] == started
        assert "queue wait" in advice[0].message


@pytest.mark.parametrize(
    "metrics,fires,word",
    [
        # the vLLM server backend's summary keys
        ({"requests_waiting": 8, "kv_cache_usage": 0.1}, True, "waiting"),
        ({"requests_waiting": 7, "kv_cache_usage": 0.1}, False, ""),
        ({"requests_waiting": 0, "kv_cache_usage": 0.9}, True, "KV cache"),
        ({"requests_waiting": 0, "kv_cache_usage": 0.89}, False, ""),
        # raw vLLM metric names, KV usage as a fraction or in percent
        ({"num_requests_waiting": 8, "kv_cache_usage_perc": 0.1}, True, "waiting"),
        ({"num_requests_waiting": 0, "kv_cache_usage_perc": 0.95}, True, "KV cache"),
        ({"num_requests_waiting": 0, "kv_cache_usage_perc": 89.0}, False, ""),
        ({"num_requests_waiting": 0, "kv_cache_usage_perc": 90.0}, True, "KV cache"),
    ],
)
def test_add_capacity_on_vllm_saturation(metrics, fires, word):
    advice = add_capacity(_lane(1, 0.0, metrics), T)
    assert _kinds(advice) == (["add_capacity"] if fires else [])
    if fires:
        assert word in advice[0].message
        kv = metrics.get("kv_cache_usage", metrics.get("kv_cache_usage_perc"))
        assert advice[0].numbers["kv_cache_usage"] == pytest.approx(kv if kv <= 1 else kv / 100)


def test_add_capacity_threshold_is_configurable():
    lanes = _lane(10, 1.0)
    assert add_capacity(lanes, T) == []
    assert _kinds(add_capacity(lanes, Thresholds(wait_s=0.5))) == ["add_capacity"]


# ------------------------------------------------------------ idle capacity


@pytest.mark.parametrize(
    "held,busy,fires",
    [(100.0, 29.0, True), (100.0, 30.0, False), (59.0, 1.0, False), (60.0, 1.0, True)],
)
def test_idle_capacity(write, home, held, busy, fires):
    # two calls sharing the held/busy time, priced as compute at $2/GPU-hour
    for _ in range(2):
        write(dict(route="local", backend="vllm", model="qwen", pricing="compute",
                   held_s=held / 2, busy_s=busy / 2, gpus=1, cost_usd=held / 2 / 3600 * 2))
    write(dict(route="reason", held_s=0))  # token calls do not count
    con = connect(home)
    advice = idle_capacity(con, T)
    assert _kinds(advice) == (["idle_capacity"] if fires else [])
    if fires:
        n = advice[0].numbers
        assert n["held_s"] == pytest.approx(held)
        assert n["utilisation"] == pytest.approx(busy / held)
        assert n["idle_usd"] == pytest.approx(held / 3600 * 2 * (1 - busy / held))


# ------------------------------------------------------------ move the work


def _template_calls(write, n, answers, cost=0.001, template="tpl1"):
    for i in range(n):
        write(dict(template=template, answer_hash=answers[i % len(answers)] if isinstance(answers, list) else f"a{i}",
                   prompt_hash=f"p{template}{i}", cost_usd=cost, input_tokens=100, output_tokens=2))


def test_move_the_work_fires_with_breakeven(write, home):
    _template_calls(write, 20, ["yes", "no"])
    advice = move_the_work(connect(home), T)
    assert _kinds(advice) == ["move_the_work"]
    n = advice[0].numbers
    assert n["calls"] == 20 and n["cost_so_far_usd"] == pytest.approx(0.02)
    assert n["answer_repeat_share"] == 1.0 and n["distinct_answers"] == 2
    assert n["local_usd_per_row_source"] == "estimate"
    be = 2.0 / (0.001 - 0.00002)
    assert n["breakeven_rows"] == math.ceil(be)
    assert n["projected_tokens_usd"] == pytest.approx(10.0)
    assert n["projected_local_usd"] == pytest.approx(2.0 + 0.2)
    assert "break-even" in advice[0].message


def test_move_the_work_needs_min_calls(write, home):
    _template_calls(write, 19, ["yes", "no"])
    assert move_the_work(connect(home), T) == []


@pytest.mark.parametrize("unique,fires", [(4, True), (5, False)])
def test_move_the_work_needs_stable_answers(write, home, unique, fires):
    # 20 calls: (20 - unique) answers that repeat, `unique` one-off answers
    repeating = 20 - unique
    answers = [f"r{i // 2}" for i in range(repeating)] + [f"u{i}" for i in range(unique)]
    if repeating % 2:  # keep every repeating answer at >= 2 occurrences
        answers[repeating - 1] = "r0"
    _template_calls(write, 20, answers)
    advice = move_the_work(connect(home), T)
    assert _kinds(advice) == (["move_the_work"] if fires else [])


def test_move_the_work_only_when_it_pays_for_remaining_rows(write, home):
    _template_calls(write, 20, ["yes", "no"])
    con = connect(home)
    be = breakeven_rows(0.001, 0.00002, 2.0)  # 2040.8 rows
    assert move_the_work(con, T, remaining_rows=math.floor(be)) == []
    assert _kinds(move_the_work(con, T, remaining_rows=math.ceil(be))) == ["move_the_work"]


def test_move_the_work_uses_measured_local_cost(write, home):
    _template_calls(write, 20, ["yes", "no"])
    for _ in range(10):
        write(dict(route="local", backend="vllm", model="m", pricing="compute", cost_usd=0.0005))
    n = move_the_work(connect(home), T)[0].numbers
    assert n["local_usd_per_row_source"] == "ledger"
    assert n["local_usd_per_row"] == pytest.approx(0.0005)
    assert n["breakeven_rows"] == math.ceil(2.0 / 0.0005)


def test_move_the_work_ignores_local_route_and_other_templates(write, home):
    _template_calls(write, 20, ["yes"], template="tplA")
    write(*[dict(route="local", template="tplB", answer_hash="x", cost_usd=0.0) for _ in range(30)])
    advice = move_the_work(connect(home), T)
    assert [a.numbers["template"] for a in advice] == ["tplA"]


def test_breakeven_never_when_local_costs_more():
    assert breakeven_rows(0.001, 0.002, 1.0) == math.inf
    assert breakeven_rows(0.002, 0.001, 1.0) == pytest.approx(1000)


# -------------------------------------------------------- don't reason twice


@pytest.mark.parametrize("billed,fires", [(3, True), (2, False)])
def test_dont_reason_twice(write, home, billed, fires):
    write(*[dict(prompt_hash="same", cost_usd=0.01) for _ in range(billed)])
    write(*[dict(prompt_hash="same", status="cached", cached=True, saved_usd=0.01) for _ in range(5)])
    write(*[dict(prompt_hash=f"other{i}", cost_usd=0.01) for i in range(5)])
    advice = dont_reason_twice(connect(home), T)
    assert _kinds(advice) == (["dont_reason_twice"] if fires else [])
    if fires:
        assert advice[0].numbers["repeat_calls"] == billed - 1
        assert advice[0].numbers["wasted_usd"] == pytest.approx(0.01 * (billed - 1))


def test_compute_advice_combines_rules_and_is_quiet_on_healthy_ledger(write, home):
    write(*[dict(prompt_hash=f"p{i}", answer_hash=f"a{i}", template="t") for i in range(30)])
    con = connect(home)
    assert compute_advice(con, _lane(20, 0.01)) == []
    write(*[dict(prompt_hash="dup", cost_usd=0.01) for _ in range(4)])
    kinds = _kinds(compute_advice(connect(home), _lane(20, 9.0)))
    assert kinds == ["add_capacity", "dont_reason_twice"]


def test_one_prompt_repeated_is_not_move_the_work(write, home):
    write(*[dict(template="t", prompt_hash="same", answer_hash="a", cost_usd=0.001) for _ in range(30)])
    con = connect(home)
    assert move_the_work(con, T) == []
    assert _kinds(dont_reason_twice(con, T)) == ["dont_reason_twice"]
