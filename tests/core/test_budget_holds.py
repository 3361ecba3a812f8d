"""A budget that holds: reservations of the worst case, scopes read from the ledger, --force on the rows."""

import math
import os
import subprocess
import sys
import textwrap

import polars as pl
import pytest
from IPython.core.error import UsageError

import hybridnb
from hybridnb import config, errors
from hybridnb.core import budget as _budget
from hybridnb.core import pricing
from hybridnb.core.dispatcher import get_dispatcher
from hybridnb.core.screen import screen
from hybridnb.core.calls import build_request
from hybridnb.store import ledger

from faulty_server import shell


def worst_of(prompt: str, max_tokens: int | None = None) -> float:
    d = get_dispatcher()
    t = d.resolve("reason")
    (req,), _ = screen([build_request(prompt, t.model, max_tokens=max_tokens)], t)
    return _budget.worst_case([req], t)


def test_worst_case_is_input_plus_max_tokens_at_list_prices(faulty):
    p = pricing.token_prices("gpt-4o-mini")
    tin = pricing.estimate_tokens("price me", "gpt-4o-mini", worst=True)
    assert worst_of("price me", 1000) == pytest.approx((tin * p.input + 1000 * p.output) / 1e6)
    assert worst_of("price me", 2000) > worst_of("price me", 1000)


def test_a_call_whose_worst_case_exactly_fits_is_sent(faulty):
    config.session.set("budget_usd", worst_of("on the boundary", 500))
    r = hybridnb.reason("on the boundary", max_tokens=500)
    assert r.ok and faulty.received == 1


def test_a_call_a_hair_over_the_budget_is_refused_and_not_sent(faulty, hybridnb_home):
    config.session.set("budget_usd", math.nextafter(worst_of("on the boundary", 500), 0.0))
    with pytest.raises(errors.BudgetExceeded, match="may cost up to"):
        hybridnb.reason("on the boundary", max_tokens=500)
    assert faulty.received == 0 and ledger.read(hybridnb_home).height == 0


def test_mid_batch_stop_when_real_spend_runs_past_the_reservations(faulty, hybridnb_home):
    # the server ignores max_tokens (answers 2,000 tokens for a cap of 50): every call overruns its reservation
    faulty.script(default={"long": 2000, "ignore_max_tokens": True})
    one = worst_of("row 0", 50)
    config.session.set("budget_usd", one * 30)
    df = pl.DataFrame({"x": [str(i) for i in range(12)]})
    out = hybridnb.map(df, "row {x}", route="reason", max_tokens=50, concurrency=1, progress=False, verbose=False)
    ok = out.filter(pl.col("error").is_null())
    stopped = out.filter(pl.col("error").str.contains("BudgetExceeded"))
    assert ok.height == faulty.received and 0 < faulty.received < 12
    assert ok.height + stopped.height == 12
    led = ledger.read(hybridnb_home)
    assert led.height == faulty.received  # one settled row per sent call, none for stopped rows
    per_call = led["cost_usd"][0]
    assert led["cost_usd"].sum() == pytest.approx(per_call * faulty.received)
    budget = one * 30
    # a call starts only while spent + its worst case fits: the last one did, one more would not
    assert (faulty.received - 1) * per_call + one <= budget * (1 + 1e-9)
    assert faulty.received * per_call + one > budget


def test_answers_64x_the_estimate_at_concurrency_32_stay_within_budget(faulty, hybridnb_home):
    faulty.script(default={"long": 16384})
    config.session.set("reason.max_tokens", 16384)
    df = pl.DataFrame({"q": [f"question number {i}" for i in range(35)]})
    d = get_dispatcher()
    t = d.resolve("reason")
    reqs = [build_request(f"question number {i}", t.model) for i in range(35)]
    budget = d.estimate(reqs, t) * 40  # the batch estimate (256 tokens a call) fits comfortably
    config.session.set("budget_usd", budget)
    out = hybridnb.map(df, "{q}", route="reason", concurrency=32, progress=False, verbose=False)
    spent = ledger.read(hybridnb_home)["cost_usd"].sum()
    assert spent <= budget
    assert out.filter(pl.col("error").is_null()).height == faulty.received >= 1
    assert out["cost_usd"].sum() == pytest.approx(spent)


def test_force_sends_past_the_budget_and_is_recorded_on_the_row(faulty, hybridnb_home):
    config.session.set("budget_usd", "0.0000001")
    r = hybridnb.reason("forced through", force=True)
    assert r.ok and faulty.received == 1
    (row,) = ledger.read(hybridnb_home).to_dicts()
    assert row["forced"] is True and row["reserved_usd"] > 0


@pytest.mark.parametrize("bad", ["nan", "inf", "-1", "-0.5"])
def test_nan_infinite_and_negative_budgets_are_refused(hybridnb_home, bad):
    with pytest.raises(errors.ConfigError):
        config.session.set("budget_usd", bad)
    assert config.get_settings().budget_usd is None


def test_magic_budget_nan_is_a_usage_error(hybridnb_home):
    ip = shell()
    with pytest.raises(UsageError):
        ip.run_line_magic("hybridnb", "budget nan")
    assert config.get_settings().budget_usd is None
    ip.run_line_magic("hybridnb", "budget 5 --per day")
    s = config.get_settings()
    assert (s.budget_usd, s["budget_per"]) == (5.0, "day")


_SCRIPT = textwrap.dedent("""
    import sys, hybridnb
    from hybridnb import errors
    try:
        r = hybridnb.reason(sys.argv[1], cache=False)
        print("SENT", r.cost_usd)
    except errors.BudgetExceeded as e:
        print("REFUSED", e)
""")


def _fresh_process(prompt: str, env_extra: dict) -> str:
    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, "-c", _SCRIPT, prompt], env=env, capture_output=True, text=True,
                         timeout=120, cwd=os.getcwd())
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_new_process_sees_todays_spend_per_day(faulty, hybridnb_home):
    hybridnb.reason("spend some money", cache=False)
    spent = ledger.read(hybridnb_home)["cost_usd"].sum()
    env = {"HYBRIDNB_BUDGET_USD": repr(spent * 1.01), "HYBRIDNB_BUDGET_PER": "day"}
    assert _fresh_process("spend some money", env).startswith("REFUSED")
    assert faulty.received == 1  # the second process sent nothing
    # per session, a new process starts from zero and may send
    env["HYBRIDNB_BUDGET_PER"] = "session"
    env["HYBRIDNB_BUDGET_USD"] = repr(worst_of("spend some money") * 1.01)
    assert _fresh_process("spend some money", env).startswith("SENT")
    assert faulty.received == 2


def test_total_scope_counts_every_earlier_row(faulty, hybridnb_home):
    hybridnb.reason("first", cache=False)
    spent = ledger.read(hybridnb_home)["cost_usd"].sum()
    config.session.set("budget_per", "total")
    config.session.set("budget_usd", spent + worst_of("second") * 0.99)
    with pytest.raises(errors.BudgetExceeded, match="in total"):
        hybridnb.reason("second", cache=False)
    config.session.set("budget_usd", spent + worst_of("second") * 1.01)
    assert hybridnb.reason("second", cache=False).ok and faulty.received == 2


def test_warning_at_exactly_the_warn_fraction(faulty, hybridnb_home, capsys):
    r = hybridnb.reason("measure me", cache=False)
    config.session.set("budget_warn_fraction", 0.8)
    spent, budget = 2 * r.cost_usd, r.cost_usd * 2 / 0.8
    while spent / budget < 0.8:  # x / (x / 0.8) can round to 0.7999…: take the largest budget that is 80 % spent
        budget = math.nextafter(budget, 0.0)
    config.session.set("budget_usd", budget)
    capsys.readouterr()
    hybridnb.reason("measure me", cache=False, force=True)  # now 2 of 2.5 costs: 80 %
    assert "80% of the" in capsys.readouterr().err


def test_a_batch_whose_estimate_exactly_fits_is_not_refused_up_front(faulty, hybridnb_home):
    d = get_dispatcher()
    t = d.resolve("reason")
    qs = ["first question here", "second question here"]
    (r1, r2), _ = screen([build_request(q, t.model) for q in qs], t)
    est = d.estimate([r1, r2], t)
    df = pl.DataFrame({"q": qs})
    config.session.set("budget_usd", math.nextafter(est, 0.0))
    with pytest.raises(errors.BudgetExceeded, match="batch refused"):
        hybridnb.map(df, "{q}", route="reason", progress=False, verbose=False)
    assert faulty.received == 0
    config.session.set("budget_usd", est)
    out = hybridnb.map(df, "{q}", route="reason", progress=False, verbose=False)  # the boundary fits
    assert out.height == 2  # (each row may still be stopped by its worst-case reservation)


def test_compute_priced_calls_reserve_timeout_times_rate(faulty, hybridnb_home, monkeypatch):
    monkeypatch.setenv("HYBRIDNB_LOCAL_BASE_URL", faulty.base_url)
    monkeypatch.setenv("HYBRIDNB_LOCAL_MODEL", "test-local-model")
    monkeypatch.setenv("HYBRIDNB_LOCAL_GPU_HOUR_USD", "3600")  # $1 a second with one GPU
    monkeypatch.setenv("HYBRIDNB_TIMEOUT_S", "2")
    config.session.set("budget_usd", "5.5")  # worst case: 2 s x 3 attempts x $1/s = $6
    with pytest.raises(errors.BudgetExceeded, match=r"may cost up to \$6"):
        hybridnb.local("a held GPU costs time")
    assert faulty.received == 0
    config.session.set("reserve_s", "1.0")  # a configured cap instead of the timeout
    r = hybridnb.local("a held GPU costs time")
    assert r.ok and faulty.received == 1 and r.cost_usd > 0


def test_a_paid_answer_whose_ledger_write_fails_is_still_returned_loudly(faulty, hybridnb_home, capfd):
    import threading
    import warnings

    faulty.script(queue=[{"hang": 0.5}])
    box = {}

    def call():
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            box["r"] = hybridnb.reason("pay, then lose the disk")
            box["w"] = [str(x.message) for x in w]

    t = threading.Thread(target=call)
    t.start()
    while faulty.received < 1:
        threading.Event().wait(0.01)
    writer = get_dispatcher().writer(hybridnb_home)
    with writer._lock:  # the disk fills up while the call is in flight: every write now fails (ENOSPC)
        writer._fh.close()
        writer._fh = open("/dev/full", "a", encoding="utf-8")
    t.join(timeout=30)
    r = box["r"]
    assert r.ok and r.text.startswith("answer:") and r.cost_usd > 0 and faulty.received == 1
    err = capfd.readouterr().err
    assert "answered and returned, but the ledger write failed" in err
    assert any("ledger write failed" in m for m in box["w"])
