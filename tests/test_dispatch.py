"""The dispatcher against a real loopback OpenAI-protocol server, with the openai SDK."""

import time

import pytest

import hybridnb
import hybridnb.core.pricing
from hybridnb import config
from hybridnb import errors
from hybridnb.core.dispatcher import get_dispatcher

KEY = "sk-test-SECRET-0123456789"


def test_reason_call_is_priced_and_ledgered(reason_on_server):
    r = hybridnb.reason("Propose a taxonomy for late deliveries")
    assert r.text.startswith("answer: Propose a taxonomy")
    assert r.usage.input_tokens == 6 + 3 and r.usage.output_tokens == len(r.text.split())
    expected, _ = hybridnb.core.pricing.token_cost("gpt-4o-mini", r.usage)
    assert r.cost_usd == pytest.approx(expected) and r.cost_usd > 0
    df = hybridnb.ledger()
    assert df.height == 1
    row = df.row(0, named=True)
    assert (row["route"], row["backend"], row["model"], row["status"]) == ("reason", "openai", "gpt-4o-mini", "ok")
    assert row["cost_usd"] == pytest.approx(r.cost_usd)
    assert reason_on_server.log[0]["auth"] is True


def test_cache_hit_costs_nothing_and_sends_nothing(reason_on_server):
    first = hybridnb.reason("Same question twice")
    second = hybridnb.reason("Same question twice")
    assert len(reason_on_server.log) == 1
    assert second.cached and second.cost_usd == 0 and second.saved_usd == pytest.approx(first.cost_usd)
    assert second.text == first.text
    third = hybridnb.reason("Same question twice", cache=False)
    assert not third.cached and len(reason_on_server.log) == 2
    s = hybridnb.summary()
    assert s.cache_hits == 1 and s.calls == 2
    assert s.saved_usd == pytest.approx(first.cost_usd)


def test_cache_survives_a_new_dispatcher(reason_on_server):
    from hybridnb.core.dispatcher import reset_dispatcher

    hybridnb.reason("persist me")
    reset_dispatcher()  # like a kernel restart
    assert hybridnb.reason("persist me").cached
    assert len(reason_on_server.log) == 1


def test_budget_refuses_before_sending(reason_on_server):
    config.session.set("budget_usd", "0.0000001")
    with pytest.raises(errors.BudgetExceeded, match="budget exceeded.*%hybridnb budget"):
        hybridnb.reason("an expensive thought " * 50)
    assert reason_on_server.log == []
    assert hybridnb.ledger().height == 0
    r = hybridnb.reason("an expensive thought " * 50, force=True)
    assert r.ok and len(reason_on_server.log) == 1


def test_budget_warns_at_80_percent(reason_on_server, capsys):
    r = hybridnb.reason("measure me", cache=False)
    config.session.set("budget_usd", r.cost_usd * 1.5)
    capsys.readouterr()
    hybridnb.reason("measure me", cache=False, force=True)
    err = capsys.readouterr().err
    assert "133% of the" in err


def test_429_is_retried_honouring_retry_after_and_ledgered_once(reason_on_server):
    reason_on_server.script(queue=[{"status": 429, "retry_after": 0.05}, {"status": 429, "retry_after": 0.05}])
    r = hybridnb.reason("please retry")
    assert r.ok
    assert len(reason_on_server.log) == 3
    assert hybridnb.ledger().height == 1


def test_5xx_after_all_retries_is_one_clear_error_and_one_record(reason_on_server):
    reason_on_server.script(queue=[{"status": 503}] * 3)
    with pytest.raises(errors.ServerError, match="HTTP 503 after 2 retries"):
        hybridnb.reason("doomed")
    assert len(reason_on_server.log) == 3
    df = hybridnb.ledger()
    assert df.height == 1 and df["status"][0] == "error" and df["cost_usd"][0] == 0
    assert df["error_class"][0] == "ServerError"


def test_401_names_the_variable_and_never_leaks_the_key(reason_on_server, tmp_path):
    reason_on_server.script(queue=[{"status": 401, "message": f"Incorrect API key provided: {KEY}"}])
    with pytest.raises(errors.AuthenticationError) as ei:
        hybridnb.reason("who am I")
    assert "HYBRIDNB_REASON_API_KEY" in str(ei.value)
    assert KEY not in str(ei.value)
    hybridnb.reason("fine now")
    home = hybridnb.get_settings().home
    for p in home.rglob("*"):
        if p.is_file():
            assert KEY.encode() not in p.read_bytes(), p


def test_unknown_model_is_not_found(reason_on_server):
    with pytest.raises(errors.NotFoundError, match="404"):
        hybridnb.reason("hello", model="gpt-does-not-exist")


def test_garbage_reply_is_malformed_response(reason_on_server):
    reason_on_server.script(queue=[{"garbage": True}])
    with pytest.raises(errors.MalformedResponse):
        hybridnb.reason("garbage please")
    assert hybridnb.ledger()["error_class"].to_list() == ["MalformedResponse"]


def test_timeout_is_backend_timeout(reason_on_server, monkeypatch):
    monkeypatch.setenv("HYBRIDNB_TIMEOUT_S", "0.2")
    monkeypatch.setenv("HYBRIDNB_MAX_RETRIES", "0")
    reason_on_server.script(queue=[{"hang": 1.0}])
    with pytest.raises(errors.BackendTimeout):
        hybridnb.reason("slow")


def test_unreachable_server_is_backend_unavailable(hybridnb_home, monkeypatch):
    monkeypatch.setenv("HYBRIDNB_REASON_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("HYBRIDNB_REASON_API_KEY", KEY)
    monkeypatch.setenv("HYBRIDNB_REASON_MODEL", "gpt-4o-mini")
    monkeypatch.setenv("HYBRIDNB_MAX_RETRIES", "1")
    with pytest.raises(errors.BackendUnavailable, match="cannot reach http://127.0.0.1:9/v1"):
        hybridnb.reason("anyone there?")


def test_explicit_openai_backend_without_key_names_the_variable(hybridnb_home, monkeypatch):
    monkeypatch.setenv("HYBRIDNB_REASON_BACKEND", "openai")
    with pytest.raises(errors.ConfigError, match="HYBRIDNB_REASON_API_KEY"):
        hybridnb.reason("hi")


def test_unknown_model_price_is_flagged_unpriced(reason_on_server, monkeypatch):
    reason_on_server.script(queue=[{"any_model": True}])
    r = hybridnb.reason("price me", model="house-model-7b")
    assert r.unpriced and r.cost_usd == 0 and "unpriced" in r.footer()


def test_choices_are_enforced_and_validated(reason_on_server):
    r = hybridnb.reason("Is an outage a risk or a cost?", choices=["cost", "risk"])
    assert r.text in ("cost", "risk")
    body = reason_on_server.log[-1]["body"]
    assert body["structured_outputs"]["choice"] == ["cost", "risk"]


def test_in_batch_duplicates_are_sent_once(reason_on_server):
    d = get_dispatcher()
    target = d.resolve("reason")
    reqs = [hybridnb.Request(prompt=p, model=target.model) for p in ["a b", "a b", "c d", "a b"]]
    out = d.run(reqs, "reason")
    assert [o.text for o in out] == ["answer: a b", "answer: a b", "answer: c d", "answer: a b"]
    assert len(reason_on_server.log) == 2
    assert [o.cached for o in out] == [False, True, False, True]
    assert hybridnb.ledger().height == 4


def test_listeners_see_every_record(reason_on_server):
    seen = []
    unsubscribe = get_dispatcher().subscribe(seen.append)
    hybridnb.reason("one")
    hybridnb.reason("one")
    unsubscribe()
    hybridnb.reason("two")
    assert [r.status for r in seen] == ["ok", "cached"]


def test_local_route_on_a_server_is_priced_by_held_time(hybridnb_home, openai_server, monkeypatch):
    monkeypatch.setenv("HYBRIDNB_LOCAL_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("HYBRIDNB_LOCAL_MODEL", "test-local-model")
    monkeypatch.setenv("HYBRIDNB_LOCAL_GPU_HOUR_USD", "3600")  # $1 per second: easy to check
    monkeypatch.setenv("HYBRIDNB_LOCAL_GPUS", "1")
    openai_server.script(delay_s=0.2)
    t0 = time.monotonic()
    r = hybridnb.local("label this")
    wall = time.monotonic() - t0
    assert r.pricing == "compute"
    assert 0.2 <= r.held_s <= wall  # one call alone: held for its reply, never longer than the call took
    assert r.cost_usd == pytest.approx(r.held_s * 1.0)
    row = hybridnb.ledger().row(0, named=True)
    assert row["pricing"] == "compute" and row["gpus"] == 1.0 and row["held_s"] == pytest.approx(r.held_s)
