"""Token prices come from genai-prices; compute is priced by shared held time."""

import random

import pytest

from hybridnb.core import pricing
from hybridnb.core.clock import HeldClock
from hybridnb.types import Usage
from hybridnb.config import get_settings


def test_library_price_matches_genai_prices_directly():
    from genai_prices import Usage as GUsage, calc_price

    expected = float(calc_price(GUsage(input_tokens=1000, output_tokens=500), model_ref="gpt-4o-mini").total_price)
    cost, unpriced = pricing.token_cost("gpt-4o-mini", Usage(1000, 500))
    assert not unpriced
    assert cost == pytest.approx(expected)


def test_override_wins_and_cached_tokens_are_cheaper():
    ov = {"gpt-4o-mini": {"input": 10.0, "output": 20.0, "cached_input": 1.0}}
    cost, _ = pricing.token_cost("gpt-4o-mini", Usage(1_000_000, 1_000_000, cached_input_tokens=500_000), ov)
    assert cost == pytest.approx(0.5 * 10 + 0.5 * 1 + 20)


def test_unknown_model_is_unpriced_not_an_error():
    assert pricing.token_cost("no-such-model-xyz", Usage(100, 100)) == (0.0, True)


def test_held_shares_add_up_to_the_union_of_intervals():
    rng = random.Random(7)
    iv = [(a, a + rng.uniform(0.01, 3)) for a in (rng.uniform(0, 50) for _ in range(300))]
    shares = pricing.held_shares(iv)
    # union length computed independently
    union, end = 0.0, -1.0
    for a, b in sorted(iv):
        if a > end:
            union += b - a
            end = b
        elif b > end:
            union += b - end
            end = b
    assert sum(shares) == pytest.approx(union)
    assert pricing.held_shares([(0, 2), (1, 3)]) == [1.5, 1.5]


def test_online_clock_agrees_with_offline_shares():
    rng = random.Random(3)
    iv = [(a, a + rng.uniform(0.1, 2)) for a in (rng.uniform(0, 20) for _ in range(100))]
    events = sorted([(a, 1, i) for i, (a, _) in enumerate(iv)] + [(b, 0, i) for i, (_, b) in enumerate(iv)])
    clock, tokens, online = HeldClock(), {}, [0.0] * len(iv)
    for t, is_start, i in events:
        if is_start:
            tokens[i] = clock.start(t)
        else:
            online[i] = clock.finish(tokens[i], t)
    assert online == pytest.approx(pricing.held_shares(iv))


def test_compute_rates(hybridnb_home, monkeypatch):
    monkeypatch.setenv("HYBRIDNB_LOCAL_GPU_HOUR_USD", "3")
    monkeypatch.setenv("HYBRIDNB_LOCAL_GPUS", "2")
    rs = get_settings().route("local")
    assert pricing.compute_rate_per_hour(rs, "vllm") == 6.0
    assert pricing.compute_rate_per_hour(rs, "embedded") == rs.cpu_hour_usd
    owned = get_settings({"local.hardware_usd": 30000, "local.lifetime_hours": 20000,
                          "local.power_kw": 1.0}).route("local")
    assert pricing.compute_rate_per_hour(owned, "vllm") == pytest.approx(1.5 + 0.15)
    assert pricing.compute_cost(1800, 6.0) == 3.0


def test_the_clock_forgets_change_points_no_call_in_flight_can_need():
    clock = HeldClock()
    for i in range(1000):  # a long session of one call at a time
        tok = clock.start(float(i))
        assert clock.finish(tok, i + 0.5) == 0.5
    assert len(clock._events) <= 2  # not one per call: an idle clock keeps only its last change point
    a = clock.start(2000.0)
    for i in range(500):  # one long call while many short ones come and go
        tok = clock.start(2001.0 + i)
        clock.finish(tok, 2001.5 + i)
    assert len(clock._events) <= 1002
    b = clock.start(2600.0)
    assert clock.finish(a, 2700.0) == pytest.approx(700.0 - 500 * 0.25 - 100 / 2)  # halves while shared
    assert len(clock._events) <= 3  # only what b, still in flight, can need
    assert clock.finish(b, 2800.0) == pytest.approx(50.0 + 100.0)


def test_a_call_starting_at_the_instant_another_ends_shares_nothing_with_it():
    clock = HeldClock()
    a = clock.start(0.0)
    b = clock.start(10.0)  # while a runs
    c = clock.start(20.0)
    assert clock.finish(a, 20.0) == pytest.approx(10.0 + 10.0 / 2)  # c started at this very instant
    assert clock.finish(b, 30.0) == pytest.approx(10.0 / 2 + 10.0 / 2)
    assert clock.finish(c, 40.0) == pytest.approx(10.0 / 2 + 10.0)
    d = clock.start(50.0)
    e = clock.start(60.0)  # the only call left in flight starts at the instant d ends
    assert clock.finish(d, 60.0) == pytest.approx(10.0)
    assert clock.finish(e, 70.0) == pytest.approx(10.0)


def test_owned_hardware_needs_both_price_and_lifetime_and_power_is_optional(hybridnb_home, monkeypatch):
    monkeypatch.setenv("HYBRIDNB_LOCAL_GPU_HOUR_USD", "3")
    monkeypatch.setenv("HYBRIDNB_LOCAL_GPUS", "2")
    no_price = get_settings({"local.lifetime_hours": 20000, "local.power_kw": 1.0}).route("local")
    assert pricing.compute_rate_per_hour(no_price, "vllm") == 6.0  # rented: 2 GPUs x $3
    no_power = get_settings({"local.hardware_usd": 30000, "local.lifetime_hours": 20000}).route("local")
    assert pricing.compute_rate_per_hour(no_power, "vllm") == 1.5  # amortised only: no power figure, no power cost


@pytest.mark.parametrize("gpus, rate", [("0.5", 1.5), ("0", 0.0)])
def test_rented_rate_is_per_gpu_held(hybridnb_home, monkeypatch, gpus, rate):
    monkeypatch.setenv("HYBRIDNB_LOCAL_GPU_HOUR_USD", "3")
    monkeypatch.setenv("HYBRIDNB_LOCAL_GPUS", gpus)
    assert pricing.compute_rate_per_hour(get_settings().route("local"), "vllm") == rate
