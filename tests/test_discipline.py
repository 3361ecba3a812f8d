"""The discipline report over a real ledger written by real calls to the loopback server:
two notebooks (two users) doing the same job, one that burns budget and one that scales."""

from __future__ import annotations

import math

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import hybridnb
from hybridnb import config
from hybridnb.errors import HybridnbError
from hybridnb.store import ledger

CLASSIFY = "Classify ticket {i}: is it about delivery or billing?"
VERSIONS = ["Summarise: {x}", "Summarise briefly: {x}", "Summarise in one line: {x}"]


def tags(nb: str, cell: str) -> dict:
    return {"notebook": f"/home/team/{nb}", "cell": cell}


@pytest.fixture
def team(reason_on_server, monkeypatch):
    """alice's a.ipynb reasons about everything; bob's b.ipynb classifies locally and caches."""
    config.session.set("local.base_url", reason_on_server.base_url)
    config.session.set("local.model", "test-local-model")
    config.session.set("local.pricing", "tokens")  # exact $ (compute time would vary run to run)
    config.session.set("prices.test-local-model.input", 0.01)
    config.session.set("prices.test-local-model.output", 0.04)
    monkeypatch.setattr(ledger, "_USER", ["alice"])
    for v, tmpl in enumerate(VERSIONS):  # one cell, three edited prompts, two rows each
        for x in ("late parcel", "double charge"):
            hybridnb.reason(tmpl.format(x=x), template=tmpl, tags=tags("a.ipynb", "c1"))
    for i in range(25):  # a closed-set job on the reasoning route
        hybridnb.reason(CLASSIFY.format(i=i), choices=["delivery", "billing"], template=CLASSIFY,
                        tags=tags("a.ipynb", "c2"))
    for _ in range(3):  # re-runs with the cache off: 2 billed repeats
        hybridnb.reason("Explain the refund policy", cache=False, tags=tags("a.ipynb", "c3"))
    hybridnb.reason("explain the refund policy!", cache=False, tags=tags("a.ipynb", "c3"))  # near-duplicate
    monkeypatch.setattr(ledger, "_USER", ["bob"])
    for i in range(25):
        hybridnb.local(CLASSIFY.format(i=i), choices=["delivery", "billing"], template=CLASSIFY,
                       tags=tags("b.ipynb", "c2"))
    for _ in range(3):  # once billed, twice from the cache
        hybridnb.reason("Explain the refund policy please", tags=tags("b.ipynb", "c3"))
    return hybridnb.ledger()


def test_per_notebook_shares_looks_local_iteration_and_rework(team):
    t = {r["notebook"].rsplit("/", 1)[-1]: r for r in hybridnb.discipline().iter_rows(named=True)}
    a, b = t["a.ipynb"], t["b.ipynb"]
    led = team.with_columns(team["notebook"].str.split("/").list.last().alias("nb"))
    for name, row in (("a.ipynb", a), ("b.ipynb", b)):
        mine = led.filter(led["nb"] == name)
        assert row["cost_usd"] == pytest.approx(mine["cost_usd"].sum())
        assert row["reason_usd"] == pytest.approx(mine.filter(mine["route"] == "reason")["cost_usd"].sum())
    assert (a["calls"], a["reason_calls"], a["reason_call_share"]) == (35, 35, 1.0)
    assert (b["calls"], b["reason_calls"]) == (26, 1) and b["reason_call_share"] == pytest.approx(1 / 26)
    assert a["looks_local_calls"] == 25 and b["looks_local_calls"] == 0
    assert (a["cells"], a["versions"], a["versions_per_cell"]) == (3, 6, 2.0)  # c1: 3, c2: 1, c3: 2
    assert (a["billed_repeats"], a["near_repeats"]) == (2, 1) and (b["billed_repeats"], b["near_repeats"]) == (0, 0)
    repeat = led.filter((led["nb"] == "a.ipynb") & (led["cell"] == "c3"))["cost_usd"]
    assert a["rework_usd"] == pytest.approx(repeat.sum() - repeat[0])
    assert (b["cache_hits"], a["cache_hits"]) == (2, 0)
    assert b["saved_usd"] == pytest.approx(2 * led.filter((led["nb"] == "b.ipynb") & (led["route"] == "reason")
                                                          & (led["status"] == "ok"))["cost_usd"][0])


def test_looks_local_carries_the_advice_breakeven_and_iterations_their_dollars(team):
    ll = hybridnb.discipline(detail="looks_local")
    assert ll.height == 1 and ll["calls"][0] == 25 and ll["answers"][0] == 1
    reason_row = team.filter((team["template"] == ll["template"][0]) & (team["route"] == "reason"))["cost_usd"]
    local = team.filter(team["route"] == "local")["cost_usd"]
    gain = reason_row.sum() / 25 - local.sum() / local.len()
    assert gain > 0 and ll["breakeven_rows"][0] == math.ceil(2.0 / gain)  # Thresholds().setup_usd
    it = hybridnb.discipline(detail="iterations")
    c1 = it.filter(it["cell"] == "c1").sort("version")
    assert c1["version"].to_list() == [1, 2, 3] and c1["versions"].to_list() == [3, 3, 3]
    assert c1["cost_usd"].sum() == pytest.approx(team.filter(team["cell"] == "c1")["cost_usd"].sum())


def test_compare_two_notebooks_or_two_users_side_by_side(team):
    nb = hybridnb.discipline(compare=["a.ipynb", "b.ipynb"])
    users = hybridnb.discipline(compare=["alice", "bob"])
    assert nb.columns == ["metric", "a.ipynb", "b.ipynb"] and users.columns == ["metric", "alice", "bob"]
    assert nb["metric"].to_list() == users["metric"].to_list()  # alice wrote a.ipynb, bob b.ipynb
    assert nb["a.ipynb"].to_list() == pytest.approx(users["alice"].to_list(), rel=1e-9)
    assert nb["b.ipynb"].to_list() == pytest.approx(users["bob"].to_list(), rel=1e-9)
    m = {r["metric"]: (r["a.ipynb"], r["b.ipynb"]) for r in nb.to_dicts()}
    assert m["reason_usd_share"][0] == 1.0 and m["reason_usd_share"][1] < 1.0
    assert m["rework_usd"][0] > 0 == m["rework_usd"][1] and m["looks_local_calls"] == (25.0, 0.0)
    with pytest.raises(HybridnbError, match="no ledger rows for z.ipynb"):
        hybridnb.discipline(compare=["a.ipynb", "z.ipynb"])


def test_by_user_template_and_cell(team):
    by_user = hybridnb.discipline("user")
    assert sorted(by_user["user"]) == ["alice", "bob"]
    assert by_user["cost_usd"].sum() == pytest.approx(team["cost_usd"].sum())
    by_cell = hybridnb.discipline("cell")
    assert by_cell.height == 5 and by_cell["calls"].sum() == 61
    assert hybridnb.discipline("template").height == team["template"].n_unique()
    with pytest.raises(HybridnbError, match="choose one of: notebook, cell, template, user"):
        hybridnb.discipline("team")


def test_magic_shows_a_table_and_a_chart(team):
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "hybridnb")
    with capture_output() as out:
        ip.run_line_magic("hybridnb", "discipline notebook")
    md = out.outputs[0].data["text/markdown"]
    assert "/home/team/a.ipynb" in md and "`$" in md and "| notebook | calls |" in md
    chart = [o.data for o in out.outputs[1:] if "vega" in str(o.data.get("text/html", ""))]  # altair's renderer
    assert chart and "rework (billed repeats)" in chart[0]["text/html"]
    with capture_output() as out:
        ip.run_line_magic("hybridnb", "discipline --compare alice bob")
    assert "| metric | alice | bob |" in out.outputs[0].data["text/markdown"]
    with pytest.raises(UsageError, match="choose one of"):
        ip.run_line_magic("hybridnb", "discipline teams")
