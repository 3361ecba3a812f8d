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


def _publish(home, kernel, **info):
    """What a kernel's ``spend.kernel.publish`` writes: its budget, basis, session, notebook."""
    d = home / "kernels"
    d.mkdir(parents=True, exist_ok=True)
    info = {"session": f"k-{kernel}", "notebook": "", "budget_per": "session",
            "budget_warn_fraction": 0.8, "updated": time.time(), **info}
    (d / f"k-{kernel}.json").write_text(json.dumps(info))


async def test_missing_ledger_gives_empty_valid_state(jp_fetch, ledger_home):
    s = await _get(jp_fetch)
    assert s["version"] == 2
    assert "no ledger" in s["note"]
    rep = s["report"]
    assert rep["totals"]["calls"] == 0 and rep["totals"]["cost_usd"] == 0 and rep["rows"] == []
    assert s["recent"] == [] and s["sessions"] == [] and s["all"]["calls"] == 0
    assert rep["budget"]["state"] == "none" and rep["display"]["budget"] == "no budget set"
    assert isinstance(rep["advice"], list)
    assert "No model calls recorded yet." in s["markdown"]
    s = await _get(jp_fetch, kernel=KERNEL_A)  # a notebook that has not spent yet: zero, not absent
    assert s["report"]["scope"]["per"] == "kernel" and s["report"]["totals"]["cost_usd"] == 0


async def test_totals_match_a_direct_duckdb_query(jp_fetch, ledger_home):
    now = time.time()
    _write(ledger_home, f"k-{KERNEL_A}", [
        _rec(cost=0.012, ts=now - 5, held_s=2.0, busy_s=2.0),  # a token call: not utilisation
        _rec(cost=0.0, status="cached", saved_usd=0.012, ts=now - 4),
        _rec(route="local", backend="vllm", model="smol", cost=0.003, pricing="compute",
             held_s=30.0, busy_s=12.0, gpus=1.0, ts=now - 3),
    ])
    _write(ledger_home, f"k-{KERNEL_B}", [
        _rec(cost=0.5, ts=now - 2, inp=1000, out=2000),
        _rec(status="error", cost=0.0, error_class="ServerError", ts=now - 86400 * 3),
    ])
    s = await _get(jp_fetch)
    con = connect(ledger_home)
    calls, hits, cost, saved, toks = con.execute(
        "SELECT count(*) FILTER (WHERE status <> 'cached'), count(*) FILTER (WHERE status = 'cached'),"
        " sum(cost_usd), sum(saved_usd), sum(input_tokens + output_tokens) FROM ledger").fetchone()
    con.close()
    t = s["report"]["totals"]
    assert s["report"]["scope"]["per"] == "total" and s["all"]["cost_usd"] == t["cost_usd"]
    assert (t["calls"], t["cache_hits"], t["tokens"]) == (calls, hits, toks) == (4, 1, 4 * 150 + 3000)
    assert t["cost_usd"] == pytest.approx(cost) == pytest.approx(0.515)
    assert t["saved_usd"] == pytest.approx(saved)
    assert t["errors"] == 1
    assert t["utilisation"] == pytest.approx(12.0 / 30.0)
    # three days ago is not today
    assert s["today"]["calls"] == 3 and s["today"]["cost_usd"] == pytest.approx(0.515)
    rows = {r["route"]: r for r in s["report"]["rows"]}
    assert rows["local"]["cost_usd"] == pytest.approx(0.003)
    assert rows["local"]["gpu_hours"] == pytest.approx(30.0 / 3600)
    assert rows["reason"]["calls"] == 3
    assert rows["reason"]["utilisation"] is None  # a token API has no utilisation
    assert [r["ts"] for r in s["recent"]] == sorted((r["ts"] for r in s["recent"]), reverse=True)
    assert len(s["recent"]) == 5
    assert {x["session"] for x in s["sessions"]} == {f"k-{KERNEL_A}", f"k-{KERNEL_B}"}
    assert s["note"] == ""
    lanes = {(x["route"], x["backend"]): x for x in s["lanes"]}
    assert lanes[("reason", "openai")]["calls"] == 3  # the 3-day-old error is outside the window


async def test_kernel_scope_selects_only_that_kernel(jp_fetch, ledger_home):
    now = time.time()
    _write(ledger_home, f"k-{KERNEL_A}", [_rec(cost=0.25, ts=now), _rec(cost=0.25, ts=now)])
    _write(ledger_home, f"k-{KERNEL_B}", [_rec(cost=1.0, ts=now)])
    s = await _get(jp_fetch, kernel=KERNEL_A)
    assert s["report"]["totals"]["cost_usd"] == 0.5 and s["report"]["totals"]["calls"] == 2
    assert s["all"]["cost_usd"] == 1.5
    assert "this kernel" in s["markdown"]
    # by notebook tag too (the dispatcher tags rows with the notebook path)
    _write(ledger_home, "other", [_rec(cost=2.0, notebook="work/a.ipynb", ts=now)])
    s = await _get(jp_fetch, notebook="work/a.ipynb")
    assert s["report"]["totals"]["cost_usd"] == 2.0
    _write(ledger_home, "abs", [_rec(cost=4.0, notebook="/home/u/work/a.ipynb", ts=now),
                                _rec(cost=8.0, notebook="/home/u/work/xa.ipynb", ts=now)])
    s = await _get(jp_fetch, notebook="work/a.ipynb")  # absolute tag, relative lab path
    assert s["report"]["totals"]["cost_usd"] == 6.0
    assert "this notebook (a.ipynb)" in s["markdown"]
    s = await _get(jp_fetch, kernel="no-such-kernel")
    assert s["report"]["totals"]["calls"] == 0 and s["report"]["totals"]["cost_usd"] == 0


async def test_the_kernels_own_budget_not_the_servers(jp_fetch, ledger_home, monkeypatch):
    """The server's settings say $0.0000001; the kernel set $10 per session: the extension shows the kernel's."""
    monkeypatch.setenv("HYBRIDNB_BUDGET_USD", "0.0000001")
    now = time.time()
    _write(ledger_home, f"k-{KERNEL_A}", [_rec(cost=0.25, ts=now, notebook="/srv/w/nb.ipynb")])
    _write(ledger_home, f"k-{KERNEL_B}", [_rec(cost=0.5, ts=now, notebook="/srv/w/nb.ipynb")])
    _publish(ledger_home, KERNEL_A, notebook="/srv/w/nb.ipynb", budget_usd=10.0)
    s = await _get(jp_fetch, kernel=KERNEL_A, notebook="w/nb.ipynb")
    b = s["report"]["budget"]
    assert (b["limit_usd"], b["per"], b["label"], b["state"]) == (10.0, "session", "session budget", "ok")
    assert b["spent_usd"] == 0.25  # the session's spend: not the notebook's 0.75
    assert s["report"]["totals"]["cost_usd"] == 0.75  # the report's scope is the notebook
    assert b["line"] == "session budget: $0.2500 of $10.00 spent (2%), $9.75 left"
    assert s["report"]["display"]["budget"] == b["line"]
    assert "session budget: `$0.2500` of `$10.00`" in s["markdown"]
    _publish(ledger_home, KERNEL_A, notebook="/srv/w/nb.ipynb", budget_usd=0.5, budget_per="notebook")
    b = (await _get(jp_fetch, kernel=KERNEL_A, notebook="w/nb.ipynb"))["report"]["budget"]
    assert (b["label"], b["spent_usd"], b["state"]) == ("notebook budget", 0.75, "over")
    # the notebook alone finds its kernel's file (the lab knows the path before the kernel id)
    b = (await _get(jp_fetch, notebook="w/nb.ipynb"))["report"]["budget"]
    assert b["limit_usd"] == 0.5
    # a kernel that published nothing has no budget here: never the server's default
    b = (await _get(jp_fetch, kernel=KERNEL_B))["report"]["budget"]
    assert b["state"] == "none" and b["limit_usd"] is None


@pytest.mark.parametrize("fraction,state", [(0.0, "warn"), (0.5, "ok"), (None, "ok")])
async def test_the_kernels_warn_fraction_is_read_as_set(jp_fetch, ledger_home, fraction, state):
    """0 means "warn at once" (not unset, so not the 0.8 default); a file without the key gets 0.8."""
    _write(ledger_home, f"k-{KERNEL_A}", [_rec(cost=0.25, ts=time.time())])
    _publish(ledger_home, KERNEL_A, budget_usd=1.0, budget_warn_fraction=fraction)
    b = (await _get(jp_fetch, kernel=KERNEL_A))["report"]["budget"]
    assert b["warn_fraction"] == (0.8 if fraction is None else fraction)
    assert (b["spent_usd"], b["state"]) == (0.25, state)


@pytest.mark.parametrize("budget,state", [("10", "ok"), ("1.2", "warn"), ("1.0", "over")])
async def test_settings_budget_without_a_notebook(jp_fetch, ledger_home, monkeypatch, budget, state):
    monkeypatch.setenv("HYBRIDNB_BUDGET_USD", budget)
    monkeypatch.setenv("HYBRIDNB_BUDGET_PER", "day")
    _write(ledger_home, "s", [_rec(cost=1.0)])
    b = (await _get(jp_fetch))["report"]["budget"]
    assert b["state"] == state and b["label"] == "today's budget" and b["source"] == "settings"
    assert b["limit_usd"] == float(budget)
    assert b["remaining_usd"] == max(0.0, float(budget) - 1.0)


async def test_half_written_line_is_skipped(jp_fetch, ledger_home):
    _write(ledger_home, "s", [_rec(cost=0.1), _rec(cost=0.2)])
    with open(ledger_home / "ledger" / "s.jsonl", "a") as fh:
        fh.write('{"ts": 1, "route": "reason", "cost_us')  # a kernel killed mid-write
    s = await _get(jp_fetch)
    assert s["report"]["totals"]["calls"] == 2
    assert s["report"]["totals"]["cost_usd"] == pytest.approx(0.3)


async def test_a_damaged_segment_is_quarantined_and_the_rest_still_shows(jp_fetch, ledger_home):
    _write(ledger_home, f"k-{KERNEL_A}", [_rec(cost=0.25), _rec(cost=0.5)])
    d = ledger_home / "ledger"
    (d / "broken-0.parquet").write_bytes(b"this is not parquet at all")
    s = await _get(jp_fetch)
    assert s["report"]["totals"]["calls"] == 2 and s["report"]["totals"]["cost_usd"] == pytest.approx(0.75)
    assert not (d / "broken-0.parquet").exists()
    assert [p.name.split(".parquet")[0] for p in (d / "quarantine").iterdir()] == ["broken-0"]


async def test_markdown_escapes_dollars(jp_fetch, ledger_home, assert_no_latex):
    _write(ledger_home, f"k-{KERNEL_A}", [_rec(cost=1.2345, model="m|$x"), _rec(cost=0.5)])
    r = await jp_fetch("hybridnb", "summary.md", params={"kernel": KERNEL_A})
    assert r.code == 200 and r.headers["Content-Type"].startswith("text/markdown")
    md = r.body.decode()
    assert "`$1.73`" in md  # the total
    assert_no_latex(md)
    assert "m\\|`$`x" in md
    table = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert {len(re.split(r"(?<!\\)\|", ln)) for ln in table} == {13}  # 11 columns in every row
    s = await _get(jp_fetch, kernel=KERNEL_A)
    assert s["markdown"] == md


async def test_advice_comes_from_the_ledger(jp_fetch, ledger_home):
    now = time.time()
    # the same prompt billed three times with the cache off: "don't reason twice"
    _write(ledger_home, "s", [_rec(cost=0.02, prompt_hash="p1", answer_hash="a1", ts=now - i)
                              for i in range(3)])
    s = await _get(jp_fetch)
    kinds = {a["kind"] for a in s["report"]["advice"]}
    assert "dont_reason_twice" in kinds
    assert "**Advice in force**" in s["markdown"]


async def test_polls_over_a_changing_ledger_are_throttled(jp_fetch, ledger_home, monkeypatch):
    from hybridnb.notebook.server import _handlers

    monkeypatch.setattr(_handlers, "BUSY_MIN_S", 3600.0)
    _write(ledger_home, "s1", [_rec(cost=1.0)])
    assert (await _get(jp_fetch))["all"]["cost_usd"] == 1.0
    _write(ledger_home, "s2", [_rec(cost=2.0)])
    assert (await _get(jp_fetch))["all"]["cost_usd"] == 1.0  # throttled copy
    assert (await _get(jp_fetch, fresh="1"))["all"]["cost_usd"] == 3.0
    _write(ledger_home, "s3", [_rec(cost=4.0)])
    r = await jp_fetch("hybridnb", "summary.md")  # the export is never a stale copy
    assert "`$7.00`" in r.body.decode()
