"""hybridnb.batch.map against the real loopback OpenAI-protocol server."""

import json

import duckdb
import pandas as pd
import polars as pl
import pytest

import hybridnb
import openai_server as server_module
from hybridnb.batch.runner import BatchStats, map as hmap, run_batch
from hybridnb.errors import BudgetExceeded, HybridnbError, TemplateError
from hybridnb.spend.signals import tracker

TEXTS = ["late parcel again", "the price is too high", "fraud risk on card", "the price is too high",
         "courier was rude", "late parcel again"]


@pytest.fixture
def both_routes(reason_on_server, monkeypatch):
    """%%reason and %%local both on the loopback server."""
    monkeypatch.setenv("HYBRIDNB_LOCAL_BASE_URL", reason_on_server.base_url)
    monkeypatch.setenv("HYBRIDNB_LOCAL_MODEL", "test-local-model")
    return reason_on_server


def sent_prompts(server):
    return [e["body"]["messages"][-1]["content"] for e in server.log if e["path"].endswith("/chat/completions")]


def test_polars_in_polars_out_with_costs_ledger_and_dedup(both_routes):
    df = pl.DataFrame({"id": range(len(TEXTS)), "text": TEXTS})
    out = hmap(df, "Summarise: {text}", route="reason", progress=False)
    assert isinstance(out, pl.DataFrame)
    assert out.columns == ["id", "text", "answer", "input_tokens", "output_tokens", "cost_usd", "cached", "error"]
    assert out["answer"].to_list() == [f"answer: Summarise: {t}" for t in TEXTS]
    # identical prompts are sent once; the repeats are marked cached and cost nothing
    assert sorted(sent_prompts(both_routes)) == sorted({f"Summarise: {t}" for t in TEXTS})
    assert out["cached"].to_list() == [False, False, False, True, False, True]
    first = out.row(0, named=True)
    assert first["input_tokens"] == len(f"Summarise: {TEXTS[0]}".split()) + 3
    assert first["cost_usd"] > 0 and out["error"].null_count() == len(TEXTS)
    led = hybridnb.ledger()
    assert led.height == len(TEXTS)
    assert led.filter(pl.col("status") == "ok").height == 4
    assert led["cost_usd"].sum() == pytest.approx(out["cost_usd"].sum())
    assert led["batch"].n_unique() == 1 and led["batch"][0]
    lane = [s for s in tracker.snapshot() if s["route"] == "reason"][0]
    assert lane["finished"] == 4 and lane["queue_depth"] == 0 and lane["in_flight"] == 0


def test_rerun_continues_from_cache_without_paying(both_routes):
    df = pl.DataFrame({"text": TEXTS})
    hmap(df.head(3), "Label: {text}", route="reason", progress=False)
    n_sent = len(both_routes.log)
    again = run_batch(df, "Label: {text}", route="reason", progress=False, verbose=False)
    new = sent_prompts(both_routes)[n_sent:]
    assert sorted(new) == sorted({f"Label: {t}" for t in TEXTS[3:]} - {f"Label: {t}" for t in TEXTS[:3]})
    assert again.frame["cached"].to_list()[:4] == [True, True, True, True]
    assert again.stats.cached == 5 and again.stats.ok == 1 and again.stats.failed == 0
    assert again.frame["cost_usd"][:4].sum() == 0


def test_pandas_in_pandas_out_keeps_the_index(both_routes):
    df = pd.DataFrame({"text": TEXTS[:3]}, index=["a", "b", "c"])
    out = hmap(df, "Q: {text}", route="local", progress=False, output_prefix="llm_")
    assert isinstance(out, pd.DataFrame)
    assert list(out.index) == ["a", "b", "c"]
    assert out.loc["b", "llm_answer"] == "answer: Q: the price is too high"
    assert "text" in out.columns and "llm_error" in out.columns
    assert list(df.columns) == ["text"]  # the input is not modified


def test_duckdb_table_by_name_and_relation(both_routes, tmp_path):
    db = tmp_path / "seg.duckdb"
    con = duckdb.connect(str(db))
    con.sql("CREATE TABLE segments AS SELECT * FROM (VALUES ('late parcel'), ('rude courier')) t(text)")
    rel = con.sql("SELECT text FROM segments WHERE text LIKE 'rude%'")
    out_rel = hmap(rel, "Q: {text}", route="local", progress=False)
    assert isinstance(out_rel, pl.DataFrame) and out_rel["answer"].to_list() == ["answer: Q: rude courier"]
    con.close()
    out = hmap("segments", "Q: {text}", route="local", progress=False, con=str(db))
    assert out["answer"].to_list() == ["answer: Q: late parcel", "answer: Q: rude courier"]
    with pytest.raises(HybridnbError, match="no DuckDB table or view named 'nope'"):
        hmap("nope", "Q: {text}", route="local", progress=False, con=str(db))


def test_missing_column_is_an_error_before_anything_is_sent(both_routes):
    df = pl.DataFrame({"text": TEXTS})
    with pytest.raises(TemplateError, match=r"\{body\} is not a column of the data; columns are: text"):
        hmap(df, "Label {body}", route="reason", progress=False)
    with pytest.raises(TemplateError, match="names no column"):
        hmap(df, "Label this", route="reason", progress=False)
    assert both_routes.log == []


def test_bad_rows_get_their_error_and_the_batch_goes_on(both_routes):
    df = pd.DataFrame({"text": ["fine", None, "also fine"], "meta": [{"k": "x"}, {"k": "y"}, {}]})
    out = hmap(df, "Q: {text} ({meta[k]})", route="reason", progress=False)
    assert out["answer"].tolist()[0] == "answer: Q: fine (x)"
    assert out["answer"].isna().tolist() == [False, True, True]
    assert out["error"][1] == "TemplateError: column 'text' is null in this row"
    assert out["error"][2].startswith("TemplateError: cannot fill the prompt: KeyError")
    assert sent_prompts(both_routes) == ["Q: fine (x)"]


def test_empty_frame_returns_an_empty_result_with_the_columns(both_routes, capsys):
    df = pl.DataFrame({"text": []}, schema={"text": pl.String})
    out = hmap(df, "Q: {text}", route="reason", progress=False)
    assert out.height == 0 and "answer" in out.columns and "error" in out.columns
    assert "has no rows: nothing sent" in capsys.readouterr().out
    with pytest.raises(TemplateError):  # the template is still checked
        hmap(df, "Q: {nope}", route="reason", progress=False)
    assert both_routes.log == []


def test_choices_are_enforced_per_row(both_routes, monkeypatch):
    real = server_module.answer_for

    def answer_for(body):  # the server ignores the label set for one prompt
        prompt = body["messages"][-1]["content"]
        return "definitely maybe" if "weird" in prompt else real(body)

    monkeypatch.setattr(server_module, "answer_for", answer_for)
    df = pl.DataFrame({"text": ["a cost question", "a risk question", "weird one"]})
    out = hmap(df, "Which concern? {text}", route="local", choices=["risk", "cost", "other"], progress=False)
    assert out["answer"].dtype == pl.Enum(["risk", "cost", "other"])
    assert out["answer"].to_list() == ["cost", "risk", None]
    assert out["error"][2].startswith("InvalidAnswer: answer 'definitely maybe' is not one of")
    body = both_routes.log[0]["body"]
    assert body["structured_outputs"] == {"choice": ["risk", "cost", "other"]}  # enforced by the server too


def test_json_schema_file_becomes_columns(both_routes, tmp_path):
    schema = {"type": "object", "properties": {"topic": {"type": "string"}, "words": {"type": "integer"},
                                                "urgent": {"type": "boolean"}},
              "required": ["topic", "words", "urgent"]}
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema))
    df = pl.DataFrame({"text": ["late parcel again", "price"]})
    out = hmap(df, "Tag {text}", route="local", json_schema=str(path), progress=False)
    assert out["topic"].to_list() == ["Tag late parcel", "Tag price"]
    assert out["words"].to_list() == [4, 2] and out["words"].dtype == pl.Int64
    assert out["urgent"].to_list() == [True, True]
    again = hmap(df, "Tag {text}", route="local", json_schema=schema, progress=False)  # from cache
    assert again["cached"].all() and again["topic"].to_list() == out["topic"].to_list()


def test_retries_then_per_row_errors_grouped_by_class(both_routes):
    both_routes.script(queue=[{"status": 429, "retry_after": 0.01}])
    df = pl.DataFrame({"text": ["one"]})
    out = hmap(df, "Q: {text}", route="reason", progress=False)
    assert out["error"][0] is None and len(both_routes.log) == 2  # retried once, then answered
    assert hybridnb.ledger().height == 1  # a retried call is one call
    # max_retries=2 in the fixture: 3 × 500 fails one row; a 400 (e.g. context too long) is not retried
    both_routes.reset()
    both_routes.script(queue=[{"status": 500, "retry_after": 0.01}] * 3
                       + [{"status": 400, "message": "maximum context length is 8 tokens"}])
    res = run_batch(pl.DataFrame({"text": ["two"]}), "Q: {text}", route="reason", progress=False, verbose=False,
                    concurrency=1)
    assert res.frame["error"][0].startswith("ServerError: ") and res.stats.errors["ServerError"] == 1
    res2 = run_batch(pl.DataFrame({"text": ["three", "four"]}), "Q: {text}", route="reason", progress=False,
                     verbose=False, concurrency=1)
    errs = res2.frame["error"].to_list()
    assert errs[0].startswith("BackendError: ") and "maximum context length" in errs[0] and errs[1] is None
    assert res2.stats.failures().startswith("1 failed: BackendError ×1 (")
    assert "1 failed" in res2.stats.line()


def test_estimate_names_both_routes_and_budget_refuses_before_sending(both_routes, capsys):
    df = pl.DataFrame({"text": [f"segment number {i} " * 20 for i in range(50)]})
    hybridnb.config.session.set("budget_usd", 0.0001)
    with pytest.raises(BudgetExceeded, match="batch refused, nothing sent") as exc:
        hmap(df, "Label: {text}", route="reason", progress=False)
    assert "on %%local" in str(exc.value)
    assert both_routes.log == []
    out = capsys.readouterr().out
    assert "on %%reason (openai · gpt-4o-mini · priced by tokens) this batch would cost ~$" in out
    assert "test-local-model · priced by compute) all 50 would cost ~$" in out  # backend: openai or vllm
    forced = hmap(df.head(2), "Label: {text}", route="reason", progress=False, force=True)
    assert forced["error"].null_count() == 2 and len(both_routes.log) == 2


def test_estimate_says_when_the_other_route_is_not_configured(reason_on_server, monkeypatch, capsys):
    monkeypatch.setenv("HYBRIDNB_LOCAL_BACKEND", "openai")  # but no endpoint
    hmap(pl.DataFrame({"text": ["x"]}), "Q {text}", route="reason", progress=False)
    assert "%%local is not configured (ConfigError" in capsys.readouterr().out


def test_stats_line_reads_well():
    st = BatchStats(rows=10, route="local", done=10, ok=7, cached=1, failed=2, spent_usd=0.5, elapsed_s=2.0)
    st.errors.update({"ServerError": 2})
    st.examples["ServerError"] = "HTTP 500 after 2 retries"
    line = st.line("labeled")
    assert line.startswith("labeled: %%local batch done: 10/10 rows · 7 answered · 1 from cache · 2 failed")
    assert line.endswith("2 failed: ServerError ×2 (HTTP 500 after 2 retries)")


def test_magic_batches_over_a_namespace_frame(both_routes, hybridnb_home, capsys):
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "hybridnb")
    ip.user_ns["segments"] = pl.DataFrame({"text": ["a cost issue", "risk here"]})
    try:
        ip.run_cell_magic("local", "--over segments --col text -o labeled --choices risk,cost,other -q",
                          "Which concern does this segment express?")
        out = ip.user_ns["labeled"]
        assert out["answer"].to_list() == ["cost", "risk"]
        prompts = sorted(sent_prompts(both_routes))  # rows run concurrently: arrival order varies
        assert prompts[0] == "Which concern does this segment express?\n\na cost issue"
        systems = {e["body"]["messages"][0]["content"] for e in both_routes.log
                   if e["path"].endswith("/chat/completions")}
        assert systems == {"Answer with exactly one of: risk, cost, other."}  # options stated to the model
        assert "labeled: %%local batch done: 2/2 rows" in capsys.readouterr().out
        with pytest.raises(UsageError, match="--over nothing_here: no DataFrame variable or DuckDB table"):
            ip.run_cell_magic("local", "--over nothing_here -q", "Q {text}")
        with pytest.raises(UsageError, match=r"\{body\} is not a column"):
            ip.run_cell_magic("local", "--over segments -q", "Q {body}")
    finally:
        for k in ("segments", "labeled"):
            ip.user_ns.pop(k, None)


def test_batch_cell_output_carries_its_bill(both_routes, hybridnb_home):
    from IPython.core.displaypub import CapturingDisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "hybridnb")
    ip.user_ns["segments"] = pl.DataFrame({"text": ["a cost issue", "risk here", "a cost issue"]})
    pub, ip.display_pub = ip.display_pub, CapturingDisplayPublisher()
    try:
        ip.run_cell_magic("local", "--over segments -o labeled --choices risk,cost,other", "Concern? {text}")
        bills = [o for o in ip.display_pub.outputs if "hybridnb" in (o.get("metadata") or {})]
    finally:
        ip.display_pub = pub
        for k in ("segments", "labeled"):
            ip.user_ns.pop(k, None)
    (bill,) = bills
    usage = bill["metadata"]["hybridnb"]
    led = hybridnb.ledger()
    assert usage["calls"] == 2 and usage["cache_hits"] == 1  # the duplicate row was not sent
    # unrounded: the bill is the ledger rows' sum (two rows; float addition of two terms is exact-order-free)
    assert usage["cost_usd"] > 0
    assert usage["cost_usd"] == sum(led.filter(pl.col("status") != "cached")["cost_usd"].to_list())
