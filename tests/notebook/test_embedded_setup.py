"""The embedded model's load is ledgered as set-up, not billed to the first %%local call."""

import os

import pytest

import hybridnb

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.mark.slow
def test_first_embedded_call_is_not_billed_the_model_load(ip, hybridnb_home, outputs):
    ip.run_cell_magic("local", "-o first --choices yes,no", "Is the sky blue? Answer yes or no.")
    ip.run_cell_magic("local", "-o second --choices yes,no", "Is grass red? Answer yes or no.")
    first, second = ip.user_ns["first"], ip.user_ns["second"]
    led = hybridnb.ledger()
    setup = led.filter(led["kind"] == "setup")
    calls = led.filter(led["kind"] == "call")
    assert setup.height == 1 and calls.height == 2
    assert first.setup_s == pytest.approx(setup["held_s"][0]) and first.setup_s > 0
    assert second.setup_s == 0
    assert setup["cost_usd"][0] == pytest.approx(setup["held_s"][0] * 0.05 / 3600)
    # the load is its own row: the first call holds only its own compute
    assert first.held_s == pytest.approx(calls["held_s"][0])
    assert "set-up" in first.footer() and "set-up" not in second.footer()
    assert "set-up" in outputs[0]["data"]["text/plain"]
    s = hybridnb.summary()
    assert s.calls == 2
    assert s.total_usd == pytest.approx(float(led["cost_usd"].sum()))
