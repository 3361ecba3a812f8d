"""Batch estimates that count the chat template and learn from the rows already done."""

from __future__ import annotations

import re

import polars as pl

from hybridnb.backends._openai import OpenAIBackend
from hybridnb.batch.runner import run_batch
from hybridnb.core.constraints import with_options
from hybridnb.core.pricing import estimate_tokens
from hybridnb.types import Request

from scoring_server import MODEL, ScoringServer, render


def _tokens_in_estimate(line: str) -> tuple[int, int]:
    m = re.search(r"~([\d,]+) input \+ ~([\d,]+) output tokens", line)
    return int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))


def test_estimate_counts_the_template_and_the_label_not_eight_tokens():
    b = OpenAIBackend("http://127.0.0.1:9/v1")
    r = Request("Review: fine. Positive or negative?", "m", choices=("positive", "negative"))
    tin, tout = b.estimate_tokens(r, 256)  # constrained decoding: one prompt
    assert tin == estimate_tokens(with_options(r.prompt, r.choices)) + b.chat_overhead_tokens
    assert tout == estimate_tokens("negative") + 1


def test_vllm_measures_its_template_overhead_before_and_after_calls(hybridnb_home, monkeypatch):
    with ScoringServer() as srv:
        monkeypatch.setenv("HYBRIDNB_LOCAL_BACKEND", "vllm")
        monkeypatch.setenv("HYBRIDNB_LOCAL_BASE_URL", srv.url)
        df = pl.DataFrame({"t": [f"hint: positive row {i} was great" for i in range(20)]})
        res = run_batch(df, "{t}", choices=["positive", "negative"], progress=False, verbose=False)
        probe = len(render([{"role": "user", "content": ""}], True))
        tin, _ = _tokens_in_estimate(res.stats.estimate)
        expected = sum(2 * (estimate_tokens(with_options(t, ("positive", "negative"))) + probe)  # two orders
                       for t in df["t"])
        assert tin == expected  # the template's tokens (probed via /tokenize) are counted
        b = res.frame  # after the calls the overhead is re-measured from real prompt tokens
        from hybridnb.core.dispatcher import get_dispatcher

        backend = get_dispatcher().resolve("local").backend
        seen = {n // 2 - estimate_tokens(with_options(t, ("positive", "negative")))
                for t, n in zip(df["t"], b["input_tokens"])}
        assert backend.chat_overhead_tokens in seen and backend.chat_overhead_tokens != probe


def test_projection_after_five_percent_is_within_thirty_percent(reason_on_server):
    df = pl.DataFrame({"t": [f"Summarise item {i} in one short line please" for i in range(40)]})
    res = run_batch(df, "{t}", route="reason", progress=False, verbose=False, max_tokens=64)
    st = res.stats
    assert st.projected_at_5pct is not None and st.spent_usd > 0
    assert abs(st.projected_at_5pct - st.spent_usd) / st.spent_usd <= 0.3
    assert abs(st.projected_usd - st.spent_usd) / st.spent_usd < 1e-9  # at the end it is the bill
