"""GPU-time pricing through the real dispatcher: cost = rate × GPUs × held seconds,
held shares of concurrent calls add up to the union of their intervals (never
double counted), busy seconds recorded, utilisation = busy ÷ held, idle cost =
(held − busy) × rate."""

from __future__ import annotations

import time
from typing import Sequence

import pytest

import hybridnb
from hybridnb.core import pricing
from hybridnb.spend.report import query_rows
from hybridnb.types import Completion, Request, Usage
from hybridnb.backends import _BUILTIN
from hybridnb.backends._base import Backend
from hybridnb.core.dispatcher import get_dispatcher
from hybridnb.store.ledger import connect


def union_length(intervals):
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if a > end:
            total, end = total + (b - a), b
        elif b > end:
            total, end = total + (b - end), b
    return total


@pytest.fixture
def gpu_route(hybridnb_home, openai_server, monkeypatch):
    monkeypatch.setenv("HYBRIDNB_LOCAL_BACKEND", "vllm")
    monkeypatch.setenv("HYBRIDNB_LOCAL_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("HYBRIDNB_LOCAL_MODEL", "test-local-model")
    monkeypatch.setenv("HYBRIDNB_LOCAL_GPU_HOUR_USD", "1800")  # $0.5 per GPU-second
    monkeypatch.setenv("HYBRIDNB_LOCAL_GPUS", "4")
    monkeypatch.setenv("HYBRIDNB_CONCURRENCY", "8")
    return openai_server


def test_concurrent_calls_share_held_time_instead_of_double_counting(gpu_route):
    gpu_route.script(delay_s=0.5)
    reqs = [Request(f"row {i}", "test-local-model") for i in range(16)]
    t0 = time.time()
    out = get_dispatcher().run(reqs, route="local", cache=False)
    wall = time.time() - t0
    assert all(r.ok for r in out)
    held = [r.held_s for r in out]
    latency = [r.latency_s for r in out]
    # 16 calls of ≥ 0.5 s on 8 workers: at least 2 waves held, never more than the wall clock,
    # while the calls' own latencies (8-way overlapped) add up to ≥ 8 s
    assert 1.0 <= sum(held) <= wall
    assert sum(latency) >= 8.0 and sum(held) < sum(latency)
    for r in out:
        assert r.cost_usd == pytest.approx(0.5 * 4 * r.held_s)  # $/GPU-s × GPUs × held
    rows = query_rows(connect(hybridnb.config.get_settings().home))
    (row,) = rows
    assert row["held_s"] == pytest.approx(sum(held))
    assert row["gpu_hours"] == pytest.approx(4 * sum(held) / 3600)
    assert row["cost_usd"] == pytest.approx(1800 * row["gpu_hours"])


def test_amortised_owned_hardware_is_the_rate(gpu_route, monkeypatch):
    # $40,000 box over 5 years of 8,000 h, drawing 2 kW at $0.20/kWh → $1.00 + $0.40 an hour
    for k, v in {"local.hardware_usd": 40000, "local.lifetime_hours": 40000, "local.power_kw": 2.0,
                 "local.electricity_usd_kwh": 0.20}.items():
        hybridnb.config.session.set(k, v)
    target = get_dispatcher().resolve("local")
    assert target.rate_per_hour == pytest.approx(1.40)
    gpu_route.script(delay_s=0.05)
    r = hybridnb.local("label me")
    assert r.cost_usd == pytest.approx(1.40 * r.held_s / 3600)


def test_failed_local_call_is_recorded_with_its_held_time(gpu_route):
    gpu_route.script(delay_s=0.05, queue=[{"status": 500}])
    hybridnb.config.session.set("max_retries", 0)
    r = hybridnb.local("this one fails", raise_errors=False)
    assert r.error is not None
    rec = hybridnb.ledger().row(0, named=True)
    assert rec["status"] == "error" and rec["held_s"] >= 0.05
    assert rec["cost_usd"] == pytest.approx(0.5 * 4 * rec["held_s"])


class BatchDevice(Backend):
    """A real backend that holds its device for a warm-up, then computes; reports busy time.

    (vLLM's engine does the same: load, then generate.)  The warm-up waits
    without computing, so held − busy is known by construction.
    """

    name = "batch-device"
    pricing = "compute"
    batch_size = 10
    max_concurrency = 1
    warmup_s = 0.3

    @classmethod
    def from_route(cls, rs, settings):
        return cls()

    async def complete(self, requests: Sequence[Request]) -> list[Completion]:
        import asyncio

        started = time.time()
        await asyncio.sleep(self.warmup_s)  # held, not busy
        t0 = time.perf_counter()
        x = 0
        while time.perf_counter() - t0 < 0.2:  # busy: real work on the CPU
            x += sum(i * i for i in range(1000))
        busy = time.perf_counter() - t0
        ended = time.time()
        return [Completion(f"done {r.prompt}", Usage(5, 1), started, ended, busy_s=busy / len(requests))
                for r in requests]


def test_busy_seconds_utilisation_and_idle_cost(hybridnb_home, monkeypatch):
    monkeypatch.setitem(_BUILTIN, "batch-device", f"{__name__}:BatchDevice")
    monkeypatch.setenv("HYBRIDNB_LOCAL_BACKEND", "batch-device")
    monkeypatch.setenv("HYBRIDNB_LOCAL_MODEL", "dev-model")
    monkeypatch.setenv("HYBRIDNB_LOCAL_GPU_HOUR_USD", "3600")  # $1 per GPU-second
    monkeypatch.setenv("HYBRIDNB_LOCAL_GPUS", "2")
    out = get_dispatcher().run([Request(f"r{i}", "dev-model") for i in range(10)], route="local", cache=False)
    assert all(r.ok for r in out)
    con = connect(hybridnb.config.get_settings().home)
    held, busy, cost, gpus = con.sql(
        "SELECT sum(held_s), sum(busy_s), sum(cost_usd), any_value(gpus) FROM ledger").fetchall()[0]
    assert held >= 0.5 and 0.2 <= busy < held  # one chunk: warm-up idle + compute busy
    assert cost == pytest.approx(2.0 * held)  # $1/GPU-s × 2 GPUs × held
    (row,) = query_rows(con)
    assert row["utilisation"] == pytest.approx(busy / held)
    idle_usd = (held - busy) * 2.0
    assert idle_usd == pytest.approx(cost * (1 - row["utilisation"]))
    assert idle_usd >= 0.3 * 2.0 * 0.9  # the 0.3 s warm-up × $2/s, give or take clock rounding


def test_held_shares_of_a_live_batch_match_the_offline_split():
    """HeldClock (online, used by the dispatcher) against pricing.held_shares (offline)."""
    from hybridnb.core.clock import HeldClock

    iv = [(0.0, 4.0), (1.0, 2.0), (1.5, 3.0), (5.0, 6.0), (5.0, 6.0)]
    clock, tokens, shares = HeldClock(), {}, {}
    events = sorted([(a, 1, i) for i, (a, _) in enumerate(iv)] + [(b, 0, i) for i, (_, b) in enumerate(iv)])
    for t, is_start, i in events:
        if is_start:
            tokens[i] = clock.start(t)
        else:
            shares[i] = clock.finish(tokens[i], t)
    online = [shares[i] for i in range(len(iv))]
    # 0–1 alone; 1–1.5 two-way; 1.5–2 three-way; 2–3 two-way; 3–4 alone; 5–6 two-way
    assert online == pytest.approx([1 + 0.25 + 1 / 6 + 0.5 + 1, 0.25 + 1 / 6, 1 / 6 + 0.5, 0.5, 0.5])
    assert online == pytest.approx(pricing.held_shares(iv))
    assert sum(online) == pytest.approx(union_length(iv)) == pytest.approx(5.0)
    idle = 6.0 - union_length(iv)  # nothing in flight 4–5: not held, not billed
    assert idle == pytest.approx(1.0)
