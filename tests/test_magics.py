"""%%reason / %%local / %hybridnb driven through a real IPython shell."""

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import hybridnb
from hybridnb import config


@pytest.fixture
def ip(hybridnb_home):
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "hybridnb")
    yield shell
    for name in ("plan", "sample", "labels", "x"):
        shell.user_ns.pop(name, None)


def test_reason_fills_variables_and_stores_the_response(ip, reason_on_server, capsys):
    ip.user_ns["sample"] = "late parcels; rude couriers"
    ip.run_cell_magic("reason", "-o plan", "Propose a taxonomy for: {sample}")
    plan = ip.user_ns["plan"]
    assert isinstance(plan, hybridnb.Response)
    sent = reason_on_server.log[0]["body"]["messages"][-1]["content"]
    assert sent == "Propose a taxonomy for: late parcels; rude couriers"
    md = plan._repr_mimebundle_()["text/markdown"]
    assert "%%reason · openai · gpt-4o-mini" in md and "`$0.0" in md and "not cached" in md


def test_double_braces_are_literal(ip, reason_on_server):
    ip.run_cell_magic("reason", "-q -o plan", "Return JSON like {{\"a\": 1}}")
    assert reason_on_server.log[0]["body"]["messages"][-1]["content"] == 'Return JSON like {"a": 1}'


def test_missing_variable_names_it(ip, reason_on_server):
    with pytest.raises(UsageError, match=r"\{nowhere\} is not defined"):
        ip.run_cell_magic("reason", "", "Summarise {nowhere}")
    assert reason_on_server.log == []


def test_empty_cell_and_unknown_flag_are_usage_errors(ip, reason_on_server):
    with pytest.raises(UsageError, match="cell is empty"):
        ip.run_cell_magic("reason", "", "   \n")
    with pytest.raises(UsageError, match="%%reason: unknown option --frobnicate"):
        ip.run_cell_magic("reason", "--frobnicate", "hi")


def test_backend_error_is_one_line_usage_error_and_recorded(ip, reason_on_server):
    reason_on_server.script(queue=[{"status": 500}] * 3)
    with pytest.raises(UsageError, match="ServerError"):
        ip.run_cell_magic("reason", "-q", "fail please")
    assert hybridnb.ledger().height == 1


def test_line_magic_config_budget_summary_cache(ip, reason_on_server, capsys):
    ip.run_line_magic("hybridnb", "config reason.model=gpt-4o-mini budget_usd=2")
    assert config.get_settings().budget_usd == 2.0
    ip.run_cell_magic("reason", "-q", "count me")
    ip.run_cell_magic("reason", "-q", "count me")
    capsys.readouterr()
    ip.run_line_magic("hybridnb", "budget")
    assert "session budget: $0.0" in capsys.readouterr().out  # the budget names its basis
    s = hybridnb.summary()
    assert s.totals["calls"] == 1 and s.totals["cache_hits"] == 1
    ip.run_line_magic("hybridnb", "cache clear")
    assert "1 answers removed" in capsys.readouterr().out
    ip.run_cell_magic("reason", "-q", "count me")
    assert len(reason_on_server.log) == 2
    with pytest.raises(UsageError, match="unknown command"):
        ip.run_line_magic("hybridnb", "dance")
    with pytest.raises(UsageError, match="not an amount"):
        ip.run_line_magic("hybridnb", "budget lots")
    with pytest.raises(UsageError, match="unknown setting"):
        ip.run_line_magic("hybridnb", "config colour=blue")


def test_config_never_prints_the_key(ip, reason_on_server, capsys):
    ip.run_line_magic("hybridnb", "config")
    out = capsys.readouterr().out
    assert "reason.api_key = <set>" in out and "SECRET" not in out
    ip.run_line_magic("hybridnb", "status")
    assert "SECRET" not in capsys.readouterr().out


def test_percent_config_traitlets_set_the_session_layer(ip, reason_on_server):
    ip.run_line_magic("config", "HybridnbMagics.reason_model = 'gpt-4o'")
    assert config.get_settings()["reason.model"] == "gpt-4o"
    ip.run_line_magic("config", "HybridnbMagics.budget_usd = 1.5")
    assert config.get_settings().budget_usd == 1.5


def test_model_flag_beats_everything(ip, reason_on_server):
    ip.run_cell_magic("reason", "-q -m test-local-model", "hello")
    assert reason_on_server.log[0]["body"]["model"] == "test-local-model"


def test_backends_lists_builtins(ip, capsys):
    ip.run_line_magic("hybridnb", "backends")
    listed = dict(line.split() for line in capsys.readouterr().out.splitlines())
    assert {k: listed.get(k) for k in ("openai", "embedded", "vllm", "vllm-engine")} == {
        "openai": "hybridnb.backends._openai:OpenAIBackend",
        "embedded": "hybridnb.backends._embedded:EmbeddedBackend",
        "vllm": "hybridnb.backends._vllm_server:VLLMServerBackend",
        "vllm-engine": "hybridnb.backends._vllm_engine:VLLMEngineBackend",
    }
    assert list(listed) == sorted(listed)  # one line per backend, by name


def test_export_inserts_a_markdown_summary_cell_and_writes_the_ledger(ip, reason_on_server, tmp_path):
    ip.run_cell_magic("reason", "-q", "bill me")
    ip.rl_next_input = None
    ip.run_line_magic("hybridnb", "export")
    cell = ip.rl_next_input
    assert cell.startswith("%%markdown\n")
    assert "gpt-4o-mini" in cell and "`$" in cell
    out = tmp_path / "ledger.parquet"
    ip.run_line_magic("hybridnb", f"export --ledger {out}")
    import polars as pl

    assert pl.read_parquet(out).height == hybridnb.ledger().height == 1
    with pytest.raises(UsageError, match="export"):
        ip.run_line_magic("hybridnb", "export --ledger")


def test_answer_output_carries_its_usage_as_metadata(ip, reason_on_server):
    from IPython.core.displaypub import CapturingDisplayPublisher

    pub, ip.display_pub = ip.display_pub, CapturingDisplayPublisher()
    try:
        ip.run_cell_magic("reason", "", "what did this cost")
        (out,) = ip.display_pub.outputs
    finally:
        ip.display_pub = pub
    usage = out["metadata"]["hybridnb"]
    assert usage["cost_usd"] == pytest.approx(hybridnb.ledger()["cost_usd"].sum())


def test_multi_word_choices_can_be_quoted(ip, reason_on_server):
    ip.run_cell_magic("reason", '-q -o x --choices "late delivery,double charge"',
                      "Was this a double charge or a late delivery? I paid twice.")
    assert ip.user_ns["x"].text in ("late delivery", "double charge")
    assert reason_on_server.log[-1]["body"]["structured_outputs"]["choice"] == ["late delivery", "double charge"]
