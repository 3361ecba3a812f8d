"""One test per injected fault: requests received vs ledger rows vs rows returned vs dollars."""

import traceback

import pytest

import hybridnb
from hybridnb import errors
from hybridnb.core import pricing
from hybridnb.store import ledger
from hybridnb.types import Usage

from faulty_server import KEY


def rows(home):
    return ledger.read(home).to_dicts()


def cost_of(usage: Usage) -> float:
    return pricing.token_cost("gpt-4o-mini", usage)[0]


def test_429_with_retry_after_is_retried_and_counted_on_one_row(faulty, hybridnb_home):
    faulty.script(queue=[{"status": 429, "retry_after": 0.05}, {"status": 429, "retry_after": 0.05}])
    r = hybridnb.reason("retry me please")
    assert r.ok and faulty.received == 3
    (row,) = rows(hybridnb_home)
    assert (row["status"], row["attempts"], row["maybe_billed"]) == ("ok", 3, 0)
    assert row["cost_usd"] == pytest.approx(cost_of(r.usage)) and row["cost_usd"] > 0


def test_5xx_after_all_retries_is_one_error_row_at_no_cost(faulty, hybridnb_home):
    faulty.script(queue=[{"status": 503}] * 3)
    with pytest.raises(errors.ServerError, match="HTTP 503 after 2 retries"):
        hybridnb.reason("doomed")
    assert faulty.received == 3
    (row,) = rows(hybridnb_home)
    assert (row["status"], row["attempts"], row["cost_usd"], row["error_class"]) == ("error", 3, 0.0, "ServerError")


def test_hang_times_out_once_not_retried_and_is_flagged_maybe_billed(faulty, hybridnb_home, monkeypatch):
    monkeypatch.setenv("HYBRIDNB_TIMEOUT_S", "0.3")
    faulty.script(queue=[{"hang": 1.0}])
    with pytest.raises(errors.BackendTimeout, match="may have billed"):
        hybridnb.reason("slow thought")
    assert faulty.received == 1  # a timed-out generation is not sent again
    (row,) = rows(hybridnb_home)
    assert (row["status"], row["attempts"], row["maybe_billed"]) == ("error", 1, 1)
    s = ledger.summarize(hybridnb_home).to_dicts()[0]
    assert s["maybe_billed"] == 1 and s["errors"] == 1
    rep = hybridnb.summary("total")
    assert rep.totals["maybe_billed"] == 1
    assert "1 attempts may have been billed without an answer" in str(rep)


def test_malformed_body_is_one_row_flagged_maybe_billed(faulty, hybridnb_home):
    faulty.script(queue=[{"garbage": True}])
    with pytest.raises(errors.MalformedResponse):
        hybridnb.reason("garbage in")
    assert faulty.received == 1
    (row,) = rows(hybridnb_home)
    assert (row["status"], row["maybe_billed"], row["cost_usd"]) == ("error", 1, 0.0)


def test_truncated_body_is_not_retried_and_is_flagged_maybe_billed(faulty, hybridnb_home):
    faulty.script(queue=[{"truncated": True}])
    with pytest.raises(errors.BackendError):
        hybridnb.reason("cut me off")
    assert faulty.received == 1 and faulty.generated == 1
    (row,) = rows(hybridnb_home)
    assert (row["status"], row["attempts"], row["maybe_billed"]) == ("error", 1, 1)


def test_reply_without_usage_is_counted_locally_and_flagged(faulty, hybridnb_home):
    faulty.script(queue=[{"no_usage": True}])
    r = hybridnb.reason("count my tokens yourself")
    assert r.ok and faulty.received == 1
    assert r.usage.input_tokens == pricing.estimate_tokens("\ncount my tokens yourself", "gpt-4o-mini")
    assert r.usage.output_tokens == pricing.estimate_tokens(r.text, "gpt-4o-mini") > 0
    (row,) = rows(hybridnb_home)
    assert row["usage_estimated"] is True and row["status"] == "ok"
    assert row["cost_usd"] == pytest.approx(cost_of(r.usage)) and row["cost_usd"] > 0


def test_usage_with_empty_choices_bills_its_usage(faulty, hybridnb_home):
    faulty.script(queue=[{"empty_choices": True}])
    r = hybridnb.reason("four words of prompt", raise_errors=False)
    assert isinstance(r.error, errors.MalformedResponse) and faulty.received == 1
    # the server counted 4 prompt words + 3 and an answer of "answer: four words of prompt" (5 words)
    assert (r.usage.input_tokens, r.usage.output_tokens) == (7, 5)
    (row,) = rows(hybridnb_home)
    assert cost_of(Usage(7, 5)) > 0
    assert row["status"] == "error" and row["cost_usd"] == pytest.approx(cost_of(Usage(7, 5)))


def test_401_echoing_the_key_leaves_no_key_anywhere(faulty, hybridnb_home):
    faulty.script(queue=[{"status": 401, "echo_key": True}])
    with pytest.raises(errors.AuthenticationError) as info:
        hybridnb.reason("who am i")
    err = info.value
    shown = "".join(traceback.format_exception(err)) + repr(err) + str(err)
    assert "Incorrect API key provided" in shown  # the provider's text is kept ...
    assert KEY not in shown and KEY[8:] not in shown  # ... with the key scrubbed
    assert err.__cause__ is None and (err.__context__ is None or KEY not in repr(err.__context__))
    (row,) = rows(hybridnb_home)
    assert KEY not in row["error"] and faulty.received == 1


def test_very_long_outputs_are_capped_by_max_tokens_and_billed_in_full(faulty, hybridnb_home):
    faulty.script(default={"long": 16384})
    r = hybridnb.reason("write a novel", max_tokens=300)
    assert faulty.log[0]["body"]["max_tokens"] == 300  # every request carries max_tokens
    assert r.usage.output_tokens == 300
    assert rows(hybridnb_home)[0]["cost_usd"] == pytest.approx(cost_of(r.usage))


def test_every_request_carries_the_route_default_max_tokens(faulty, hybridnb_home):
    hybridnb.reason("default cap")
    assert faulty.log[0]["body"]["max_tokens"] == hybridnb.config.get_settings()["reason.max_tokens"] >= 1
