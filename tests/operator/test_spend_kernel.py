"""A kernel publishes its own budget (and basis) for the server; the server reads that, not its settings."""

from __future__ import annotations

import json

from hybridnb import config
from hybridnb.core.dispatcher import get_dispatcher
from hybridnb.spend import kernel
from hybridnb.spend.kernel import kernel_report
from hybridnb.store.ledger import LedgerWriter, Record


def test_publish_writes_budget_and_basis_and_only_on_change(hybridnb_home, monkeypatch):
    d = get_dispatcher()
    monkeypatch.setattr(d, "session", "k-1234")
    config.session.set("budget_usd", 5.0)
    config.session.set("budget_per", "day")
    path = kernel.publish(force=True)
    info = json.loads(path.read_text())
    assert path == hybridnb_home / "kernels" / "k-1234.json"
    assert (info["budget_usd"], info["budget_per"], info["session"]) == (5.0, "day", "k-1234")
    assert kernel.publish() is None  # unchanged: nothing written
    config.session.set("budget_usd", 7.0)
    assert json.loads(kernel.publish().read_text())["budget_usd"] == 7.0
    assert kernel.read_kernel_file(hybridnb_home, kernel="1234")["budget_usd"] == 7.0


def test_a_warn_fraction_of_0_is_published_and_used_as_0(hybridnb_home, monkeypatch):
    monkeypatch.setattr(get_dispatcher(), "session", "k-w0")
    config.session.set("budget_usd", 1.0)
    config.session.set("budget_warn_fraction", 0.0)  # warn at the first cent
    info = json.loads(kernel.publish(force=True).read_text())
    assert info["budget_warn_fraction"] == 0.0
    LedgerWriter(hybridnb_home, "k-w0").append(Record(ts=1.8e9, route="reason", backend="openai", model="m",
                                                     status="ok", cost_usd=0.01))
    b = kernel.current_budget()
    assert (b.warn_fraction, b.spent_usd, b.state) == (0.0, 0.01, "warn")
    config.session.set("budget_warn_fraction", 0.5)
    assert json.loads(kernel.publish().read_text())["budget_warn_fraction"] == 0.5
    assert kernel.current_budget().state == "ok"


def test_a_script_publishes_nothing(hybridnb_home):
    assert get_dispatcher().session is None
    assert kernel.publish(force=True) is None
    assert not (hybridnb_home / "kernels").exists()


def test_summary_is_the_sessions_report_with_its_budget(hybridnb_home, monkeypatch):
    d = get_dispatcher()
    monkeypatch.setattr(d, "session", "k-abc")
    w = LedgerWriter(hybridnb_home, "k-abc")
    w.extend([Record(ts=1.8e9, route="reason", backend="openai", model="m", status="ok", cost_usd=0.5),
              Record(ts=1.8e9, route="reason", backend="openai", model="m", status="cached", saved_usd=0.5)])
    w.close()
    other = LedgerWriter(hybridnb_home, "k-other")
    other.append(Record(ts=1.8e9, route="reason", backend="openai", model="m", status="ok", cost_usd=4.0))
    other.close()
    config.session.set("budget_usd", 2.0)
    rep = kernel_report()  # no notebook known here: this session
    assert rep.scope.per == "session" and rep.calls == 1 and rep.cache_hits == 1 and rep.total_usd == 0.5
    assert rep.budget_line() == "session budget: $0.5000 of $2.00 spent (25%), $1.50 left"
    config.session.set("budget_per", "total")
    assert kernel_report("total").budget_line() == "total budget: $4.50 of $2.00 spent (225%), $0.00 left"
