"""The cost summary equals DuckDB over the ledger; formats; export; per-cell usage."""

from __future__ import annotations

import json
import re

import duckdb
import pytest

from hybridnb.errors import HybridnbError
from hybridnb.spend import render
from hybridnb.spend.cell import CellUsage, cell_usage
from hybridnb.spend.report import Budget, Scope, budget_in, build_report, export_ledger
from hybridnb.spend.signals import signals
from hybridnb.store.ledger import connect

_CODE = re.compile(r"`[^`]*`")


@pytest.fixture
def mixed(write):
    recs = []
    recs += write(*[dict(input_tokens=1000 + i, output_tokens=50, cost_usd=0.0004 + i * 1e-5,
                         held_s=0.4, busy_s=0.4, prompt_hash=f"p{i}") for i in range(7)])
    recs += write(*[dict(status="cached", cached=True, saved_usd=0.0004, prompt_hash="p1")
                    for _ in range(3)])
    recs += write(dict(status="error", error_class="RateLimited", cost_usd=0.0))
    recs += write(dict(model="gpt-4.1", input_tokens=5000, output_tokens=900, cost_usd=0.017))
    recs += write(*[dict(route="local", backend="vllm", model="qwen2.5-7b", pricing="compute",
                         input_tokens=300, output_tokens=20, held_s=12.0, busy_s=3.0 + i,
                         gpus=2, cost_usd=12.0 * 2 / 3600 * 2.5) for i in range(5)])
    return recs


def _oracle(home):
    """An independent DuckDB query (not ledger.SUMMARY_SQL) over the raw files."""
    con = connect(home)
    q = """
    SELECT route, backend, model,
           sum(CASE WHEN status = 'cached' THEN 0 ELSE 1 END), sum(CASE WHEN status = 'cached' THEN 1 ELSE 0 END),
           sum(input_tokens), sum(output_tokens), sum(cost_usd), sum(saved_usd),
           sum(held_s * gpus) / 3600,
           CASE WHEN bool_or(pricing = 'compute') THEN sum(busy_s) / nullif(sum(held_s), 0) END
    FROM ledger GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    """
    return con.execute(q).fetchall()


def test_summary_numbers_equal_duckdb(home, mixed):
    rep = build_report(home, Scope("total"), budget_in(home, 1.0, "total"), lanes=[])
    got = sorted(
        (r["route"], r["backend"], r["model"], r["calls"], r["cache_hits"], r["input_tokens"],
         r["output_tokens"], r["cost_usd"], r["saved_usd"], r["gpu_hours"], r["utilisation"])
        for r in rep.rows
    )
    want = _oracle(home)
    assert len(got) == len(want) == 3
    for g, w in zip(got, want):
        assert g[:7] == w[:7]
        assert g[7:10] == pytest.approx(w[7:10])
        assert (g[10] is None) == (w[10] is None)
        if w[10] is not None:
            assert g[10] == pytest.approx(w[10])
    assert rep.budget.spent_usd == pytest.approx(sum(w[7] for w in want))
    assert rep.totals["cost_usd"] == pytest.approx(rep.budget.spent_usd)
    assert rep.budget.remaining_usd == pytest.approx(1.0 - rep.budget.spent_usd)


def test_budget_counts_its_own_basis_not_the_report_scope(home, write):
    """A notebook's report with a session budget: the budget's spend is the session's."""
    write(dict(cost_usd=0.25, notebook="/lab/a.ipynb", session="k-1"),
          dict(cost_usd=0.5, notebook="/lab/b.ipynb", session="k-1"),
          dict(cost_usd=2.0, notebook="/lab/a.ipynb", session="k-2"))
    rep = build_report(home, Scope("notebook", notebook="a.ipynb"),
                       budget_in(home, 1.0, "session", session="k-1", notebook="a.ipynb"))
    assert rep.totals["cost_usd"] == 2.25
    assert rep.budget.spent_usd == 0.75 and rep.budget.state == "ok"
    assert render.budget_line(rep.budget) == "session budget: $0.7500 of $1.00 spent (75%), $0.2500 left"
    nb = budget_in(home, 1.0, "notebook", session="k-1", notebook="a.ipynb")
    assert nb.spent_usd == 2.25 and nb.state == "over" and nb.remaining_usd == 0


@pytest.mark.parametrize("per,label", [("session", "session budget"), ("notebook", "notebook budget"),
                                       ("day", "today's budget"), ("total", "total budget")])
def test_every_budget_line_names_its_basis(per, label):
    b = Budget(2.0, per, spent_usd=0.5)
    assert render.budget_line(b).startswith(f"{label}: $0.5000 of $2.00 spent (25%)")
    assert b.to_dict()["label"] == label and b.to_dict()["line"] == render.budget_line(b)
    assert render.budget_line(Budget(None, per)) == "no budget set"


def test_markdown_keeps_every_dollar_in_a_code_span(home, mixed, write):
    write(*[dict(prompt_hash="dup", cost_usd=0.01) for _ in range(4)])  # advice in force
    md = render.to_markdown(build_report(home, Scope("total"), budget_in(home, 0.5, "day")))
    assert "`$" in md
    for line in md.splitlines():  # outside code spans no $ at all: nothing for MathJax to pair
        assert "$" not in _CODE.sub("", line), line
    assert "Don't reason twice" in md and "today's budget" in md
    assert "| **total** |" in md
    # the table has one row per route/backend/model + header, rule and total
    assert len([ln for ln in md.splitlines() if ln.startswith("|")]) == 3 + 3


def test_html_text_and_json(home, mixed):
    rep = build_report(home, Scope("total"), Budget(None))
    html = render.to_html(rep)
    assert "<table>" in html and "qwen2.5-7b" in html and "no budget set" in html
    for run in re.split(r"<code>[^<]*</code>", render.to_html(build_report(home, budget=budget_in(home, 1.0, "total")))):
        assert "$" not in re.sub(r"<[^>]+>", "", run), run
    text = render.to_text(rep)
    assert render.money(rep.totals["cost_usd"]) in text and "all time" in text
    js = build_report(home, budget=budget_in(home, 2.0, "total")).to_dict()
    json.dumps(js, allow_nan=False)  # plain data
    assert js["budget"]["limit_usd"] == 2.0 and len(js["rows"]) == 3
    assert js["display"]["cost"] == render.money(js["totals"]["cost_usd"])
    assert js["display"]["budget"] == js["budget"]["line"]


def test_report_rejects_an_unknown_format(home):
    from hybridnb.spend.kernel import report

    with pytest.raises(HybridnbError):
        report("pdf", home=home)


def test_empty_ledger_reports_zero(home):
    rep = build_report(home, budget=budget_in(home, 1.0, "total"))
    assert rep.rows == [] and rep.totals["cost_usd"] == 0 and rep.advice == []
    assert rep.budget.spent_usd == 0 and "No model calls" in render.to_markdown(rep)


@pytest.mark.parametrize("x,want", [(0, "$0.00"), (0.000042, "$0.000042"), (0.0027, "$0.0027"),
                                    (0.00004005, "$0.00004"), (0.0421, "$0.0421"),
                                    (4.2, "$4.20"), (1234.5, "$1,234.50"), (-0.5, "-$0.5000"),
                                    (None, "–"), (float("nan"), "–")])
def test_money_is_one_formatter(x, want):
    assert render.money(x) == want


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json", ".jsonl"])
def test_export_ledger_round_trips(home, mixed, tmp_path, suffix):
    out = export_ledger(tmp_path / f"out/ledger{suffix}", home=home)
    reader = {".csv": "read_csv", ".parquet": "read_parquet", ".json": "read_json",
              ".jsonl": "read_json"}[suffix]
    n, cost, ids = duckdb.sql(
        f"SELECT count(*), sum(cost_usd), count(DISTINCT id) FROM {reader}('{out}')"
    ).fetchall()[0]
    assert n == ids == len(mixed)
    assert cost == pytest.approx(sum(r.cost_usd for r in mixed))
    assert not list(out.parent.glob(".*.tmp"))


def test_export_unknown_suffix(home, mixed, tmp_path):
    with pytest.raises(HybridnbError, match="format"):
        export_ledger(tmp_path / "ledger.xlsx", home=home)


def test_cell_usage_metadata(mixed):
    meta = cell_usage(mixed)["hybridnb"]
    assert meta["calls"] == 7 + 1 + 1 + 5 and meta["cache_hits"] == 3 and meta["errors"] == 1
    assert meta["cost_usd"] == pytest.approx(sum(r.cost_usd for r in mixed))
    assert meta["input_tokens"] == sum(r.input_tokens for r in mixed)
    assert meta["gpu_hours"] == pytest.approx(5 * 12 * 2 / 3600)
    assert {(d["route"], d["model"]) for d in meta["by"]} == {
        ("reason", "gpt-4o-mini"), ("reason", "gpt-4.1"), ("local", "qwen2.5-7b")}
    json.dumps(meta)
    assert cell_usage([])["hybridnb"]["calls"] == 0


def test_signals_returns_plain_data(home, write):
    write(*[dict(prompt_hash="dup", cost_usd=0.01) for _ in range(4)])
    s = signals(home=home)
    json.dumps(s, default=str)
    assert {"lanes", "advice", "queue_depth", "in_flight", "throughput_rps"} <= set(s)
    twice = [a for a in s["advice"] if a["kind"] == "dont_reason_twice"]
    assert len(twice) == 1 and twice[0]["numbers"]["repeat_calls"] == 3


def test_cell_usage_display_carries_metadata(mixed):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    data, meta = shell.display_formatter.format(CellUsage(mixed))
    assert meta["hybridnb"]["calls"] == 14 and meta["hybridnb"]["cache_hits"] == 3
    assert "14 calls" in data["text/plain"] and "`$" in data["text/markdown"]
    assert render.money(sum(r.cost_usd for r in mixed)) in data["text/plain"]
