"""The budget's parts on their own: scopes and their labels, the guard's arithmetic (spend read from a
real ledger), the refusal message, and the worst case of a compute-priced chunk. Written from mutants of
core/budget.py (issue 17)."""

import threading

import pytest

from hybridnb.core.budget import Guard, Scope, make_scope
from hybridnb.errors import BudgetExceeded
from hybridnb.store.ledger import LedgerWriter, Record


@pytest.mark.parametrize("per, notebook, scope, label", [
    ("session", "a.ipynb", Scope("session", "s1", "a.ipynb"), "this session"),
    ("notebook", "a.ipynb", Scope("notebook", "s1", "a.ipynb"), "notebook a.ipynb"),
    ("notebook", None, Scope("session", "s1", ""), "this session"),  # outside a notebook: the session
    ("notebook", "", Scope("session", "s1", ""), "this session"),
    ("day", None, Scope("day", "s1", ""), "today"),
    ("total", "b.ipynb", Scope("total", "s1", "b.ipynb"), "in total"),
])
def test_scopes_and_how_they_read(per, notebook, scope, label):
    got = make_scope(per, "s1", notebook)
    assert got == scope and got.label == label


def _spend(home, session, *costs, notebook=""):
    w = LedgerWriter(home, session=session)
    w.extend([Record(ts=1.0 + i, route="reason", backend="openai", model="m", status="ok", cost_usd=c,
                     notebook=notebook) for i, c in enumerate(costs)])
    w.close()


def test_a_guard_counts_its_scopes_ledger_rows_and_what_it_settles(tmp_path):
    _spend(tmp_path, "s1", 0.25, 0.5)
    _spend(tmp_path, "s2", 4.0)
    g = Guard(tmp_path, Scope("session", "s1"))
    assert (g.base, g.own, g.reserved, g.in_flight, g.spent) == (0.0, 0.0, 0.0, 0, 0.0)
    assert g.refresh() == 0.75 and g.spent == 0.75
    assert Guard(tmp_path, Scope("total", "s1")).refresh() == 4.75
    assert g.reserve(0.25, 1.0) and (g.reserved, g.in_flight) == (0.25, 1)
    assert g.fits(0.0, 1.0) and not g.fits(0.125, 1.0)  # 0.75 spent + 0.25 reserved: the boundary fits
    assert not g.reserve(0.125, 1.0) and (g.reserved, g.in_flight) == (0.25, 1)  # refused: nothing held
    assert g.reserve(0.125, 1.0, force=True) and (g.reserved, g.in_flight) == (0.375, 2)  # --force holds too
    assert g.reserve(5.0, None) and g.reserved == 5.375  # no budget: always held
    g.settle(0.25, 0.0625)
    assert (g.reserved, g.in_flight, g.own, g.spent) == (5.125, 2, 0.0625, 0.8125)
    g.settle(100.0, 0.0)
    g.settle(100.0, 0.0)
    g.settle(100.0, 0.0)
    assert (g.reserved, g.in_flight, g.own) == (0.0, 0, 0.0625)  # never below zero; costs add up
    _spend(tmp_path, "s1", 1.0)
    assert g.refresh() == 1.75 and g.own == 0.0 and g.spent == 1.75  # the ledger now holds what was settled


def test_the_refusal_says_what_is_spent_reserved_and_asked_for(tmp_path):
    _spend(tmp_path, "s1", 0.5, notebook="nb.ipynb")
    g = Guard(tmp_path, Scope("notebook", "s1", "nb.ipynb"))
    g.refresh()
    e = g.refusal(1.0, 0.75)
    assert isinstance(e, BudgetExceeded)
    assert str(e) == ("budget exceeded: spent $0.5000 notebook nb.ipynb of $1.00; this call may cost up to "
                      "$0.7500. Raise it with `%hybridnb budget <usd>`, lower --max-tokens, move the work to "
                      "%%local, or pass --force.")
    g.reserve(0.25, None)
    assert str(g.refusal(1.0, 2.0, "this batch")).startswith(
        "budget exceeded: spent $0.5000 notebook nb.ipynb + $0.2500 reserved by calls in flight of $1.00; "
        "this batch may cost up to $2.00.")


def test_reservations_from_many_threads_never_overshoot(tmp_path):
    g = Guard(tmp_path, Scope("session", "s1"))
    held = []

    def take():
        for _ in range(200):
            if g.reserve(0.5, 50.0):
                held.append(1)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(held) == 100 and g.reserved == 50.0 and g.in_flight == 100


def test_what_is_settled_counts_in_the_fit_and_in_the_refusal(tmp_path):
    _spend(tmp_path, "s1", 0.5)
    g = Guard(tmp_path, Scope("session", "s1"))
    g.refresh()
    g.reserve(0.25, None)
    g.settle(0.25, 0.25)  # spent 0.5 in the ledger + 0.25 settled here since
    assert g.fits(0.25, 1.0) and not g.fits(0.375, 1.0)
    assert str(g.refusal(1.0, 0.375)).startswith("budget exceeded: spent $0.7500 this session of $1.00;")


@pytest.mark.parametrize("env, worst", [
    ({"HYBRIDNB_TIMEOUT_S": "2", "HYBRIDNB_MAX_RETRIES": "2"}, 6.0),  # 2 s x 3 attempts at $1 a second
    ({"HYBRIDNB_TIMEOUT_S": "2", "HYBRIDNB_MAX_RETRIES": "0"}, 2.0),  # no retry: one attempt
    ({"HYBRIDNB_TIMEOUT_S": "2", "reserve_s": "1.5"}, 1.5),  # a configured cap wins
])
def test_the_worst_case_of_a_compute_priced_call_is_its_longest_hold(hybridnb_home, monkeypatch, env, worst):
    from hybridnb.core.budget import worst_case
    from hybridnb.core.dispatcher import get_dispatcher
    from hybridnb.types import Request

    monkeypatch.setenv("HYBRIDNB_LOCAL_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("HYBRIDNB_LOCAL_MODEL", "test-local-model")
    monkeypatch.setenv("HYBRIDNB_LOCAL_GPU_HOUR_USD", "3600")  # $1 a second with one GPU
    from hybridnb import config

    for k, v in env.items():
        if k.startswith("HYBRIDNB_"):
            monkeypatch.setenv(k, v)
        else:
            config.session.set(k, v)
    target = get_dispatcher().resolve("local")
    assert worst_case([Request("p", "test-local-model")], target) == pytest.approx(worst, rel=1e-12)


def test_the_worst_case_of_a_token_priced_call_uses_the_price_overrides(hybridnb_home, monkeypatch):
    from hybridnb import config
    from hybridnb.core import pricing
    from hybridnb.core.budget import worst_case
    from hybridnb.core.dispatcher import get_dispatcher
    from hybridnb.types import Request

    monkeypatch.setenv("HYBRIDNB_REASON_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("HYBRIDNB_REASON_MODEL", "my-own-model")  # no public price
    req = Request("price me", "my-own-model", max_tokens=1000)
    assert worst_case([req], get_dispatcher().resolve("reason")) == 0.0  # unpriced: nothing to reserve
    config.session.set("prices.my-own-model.input", "2")
    config.session.set("prices.my-own-model.output", "8")
    tin = pricing.estimate_tokens("price me", "my-own-model", worst=True)
    got = worst_case([req, req], get_dispatcher().resolve("reason"))
    assert got == pytest.approx(2 * (tin * 2.0 + 1000 * 8.0) / 1e6, rel=1e-12)
    config.session.set("reason.max_tokens", "300")  # no max_tokens on the call: the route's cap, sent with it
    bare = Request("price me", "my-own-model")
    assert worst_case([bare], get_dispatcher().resolve("reason")) == pytest.approx((tin * 2.0 + 300 * 8.0) / 1e6,
                                                                                  rel=1e-12)


def test_a_refused_batch_says_its_expected_cost_against_the_budget(faulty, hybridnb_home):
    import polars as pl

    import hybridnb
    from hybridnb import config
    from hybridnb.core.calls import build_request
    from hybridnb.core.dispatcher import get_dispatcher
    from hybridnb.core.screen import screen
    from hybridnb.spend.render import money

    d = get_dispatcher()
    t = d.resolve("reason")
    qs = ["first question here", "second question here"]
    reqs, _ = screen([build_request(q, t.model) for q in qs], t)
    est = d.estimate(reqs, t)
    config.session.set("budget_usd", est / 2)
    with pytest.raises(BudgetExceeded) as e:
        hybridnb.map(pl.DataFrame({"q": qs}), "{q}", route="reason", progress=False, verbose=False)
    assert str(e.value).startswith(
        f"batch refused, nothing sent — budget exceeded: spent $0.00 this session of {money(est / 2)}; "
        f"this may cost up to {money(est)}. Raise it with `%hybridnb budget <usd>`")
    assert faulty.received == 0


def test_check_budget_counts_the_spend_of_the_notebook_it_is_given(hybridnb_home):
    from hybridnb import config
    from hybridnb.config import get_settings
    from hybridnb.core.dispatcher import get_dispatcher

    config.session.set("budget_per", "notebook")
    config.session.set("budget_usd", 1.0)
    _spend(hybridnb_home, "k-another-kernel", 0.5, notebook="a.ipynb")  # the notebook's spend, any kernel
    d, s = get_dispatcher(), get_settings()
    d.check_budget(0.5, s, notebook="a.ipynb")  # 0.5 spent + 0.5: the boundary fits
    with pytest.raises(BudgetExceeded) as e:
        d.check_budget(0.625, s, notebook="a.ipynb")
    assert str(e.value).startswith("budget exceeded: spent $0.5000 notebook a.ipynb of $1.00; this may cost up to "
                                   "$0.6250.")
    d.check_budget(1.0, s, notebook="b.ipynb")  # another notebook: nothing spent there


def test_the_budget_warning_comes_once_at_the_fraction_naming_scope_budget_and_spend(faulty, hybridnb_home,
                                                                                    capsys):
    import hybridnb
    from hybridnb import config
    from hybridnb.spend.render import money

    def warnings():
        return [ln for ln in capsys.readouterr().err.splitlines() if "budget spent" in ln]

    prompt = "weigh this sentence against the budget " * 20  # the same prompt: the same cost every call
    c = hybridnb.reason(prompt, cache=False).cost_usd
    assert c > 0
    config.session.set("budget_per", "total")
    config.session.set("budget_warn_fraction", 0.5)
    config.session.set("budget_usd", 8 * c)
    capsys.readouterr()
    assert hybridnb.reason(prompt, cache=False, force=True).cost_usd == c
    assert warnings() == []  # 2 of 8: below the fraction, no warning
    budget = 4 * c
    config.session.set("budget_usd", budget)
    hybridnb.reason(prompt, cache=False, force=True)
    spent = 2 * c + c
    assert warnings() == [f"hybridnb: {spent / budget:.0%} of the {money(budget)} budget spent in total "
                          f"({money(spent)})"]
    assert f"{spent / budget:.0%}" == "75%"
    hybridnb.reason(prompt, cache=False, force=True)
    assert warnings() == []  # warned once for this budget
    config.session.set("budget_usd", 5 * c)  # a new budget: warned again when it is reached
    hybridnb.reason(prompt, cache=False, force=True)
    assert len(warnings()) == 1


def test_a_zero_budget_with_force_still_returns_the_answer(faulty, hybridnb_home):
    import hybridnb
    from hybridnb import config
    from hybridnb.store import ledger

    config.session.set("budget_usd", 0)
    with pytest.raises(BudgetExceeded):
        hybridnb.reason("nothing may be spent")
    assert faulty.received == 0
    r = hybridnb.reason("nothing may be spent", force=True)
    assert r.ok and r.cost_usd > 0 and faulty.received == 1
    assert ledger.read(hybridnb_home)["cost_usd"].to_list() == [r.cost_usd]


def _reason_requests(*prompts):
    from hybridnb.core.calls import build_request
    from hybridnb.core.dispatcher import get_dispatcher
    from hybridnb.core.screen import screen

    d = get_dispatcher()
    t = d.resolve("reason")
    raw = [build_request(p, t.model) for p in prompts]
    return d, t, raw, screen(raw, t)[0]


def test_a_batch_is_refused_whole_by_its_expected_cost_a_single_call_row_by_its_worst_case(faulty, hybridnb_home):
    import math

    from hybridnb import config
    from hybridnb.core.budget import worst_case
    from hybridnb.spend.render import money

    d, t, raw, reqs = _reason_requests("first question here", "second question here")
    est = d.estimate(reqs, t)
    budget = math.nextafter(est, 0.0)
    config.session.set("budget_usd", budget)
    with pytest.raises(BudgetExceeded) as e:
        d.run(raw, "reason")
    assert str(e.value).startswith(f"budget exceeded: spent $0.00 this session of {money(budget)}; this batch of "
                                   f"2 calls (expected) may cost up to {money(est)}. Raise it with")
    assert faulty.received == 0
    config.session.set("budget_usd", est)  # the boundary passes the batch gate (rows are then held one by one)
    assert len(d.run(raw, "reason")) == 2
    one = d.estimate(reqs[:1], t)
    config.session.set("budget_usd", one / 2)  # one call: no batch gate; its worst case is refused on its row
    (r,) = d.run(raw[:1], "reason")
    assert isinstance(r.error, BudgetExceeded) and str(r.error).startswith(
        f"not sent: budget exceeded: spent $0.00 this session of {money(one / 2)}; the next call may cost up to "
        f"{money(worst_case(reqs[:1], t))}.")
    assert faulty.received == 0


def test_the_calls_notebook_tag_picks_the_budget_scope_it_is_counted_in(faulty, hybridnb_home, capsys):
    import hybridnb
    from hybridnb import config
    from hybridnb.core.dispatcher import get_dispatcher
    from hybridnb.spend.render import money

    def warnings():
        return [ln for ln in capsys.readouterr().err.splitlines() if "budget spent" in ln]

    config.session.set("budget_per", "notebook")
    config.session.set("budget_warn_fraction", 0.5)
    config.session.set("budget_usd", 1.0)
    _spend(hybridnb_home, "k-another-kernel", 0.5, notebook="a.ipynb")
    capsys.readouterr()
    c = hybridnb.reason("counted in a.ipynb", tags={"notebook": "a.ipynb"}).cost_usd
    assert warnings() == [f"hybridnb: {(0.5 + c) / 1.0:.0%} of the $1.00 budget spent notebook a.ipynb "
                          f"({money(0.5 + c)})"]
    # no notebook tag (outside a notebook): the session's budget, not a notebook's (nor one named "None")
    get_dispatcher().record([Record(ts=1.0, route="reason", backend="openai", model="m", status="ok",
                                    cost_usd=0.25)], hybridnb_home)  # this session's earlier spend
    config.session.set("budget_usd", 0.5)
    d, _, raw, _ = _reason_requests("outside any notebook")  # a request with no tags at all
    c2 = d.run(raw, "reason")[0].cost_usd
    assert warnings() == [f"hybridnb: {(0.25 + c2) / 0.5:.0%} of the {money(0.5)} budget spent this session "
                          f"({money(0.25 + c2)})"]
