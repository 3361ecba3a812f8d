"""VLLMServerBackend against a real loopback server speaking the OpenAI + vLLM wire protocol."""

from __future__ import annotations

import asyncio
import json

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import hybridnb
from hybridnb import errors
from hybridnb.types import Request
from hybridnb.backends import load
from hybridnb.backends._vllm_server import VLLMServerBackend, parse_version, poll_metrics, server_root
from hybridnb.spend.signals import tracker
from openai_server import Handler, OpenAIServer


class VLLMHandler(Handler):
    """The lead's loopback handler plus ``/version`` and raw Prometheus text, like a real vllm serve."""

    version: str | None = None
    raw_metrics: str | None = None

    def do_GET(self) -> None:
        if self.path == "/version" and self.version is not None:
            self._json(200, {"version": self.version})
        elif self.path == "/metrics" and self.raw_metrics is not None:
            self._send(200, self.raw_metrics.encode(), "text/plain; version=0.0.4")
        else:
            super().do_GET()


@pytest.fixture
def vllm_server():
    """A loopback 'vllm serve' whose /version and /metrics text a test sets."""
    srv = OpenAIServer()
    srv.handler = type("H", (VLLMHandler,), {"state": srv.state})
    srv.httpd.RequestHandlerClass = srv.handler
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def local_vllm(hybridnb_home, monkeypatch):
    def point(srv, model: str | None = "test-local-model"):
        monkeypatch.setenv("HYBRIDNB_LOCAL_BACKEND", "vllm")
        monkeypatch.setenv("HYBRIDNB_LOCAL_BASE_URL", srv.base_url)
        monkeypatch.setenv("HYBRIDNB_MAX_RETRIES", "0")
        if model:
            monkeypatch.setenv("HYBRIDNB_LOCAL_MODEL", model)
        return srv
    return point


def run(coro):
    return asyncio.run(coro)


# ---- registry and helpers ---------------------------------------------------
def test_vllm_backends_are_registered():
    assert load("vllm") is VLLMServerBackend
    assert load("vllm-engine").name == "vllm-engine"


def test_version_and_root_parsing():
    assert parse_version("0.10.1.dev3+gabc") == (0, 10, 1)
    assert parse_version("v0.12.0") == (0, 12, 0)
    assert parse_version("unknown") is None
    assert server_root("http://h:8000/v1/") == "http://h:8000"
    assert server_root("http://h:8000") == "http://h:8000"


def test_missing_base_url_is_a_config_error(hybridnb_home, monkeypatch):
    monkeypatch.setenv("HYBRIDNB_LOCAL_BACKEND", "vllm")
    with pytest.raises(errors.ConfigError, match="HYBRIDNB_LOCAL_BASE_URL"):
        hybridnb.local("hello", model="m")


# ---- structured outputs ---------------------------------------------------------
def test_local_choices_magic_sends_structured_outputs_and_is_priced_by_gpu_time(
        local_vllm, openai_server, monkeypatch):
    local_vllm(openai_server)
    monkeypatch.setenv("HYBRIDNB_LOCAL_GPU_HOUR_USD", "3600")  # $1 per GPU-second
    monkeypatch.setenv("HYBRIDNB_LOCAL_GPUS", "2")
    openai_server.script(delay_s=0.05)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "hybridnb")
    ip.run_cell_magic("local", "--choices positive,negative,neutral -o r",
                      "Is this review negative or not? 'awful, broke in a day'")
    r = ip.user_ns["r"]
    assert r.text == "negative" and r.backend == "vllm" and r.pricing == "compute"
    body = openai_server.log[-1]["body"]
    assert body["structured_outputs"] == {"choice": ["positive", "negative", "neutral"]}
    assert "guided_choice" not in body and "response_format" not in body
    row = hybridnb.ledger().row(0, named=True)
    assert row["backend"] == "vllm" and row["gpus"] == 2.0 and row["held_s"] >= 0.05
    assert row["cost_usd"] == pytest.approx(2 * row["held_s"])  # rate × GPUs × held seconds


def test_json_schema_goes_as_structured_outputs_json(local_vllm, openai_server):
    local_vllm(openai_server)
    schema = {"type": "object", "properties": {"topic": {"type": "string"}, "n": {"type": "integer"}}}
    r = hybridnb.local("three short words here", json_schema=schema)
    assert openai_server.log[-1]["body"]["structured_outputs"] == {"json": schema}
    assert r.json == {"topic": "three short words", "n": 4}


@pytest.mark.parametrize("version,legacy", [("0.9.2", True), ("0.10.1.post1", True),
                                            ("0.10.2", False), ("0.11.0", False)])
def test_structured_form_follows_the_server_version(local_vllm, vllm_server, version, legacy):
    vllm_server.handler.version = version
    local_vllm(vllm_server)
    assert hybridnb.local("is it negative?", choices=["positive", "negative"]).text == "negative"
    # (the loopback server reads guided_choice but not guided_json: only the body matters here)
    hybridnb.local("two words", json_schema={"type": "object", "properties": {"a": {"type": "string"}}},
                   raise_errors=False)
    choice_body, json_body = (e["body"] for e in vllm_server.log[-2:])
    if legacy:
        assert choice_body["guided_choice"] == ["positive", "negative"]
        assert json_body["guided_json"]["properties"] == {"a": {"type": "string"}}
        assert "structured_outputs" not in choice_body and "structured_outputs" not in json_body
    else:
        assert choice_body["structured_outputs"] == {"choice": ["positive", "negative"]}
        assert "guided_choice" not in choice_body and "guided_json" not in json_body
    d = hybridnb.get_dispatcher().resolve("local").backend.describe()
    assert d["server_version"] == version


# ---- model discovery -------------------------------------------------------------
def test_model_defaults_to_the_first_model_the_server_lists(local_vllm, openai_server):
    local_vllm(openai_server, model=None)
    r = hybridnb.local("hello there")
    assert r.model == "gpt-4o-mini"  # first id in the loopback server's /v1/models
    assert openai_server.log[-1]["body"]["model"] == "gpt-4o-mini"
    assert hybridnb.ledger().row(0, named=True)["model"] == "gpt-4o-mini"


def test_server_down_is_a_clear_error_and_a_failed_call_is_ledgered(local_vllm, vllm_server, monkeypatch):
    local_vllm(vllm_server, model=None)
    vllm_server.stop()
    with pytest.raises(errors.BackendUnavailable, match="vllm serve"):
        hybridnb.local("hello")
    monkeypatch.setenv("HYBRIDNB_LOCAL_MODEL", "test-local-model")
    r = hybridnb.local("hello", raise_errors=False)
    assert isinstance(r.error, errors.BackendUnavailable)
    row = hybridnb.ledger().row(0, named=True)
    assert row["status"] == "error" and row["error_class"] == "BackendUnavailable"
    assert row["held_s"] > 0 and row["cost_usd"] == pytest.approx(row["held_s"] * 2.5 / 3600)


def test_magic_against_a_down_server_is_a_usage_error_not_a_crash(local_vllm, vllm_server):
    local_vllm(vllm_server)
    vllm_server.stop()
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "hybridnb")
    with pytest.raises(UsageError, match="BackendUnavailable"):
        ip.run_cell_magic("local", "--choices a,b", "a or b?")


# ---- /metrics --------------------------------------------------------------------
def test_metrics_from_scripted_gauges(openai_server):
    openai_server.script(metrics={"num_requests_running": 3, "num_requests_waiting": 7,
                                  "kv_cache_usage_perc": 0.42, "prompt_tokens_total": 1200,
                                  "generation_tokens_total": 300})
    b = VLLMServerBackend(openai_server.base_url)
    m = run(b.metrics())
    assert m["requests_running"] == 3 and m["requests_waiting"] == 7
    assert m["kv_cache_usage"] == pytest.approx(0.42)
    assert m["prompt_tokens_total"] == 1200 and m["generation_tokens_total"] == 300
    assert m["e2e_latency_p50_s"] is None  # no histogram scripted
    assert b.describe()["metrics"] == "yes"


def test_older_gpu_cache_name_is_read(openai_server):
    openai_server.script(metrics={"num_requests_running": 1, "gpu_cache_usage_perc": 0.9})
    m = run(VLLMServerBackend(openai_server.base_url).metrics())
    assert m["kv_cache_usage"] == pytest.approx(0.9)


def test_no_metrics_endpoint_gives_none_and_one_note(openai_server, capsys):
    b = VLLMServerBackend(openai_server.base_url)

    async def twice():
        return await b.metrics(), await b.metrics()

    assert run(twice()) == (None, None)
    err = capsys.readouterr().err
    assert err.count("no saturation metrics from this backend") == 1 and "HTTP 404" in err
    assert b.describe()["metrics"] == "absent"
    assert "no saturation metrics" in b.describe()["note"]


def test_metrics_of_a_down_server_is_none_not_an_exception(vllm_server):
    b = VLLMServerBackend(vllm_server.base_url)
    vllm_server.stop()
    assert run(b.metrics()) is None
    assert b.describe()["metrics"] == "unreachable"


VLLM_METRICS_1 = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 5.0
vllm:num_requests_running{engine="1",model_name="m"} 3.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 2.0
vllm:num_requests_waiting{engine="1",model_name="m"} 0.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.75
# TYPE vllm:prompt_tokens counter
vllm:prompt_tokens_total{engine="0",model_name="m"} 1000.0
# TYPE vllm:generation_tokens counter
vllm:generation_tokens_total{engine="0",model_name="m"} 400.0
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{engine="0",le="0.5",model_name="m"} 20.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="1.0",model_name="m"} 60.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="2.5",model_name="m"} 100.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf",model_name="m"} 100.0
vllm:e2e_request_latency_seconds_count{engine="0",model_name="m"} 100.0
vllm:e2e_request_latency_seconds_sum{engine="0",model_name="m"} 90.0
"""


def test_real_vllm_text_sums_engines_and_reads_histogram_percentiles(vllm_server):
    vllm_server.handler.raw_metrics = VLLM_METRICS_1
    m = run(VLLMServerBackend(vllm_server.base_url).metrics())
    assert m["requests_running"] == 8 and m["requests_waiting"] == 2
    assert m["kv_cache_usage"] == 0.75  # the fullest engine
    assert m["prompt_tokens_total"] == 1000 and m["generation_tokens_total"] == 400
    assert m["requests_total"] == 100
    # histogram_quantile: rank 50 lies in (0.5, 1.0] holding 40 → 0.5 + 0.5 × 30/40
    assert m["e2e_latency_p50_s"] == pytest.approx(0.875)
    # rank 95 lies in (1.0, 2.5] holding 40 → 1.0 + 1.5 × 35/40
    assert m["e2e_latency_p95_s"] == pytest.approx(2.3125)


def test_two_scrapes_give_rates_and_window_percentiles(vllm_server):
    vllm_server.handler.raw_metrics = VLLM_METRICS_1
    b = VLLMServerBackend(vllm_server.base_url)

    async def two():
        first = await b.metrics()
        vllm_server.handler.raw_metrics = (
            VLLM_METRICS_1.replace("_total{engine=\"0\",model_name=\"m\"} 1000.0",
                                   "_total{engine=\"0\",model_name=\"m\"} 3000.0")
            .replace('le="0.5",model_name="m"} 20.0', 'le="0.5",model_name="m"} 30.0')
            .replace('le="1.0",model_name="m"} 60.0', 'le="1.0",model_name="m"} 70.0')
            .replace('le="2.5",model_name="m"} 100.0', 'le="2.5",model_name="m"} 110.0')
            .replace('le="+Inf",model_name="m"} 100.0', 'le="+Inf",model_name="m"} 110.0'))
        await asyncio.sleep(0.05)
        return first, await b.metrics()

    first, second = run(two())
    assert "prompt_tokens_per_s" not in first
    w = second["window_s"]
    assert second["prompt_tokens_per_s"] == pytest.approx(2000 / w)
    assert second["generation_tokens_per_s"] == 0
    assert second["requests_per_s"] == pytest.approx(10 / w)
    # the 10 requests of the window all finished within 0.5 s
    assert second["window_e2e_latency_p50_s"] == pytest.approx(0.25)
    assert second["window_e2e_latency_p95_s"] == pytest.approx(0.475)


def test_prometheus_client_and_small_parser_agree():
    from hybridnb.backends import _vllm_metrics as vm

    a, b = vm.parse(VLLM_METRICS_1), vm._parse_small(VLLM_METRICS_1)
    assert vm.summarize(a) == vm.summarize(b)
    assert vm.summarize(vm._parse_small("garbage line\nvllm:num_requests_waiting 4\n"))["requests_waiting"] == 4


def test_llama_cpp_metrics_are_read_with_vllm_meanings(vllm_server):
    vllm_server.handler.raw_metrics = ("# TYPE llamacpp:requests_processing gauge\n"
                                       "llamacpp:requests_processing 2\n"
                                       "llamacpp:requests_deferred 1\n"
                                       "llamacpp:kv_cache_usage_ratio 0.5\n"
                                       "llamacpp:tokens_predicted_total 77\n")
    m = run(VLLMServerBackend(vllm_server.base_url).metrics())
    assert (m["requests_running"], m["requests_waiting"], m["kv_cache_usage"]) == (2, 1, 0.5)
    assert m["generation_tokens_total"] == 77


def test_unrelated_prometheus_text_is_no_metrics(vllm_server, capsys):
    vllm_server.handler.raw_metrics = "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 3\n"
    assert run(VLLMServerBackend(vllm_server.base_url).metrics()) is None
    assert "no saturation metrics from this backend" in capsys.readouterr().err


# ---- the poller -------------------------------------------------------------------
def test_poller_pushes_metrics_into_the_signals_while_a_batch_runs(local_vllm, openai_server):
    local_vllm(openai_server)
    openai_server.script(delay_s=0.05, metrics={"num_requests_running": 4, "num_requests_waiting": 9,
                                                "kv_cache_usage_perc": 0.5})
    d = hybridnb.get_dispatcher()
    target = d.resolve("local")
    reqs = [Request(f"q{i}", target.model) for i in range(6)]
    seen = []

    async def batch():
        async with poll_metrics(target.backend, "local", "vllm", interval_s=0.01):
            out = await d.arun(reqs, target, cache=False)
            seen.append(dict(tracker.backend_metrics[("local", "vllm")]))
            return out

    out = run(batch())
    assert all(r.ok for r in out)
    assert seen[0]["requests_waiting"] == 9
    lane = [x for x in tracker.snapshot() if x["backend"] == "vllm"][0]
    assert lane["backend_metrics"]["kv_cache_usage"] == 0.5


def test_poller_stops_and_clears_when_the_backend_has_no_metrics(openai_server, capsys):
    b = VLLMServerBackend(openai_server.base_url)
    tracker.set_backend_metrics("local", "vllm", {"stale": 1})

    async def go():
        async with poll_metrics(b, "local", interval_s=0.01):
            await asyncio.sleep(0.05)

    run(go())
    assert ("local", "vllm") not in tracker.backend_metrics
    assert capsys.readouterr().err.count("no saturation metrics") == 1


def test_log_never_carries_the_api_key(local_vllm, openai_server, monkeypatch):
    local_vllm(openai_server)
    monkeypatch.setenv("HYBRIDNB_LOCAL_API_KEY", "sk-local-SECRET-987654321")
    openai_server.script(metrics={"num_requests_running": 1})
    r = hybridnb.local("hi")
    assert openai_server.log[-1]["auth"]
    d = hybridnb.get_dispatcher().resolve("local").backend
    assert "SECRET" not in json.dumps(d.describe()) + repr(d) + json.dumps(r.record.__dict__, default=str)


def test_describe_reports_the_metrics_state_any_backend_of_this_server_read(openai_server):
    import asyncio

    openai_server.script(metrics={"num_requests_running": 0, "num_requests_waiting": 0,
                                  "gpu_cache_usage_perc": 0.1})
    reader, other = VLLMServerBackend(openai_server.base_url), VLLMServerBackend(openai_server.base_url)

    async def read():
        try:
            return await reader.metrics()
        finally:
            await reader.aclose()

    assert asyncio.run(read()) is not None
    d = other.describe()  # e.g. the batch's backend (other settings) read it, status asks this one
    assert d["metrics"] == "yes" and d["metrics_read_at"] is not None
    assert other.capabilities()["has_metrics"] and other.capabilities()["scored_choices"]
