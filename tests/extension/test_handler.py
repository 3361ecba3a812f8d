"""GET /hybridnb/summary and /hybridnb/summary.md against a real server and real ledger files."""

from __future__ import annotations

import json
import re
import time

import pytest
from tornado.httpclient import HTTPClientError


from hybridnb.store.ledger import LedgerWriter, Record, connect

KERNEL_A = "6f1c2a0e-1111-4aaa-8bbb-000000000001"
KERNEL_B = "6f1c2a0e-2222-4aaa-8bbb-000000000002"


def _rec(route="reason", backend="openai", model="gpt-5", status="ok", cost=0.01, **kw):
    kw.setdefault("ts", time.time())
    return Record(route=route, backend=backend, model=model, status=status, cost_usd=cost,
                  input_tokens=kw.pop("inp", 100), output_tokens=kw.pop("out", 50), **kw)


def _write(home, session, records):
    w = LedgerWriter(home, session=session)
    w.extend(records)
    w.close()


async def _get(jp_fetch, **params):
    r = await jp_fetch("hybridnb", "summary", params=params)
    assert r.code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    return json.loads(r.body)


async def test_unauthenticated_request_is_refused(jp_fetch, ledger_home):
    for path in ("summary", "summary.md"):
        with pytest.raises(HTTPClientError) as e:
            await jp_fetch("hybridnb", path, headers={"Authorization": ""})
        assert e.value.code in (401, 403)
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("hybridnb", "summary", headers={"Authorization": "token wrong"})
    assert e.value.code in (401, 403)


async def test_missing_ledger_gives_empty_valid_state(jp_fetch, ledger_home):
    s = await _get(jp_fetch)
    assert s["version"] == 1
    assert "no ledger" in s["note"]
    assert s["totals"]["calls"] == 0 and s["totals"]["cost_usd"] == 0
    assert s["by_model"] == [] and s["recent"] == [] and s["sessions"] == []
    assert s["budget"]["state"] == "none"
    assert isinstance(s["advice"], list)
    assert "No model calls recorded yet." in s["markdown"]
    s = await _get(jp_fetch, kernel=KERNEL_A)  # a notebook that has not spent yet: zero, not absent
    assert s["current"]["cost_usd"] == 0 and s["current"]["today"]["calls"] == 0
    assert s["current"]["kernel"] == KERNEL_A


async def test_totals_match_a_direct_duckdb_query(jp_fetch, ledger_home):
    now = time.time()
    _write(ledger_home, f"kernel-{KERNEL_A}", [
        _rec(cost=0.012, ts=now - 5, held_s=2.0, busy_s=2.0),  # a token call: not utilisation
        _rec(cost=0.0, status="cached", saved_usd=0.012, ts=now - 4),
        _rec(route="local", backend="vllm", model="smol", cost=0.003, pricing="compute",
             held_s=30.0, busy_s=12.0, gpus=1.0, ts=now - 3),
    ])
    _write(ledger_home, f"kernel-{KERNEL_B}", [
        _rec(cost=0.5, ts=now - 2, inp=1000, out=2000),
        _rec(status="error", cost=0.0, error_class="ServerError", ts=now - 86400 * 3),
    ])
    s = await _get(jp_fetch)
    con = connect(ledger_home)
    calls, hits, cost, saved, toks = con.execute(
        "SELECT count(*) FILTER (WHERE status <> 'cached'), count(*) FILTER (WHERE status = 'cached'),"
        " sum(cost_usd), sum(saved_usd), sum(input_tokens + output_tokens) FROM ledger").fetchone()
    con.close()
    t = s["totals"]
    assert (t["calls"], t["cache_hits"], t["tokens"]) == (calls, hits, toks) == (4, 1, 4 * 150 + 3000)
    assert t["cost_usd"] == pytest.approx(cost) == pytest.approx(0.515)
    assert t["saved_usd"] == pytest.approx(saved)
    assert t["errors"] == 1
    assert t["utilisation"] == pytest.approx(12.0 / 30.0)
    # three days ago is not today
    assert s["today"]["calls"] == 3 and s["today"]["cost_usd"] == pytest.approx(0.515)
    routes = {r["route"]: r for r in s["by_route"]}
    assert routes["local"]["cost_usd"] == pytest.approx(0.003)
    assert routes["local"]["gpu_hours"] == pytest.approx(30.0 / 3600)
    assert routes["reason"]["calls"] == 3
    assert routes["reason"]["utilisation"] is None  # a token API has no utilisation
    assert {(r["route"], r["backend"]) for r in s["by_backend"]} == {("reason", "openai"), ("local", "vllm")}
    assert [r["ts"] for r in s["recent"]] == sorted((r["ts"] for r in s["recent"]), reverse=True)
    assert len(s["recent"]) == 5
    assert {x["session"] for x in s["sessions"]} == {f"kernel-{KERNEL_A}", f"kernel-{KERNEL_B}"}
    assert s["current"] is None and s["note"] == ""
    lanes = {(x["route"], x["backend"]): x for x in s["lanes"]}
    assert lanes[("reason", "openai")]["calls"] == 3  # the 3-day-old error is outside the window


async def test_kernel_scope_selects_only_that_kernel(jp_fetch, ledger_home):
    now = time.time()
    _write(ledger_home, f"kernel-{KERNEL_A}", [_rec(cost=0.25, ts=now), _rec(cost=0.25, ts=now)])
    _write(ledger_home, f"kernel-{KERNEL_B}", [_rec(cost=1.0, ts=now)])
    s = await _get(jp_fetch, kernel=KERNEL_A)
    assert s["current"]["cost_usd"] == pytest.approx(0.5)
    assert s["current"]["calls"] == 2
    assert s["current"]["today"]["cost_usd"] == pytest.approx(0.5)
    assert s["totals"]["cost_usd"] == pytest.approx(1.5)
    assert "this notebook" in s["markdown"]
    # by notebook tag too (the dispatcher may tag rows with the notebook path)
    _write(ledger_home, "other", [_rec(cost=2.0, notebook="work/a.ipynb", ts=now)])
    s = await _get(jp_fetch, notebook="work/a.ipynb")
    assert s["current"]["cost_usd"] == pytest.approx(2.0)
    _write(ledger_home, "abs", [_rec(cost=4.0, notebook="/home/u/work/a.ipynb", ts=now),
                                _rec(cost=8.0, notebook="/home/u/work/xa.ipynb", ts=now)])
    s = await _get(jp_fetch, notebook="work/a.ipynb")  # absolute tag, relative lab path
    assert s["current"]["cost_usd"] == pytest.approx(6.0)
    s = await _get(jp_fetch, kernel="no-such-kernel")
    assert s["current"]["calls"] == 0 and s["current"]["cost_usd"] == 0


@pytest.mark.parametrize("budget,state", [("10", "ok"), ("1.2", "warn"), ("1.0", "over")])
async def test_budget_state(jp_fetch, ledger_home, monkeypatch, budget, state):
    monkeypatch.setenv("HYBRIDNB_BUDGET_USD", budget)
    _write(ledger_home, "s", [_rec(cost=1.0)])
    s = await _get(jp_fetch)
    b = s["budget"]
    assert b["state"] == state
    assert b["limit_usd"] == pytest.approx(float(budget))
    assert b["remaining_usd"] == pytest.approx(max(0.0, float(budget) - 1.0))
    assert f"| {state} |" in s["markdown"]


async def test_half_written_line_is_skipped(jp_fetch, ledger_home):
    _write(ledger_home, "s", [_rec(cost=0.1), _rec(cost=0.2)])
    with open(ledger_home / "ledger" / "s.jsonl", "a") as fh:
        fh.write('{"ts": 1, "route": "reason", "cost_us')  # a kernel killed mid-write
    s = await _get(jp_fetch)
    assert s["totals"]["calls"] == 2
    assert s["totals"]["cost_usd"] == pytest.approx(0.3)


async def test_a_damaged_segment_is_quarantined_and_the_rest_still_shows(jp_fetch, ledger_home):
    _write(ledger_home, f"kernel-{KERNEL_A}", [_rec(cost=0.25), _rec(cost=0.5)])
    d = ledger_home / "ledger"
    (d / "broken-0.parquet").write_bytes(b"this is not parquet at all")
    s = await _get(jp_fetch)
    assert s["totals"]["calls"] == 2 and s["totals"]["cost_usd"] == pytest.approx(0.75)
    assert not (d / "broken-0.parquet").exists()
    assert [p.name.split(".parquet")[0] for p in (d / "quarantine").iterdir()] == ["broken-0"]


async def test_markdown_escapes_dollars(jp_fetch, ledger_home, assert_no_latex):
    _write(ledger_home, f"kernel-{KERNEL_A}", [_rec(cost=1.2345, model="m|$x"), _rec(cost=0.5)])
    r = await jp_fetch("hybridnb", "summary.md", params={"kernel": KERNEL_A})
    assert r.code == 200 and r.headers["Content-Type"].startswith("text/markdown")
    md = r.body.decode()
    assert "\\$1.7345" in md  # the total
    assert_no_latex(md)
    assert "m\\|\\$x" in md
    table = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert {len(re.split(r"(?<!\\)\|", ln)) for ln in table} == {12}  # 10 columns in every row
    s = await _get(jp_fetch, kernel=KERNEL_A)
    assert s["markdown"] == md


async def test_advice_comes_from_the_ledger(jp_fetch, ledger_home):
    pytest.importorskip("hybridnb.spend.advice")
    now = time.time()
    # the same prompt billed three times with the cache off: "don't reason twice"
    _write(ledger_home, "s", [_rec(cost=0.02, prompt_hash="p1", answer_hash="a1", ts=now - i)
                              for i in range(3)])
    s = await _get(jp_fetch)
    kinds = {a["kind"] for a in s["advice"]}
    assert "dont_reason_twice" in kinds, s.get("advice_error")
    assert "**Advice in force:**" in s["markdown"]


async def test_polls_over_a_changing_ledger_are_throttled(jp_fetch, ledger_home, monkeypatch):
    from hybridnb.notebook.server import _handlers

    monkeypatch.setattr(_handlers, "BUSY_MIN_S", 3600.0)
    _write(ledger_home, "s1", [_rec(cost=1.0)])
    assert (await _get(jp_fetch))["totals"]["cost_usd"] == pytest.approx(1.0)
    _write(ledger_home, "s2", [_rec(cost=2.0)])
    assert (await _get(jp_fetch))["totals"]["cost_usd"] == pytest.approx(1.0)  # throttled copy
    assert (await _get(jp_fetch, fresh="1"))["totals"]["cost_usd"] == pytest.approx(3.0)
    _write(ledger_home, "s3", [_rec(cost=4.0)])
    r = await jp_fetch("hybridnb", "summary.md")  # the export is never a stale copy
    assert "\\$7.0000" in r.body.decode()
