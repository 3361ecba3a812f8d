"""`%hybridnb models [route]`: endpoint models, the embedded model, genai-prices' priced models."""

import socket

import pytest
from IPython.core.error import UsageError

from hybridnb.backends.models import list_models
from hybridnb.core import pricing
from hybridnb.core.response import money


def _price(model: str) -> str:
    p = pricing.token_prices(model)
    return f"{money(p.input)} / {money(p.output)} per 1M in/out"


def test_endpoint_models_are_listed_with_their_prices(ip, reason_on_server, capsys):
    import openai_server

    ip.run_line_magic("hybridnb", "models reason")
    md = list_models("reason")._repr_markdown_()
    for model in openai_server.MODELS:
        assert f"| {model}" in md or f"**{model}**" in md
    assert "**gpt-4o-mini** (in effect)" in md and _price("gpt-4o-mini") in md
    assert "unpriced" in md  # test-local-model is not a model genai-prices knows


def test_without_a_key_reason_lists_the_stand_in_and_the_priced_provider_models(ip, hybridnb_home):
    listing = list_models("reason")
    stand_in = [r for r in listing.rows if r.in_effect]
    assert [r.model for r in stand_in] == ["SmolLM2-135M-Instruct"] and "simulated" in stand_in[0].price
    priced = {r.model: r.price for r in listing.rows if r.source == "genai-prices"}
    assert priced["gpt-4o-mini"] == _price("gpt-4o-mini")
    assert len(priced) > 10


def test_unreachable_endpoint_is_one_clear_line(ip, hybridnb_home, monkeypatch, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HYBRIDNB_LOCAL_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("HYBRIDNB_LOCAL_MODEL", "served-model")
    text = str(list_models("local"))
    assert text.splitlines()[0].startswith(f"%%local: cannot list models at http://127.0.0.1:{port}/v1")
    assert "Traceback" not in text
    monkeypatch.delenv("HYBRIDNB_LOCAL_MODEL")
    text = str(list_models("local"))
    assert text.startswith("%%local: not ready") and len(text.splitlines()) == 1


def test_local_embedded_and_a_bad_route_argument(ip, hybridnb_home):
    rows = list_models("local").rows
    assert [(r.model, r.source) for r in rows] == [("SmolLM2-135M-Instruct", "embedded")]
    assert rows[0].price.endswith("/h compute")
    with pytest.raises(UsageError, match=r"%hybridnb models \[reason\|local\]"):
        ip.run_line_magic("hybridnb", "models gpu")


def test_the_cli_lists_the_same_models(reason_on_server, capsys):
    from hybridnb.cli import main

    assert main(["models", "reason"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == str(list_models("reason")).strip()
    assert "* %%reason  gpt-4o-mini" in out


def test_a_local_vllm_endpoint_lists_its_models_priced_by_compute(ip, hybridnb_home, openai_server, monkeypatch):
    import openai_server as srv

    from hybridnb import config

    monkeypatch.setenv("HYBRIDNB_LOCAL_BASE_URL", openai_server.base_url)
    rows = list_models("local").rows
    assert sorted(r.model for r in rows) == sorted(srv.MODELS)
    rate = config.DEFAULTS["local.gpu_hour_usd"] * config.DEFAULTS["local.gpus"]
    assert {r.price for r in rows} == {f"{money(rate)}/h compute"}
    assert [r.model for r in rows if r.in_effect] == [srv.MODELS[0]]  # the server's first model
