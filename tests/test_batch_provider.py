"""Provider batch jobs (mode="batch-api", %%reason --batch-api) against a loopback /v1/files + /v1/batches."""

import _thread
import threading
import time

import polars as pl
import pytest

import hybridnb
from batch_server import BatchServer
from hybridnb import config
from hybridnb.batch import batches
from hybridnb.batch.runner import BatchInterrupted, run_batch
from hybridnb.errors import ConfigError

KEY = "sk-test-SECRET-0123456789"


@pytest.fixture(scope="module")
def _bserver():
    srv = BatchServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def bserver(_bserver, hybridnb_home, monkeypatch):
    """%%reason on the batch-capable loopback server, polled fast."""
    _bserver.reset()
    monkeypatch.setenv("HYBRIDNB_REASON_BASE_URL", _bserver.base_url)
    monkeypatch.setenv("HYBRIDNB_REASON_API_KEY", KEY)
    monkeypatch.setenv("HYBRIDNB_REASON_MODEL", "gpt-4o-mini")
    monkeypatch.setenv("HYBRIDNB_MAX_RETRIES", "1")
    monkeypatch.setenv("HYBRIDNB_BATCH_POLL_S", "0.02")
    yield _bserver
    _bserver.reset()


def frame(n, word="parcel"):
    return pl.DataFrame({"text": [f"{word} {i} arrived late" for i in range(n)]})


def job(df, **kw):
    kw.setdefault("verbose", False)
    return run_batch(df, "Label: {text}", "reason", mode="batch-api", progress=False, **kw)


def bserver_home(_srv):
    return config.get_settings().home


def chat_calls(srv):
    return [e for e in srv.log if e["path"].endswith("/chat/completions")]


def test_rows_come_back_at_half_price_into_cache_and_ledger(bserver, capsys):
    df = pl.concat([frame(30), frame(1)])  # one duplicate row
    out = job(df, verbose=True)
    said = capsys.readouterr().out
    assert "as a provider batch job (--batch-api): ~$" in said and "batch rate from genai-prices" in said
    assert "submitted batch job batch_" in said
    bid = out.stats.batch_id
    assert bid.startswith("batch_") and len(bserver.state.batches) == 1 and bserver.state.uploads == 1
    assert not chat_calls(bserver)  # nothing went online
    assert out.frame["error"].null_count() == 31 and out.frame["cached"].sum() == 1
    assert out.frame["answer"][0] == "answer: Label: parcel 0 arrived late"
    from hybridnb.store.ledger import summarize

    assert summarize(bserver_home(bserver))["calls"].sum() == 30  # the job's own rows are not calls
    # the same prompts online (cache off): same answers and tokens, twice the price
    online = run_batch(df, "Label: {text}", "reason", progress=False, verbose=False, cache=False)
    assert online.frame["answer"].to_list() == out.frame["answer"].to_list()
    assert online.frame["input_tokens"].to_list() == out.frame["input_tokens"].to_list()
    paid = out.frame.filter(~pl.col("cached"))
    for b, o in zip(paid["cost_usd"], online.frame.filter(~pl.col("cached"))["cost_usd"]):
        assert b == pytest.approx(o / 2)
    led = hybridnb.ledger()
    rows = led.filter((pl.col("batch") == bid) & (pl.col("kind") == "call"))
    assert rows.filter(pl.col("status") == "ok").height == 30
    assert rows["cost_usd"].sum() == pytest.approx(out.frame["cost_usd"].sum())
    states = led.filter(pl.col("kind") == "batch-job").sort("ts")["status"].to_list()
    assert states == ["submitted", "completed"]
    # a later online run of the same prompts pays nothing: every row from the cache
    n = len(chat_calls(bserver))
    again = run_batch(df, "Label: {text}", "reason", progress=False, verbose=False)
    assert len(chat_calls(bserver)) == n and again.frame["cached"].all() and again.stats.spent_usd == 0


def test_partial_failures_are_row_errors_and_a_rerun_sends_only_those(bserver):
    bserver.script(fail_match="parcel 3 ")
    df = frame(6)
    out = job(df)
    errs = out.frame["error"].to_list()
    assert errs[3].startswith("ServerError: ") and "HTTP 500" in errs[3] and "SECRET" not in errs[3]
    assert [e is None for i, e in enumerate(errs) if i != 3] == [True] * 5
    failed = hybridnb.ledger().filter(pl.col("status") == "error")
    assert failed.height == 1 and failed["cost_usd"].sum() == 0  # providers do not bill failed requests
    bserver.script(fail_match=None)
    again = job(df)
    second = bserver.state.batches[again.stats.batch_id]
    assert second["request_counts"]["total"] == 1 and again.frame["error"].null_count() == 6


def test_an_expired_job_keeps_its_finished_rows(bserver):
    bserver.script(expire_after=4)
    out = job(frame(10))
    errs = out.frame["error"].to_list()
    assert all(e is None for e in errs[:4])
    assert all(e.startswith("BackendTimeout: ") and "expired" in e for e in errs[4:])
    assert hybridnb.ledger().filter(pl.col("kind") == "batch-job")["status"].to_list()[-1] == "expired"
    bserver.script(expire_after=None)
    rest = job(frame(10))
    assert rest.frame["error"].null_count() == 10 and rest.frame["cached"].sum() == 4


def test_a_failed_validation_fails_every_row(bserver):
    bserver.script(invalid=True)
    out = job(frame(3))
    assert all(e.startswith("BackendError: ") and "not valid batch JSONL" in e for e in out.frame["error"])


def _interrupt_when_polling(srv, polls=3):
    def watch():
        deadline = time.time() + 30
        while srv.state.polls < polls and time.time() < deadline:
            time.sleep(0.005)
        _thread.interrupt_main()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def test_ctrl_c_detaches_and_the_same_cell_reattaches(bserver):
    bserver.script(hold_after=2)
    df = frame(5)
    watcher = _interrupt_when_polling(bserver)
    with pytest.raises(BatchInterrupted) as info:
        job(df)
    watcher.join()
    bid = next(iter(bserver.state.batches))
    assert f"detached from batch job {bid}" in str(info.value)
    assert f"%hybridnb batches cancel {bid}" in str(info.value)
    listed = batches.list_jobs()
    assert listed["batch"].to_list() == [bid] and listed["provider_status"][0] == "in_progress"
    bserver.script(release=True)
    out = job(df)
    assert out.stats.batch_id == bid and len(bserver.state.batches) == 1  # re-attached, not resubmitted
    assert out.frame["error"].null_count() == 5
    assert "completed" in batches.cmd_batches([])


def test_cancel_then_attach_collects_what_finished(bserver):
    bserver.script(hold_after=3)
    df = frame(8)
    watcher = _interrupt_when_polling(bserver)
    with pytest.raises(BatchInterrupted):
        job(df)
    watcher.join()
    bid = next(iter(bserver.state.batches))
    assert "cancelling" in batches.cmd_batches(["cancel", bid])
    said = batches.attach(bid, progress=False)
    assert said.startswith(f"batch job {bid} cancelled: 3 of 8 requests answered and cached")
    assert "already collected" in batches.attach(bid, progress=False)
    bserver.script(hold_after=None, release=True)
    out = job(df)
    assert out.frame["cached"].sum() == 3 and out.frame["error"].null_count() == 8
    assert len(bserver.state.batches) == 2 and bserver.state.batches[out.stats.batch_id]["request_counts"]["total"] == 5
    with pytest.raises(hybridnb.errors.HybridnbError, match="usage: %hybridnb batches"):
        batches.cmd_batches(["frobnicate"])


def test_discount_setting_where_no_batch_rate_is_known(bserver, monkeypatch):
    monkeypatch.setenv("HYBRIDNB_REASON_MODEL", "test-local-model")
    config.session.set("prices.test-local-model.input", 2.0)
    config.session.set("prices.test-local-model.output", 8.0)
    config.session.set("batch_discount", 0.3)
    out = job(frame(2))
    led = hybridnb.ledger().filter((pl.col("kind") == "call") & (pl.col("status") == "ok"))
    expected = [0.3 * (i * 2.0 + o * 8.0) / 1e6 for i, o in zip(led["input_tokens"], led["output_tokens"])]
    assert led["cost_usd"].to_list() == pytest.approx(expected)
    assert out.frame["cost_usd"].sum() == pytest.approx(sum(expected))


def test_batch_api_needs_a_token_priced_endpoint(hybridnb_home):
    with pytest.raises(ConfigError, match="needs a token-priced OpenAI-compatible endpoint"):
        run_batch(frame(2), "Label: {text}", "reason", mode="batch-api", progress=False, verbose=False)


def test_the_magic_flag(bserver, ip):
    ip.user_ns["df"] = frame(3)
    ip.run_cell_magic("reason", "--over df --batch-api -o out -q", "Label: {text}")
    out = ip.user_ns["out"]
    assert out["error"].null_count() == 3 and len(bserver.state.batches) == 1
    ip.run_line_magic("hybridnb", "batches")


@pytest.fixture
def ip(hybridnb_home):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "hybridnb")
    yield shell
    for name in ("df", "out"):
        shell.user_ns.pop(name, None)
