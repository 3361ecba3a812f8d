"""Scored choices over real HTTP: vLLM label scoring, the constrained fallback, OpenAI logprobs,
and the probabilities reaching Response, ledger and batch frames."""

from __future__ import annotations

import asyncio
import json
import math

import polars as pl
import pytest

import hybridnb
from hybridnb.backends import _logprobs
from hybridnb.backends._vllm_server import VLLMServerBackend
from hybridnb.core.constraints import choice_probs, logsumexp, options_line, prefix_free
from hybridnb.types import Request

from scoring_server import MODEL, ScoringServer


def complete(b, reqs):
    async def go():
        try:
            return await b.complete(reqs)
        finally:
            await b.aclose()

    return asyncio.run(go())


@pytest.fixture
def scorer():
    with ScoringServer() as srv:
        yield srv


@pytest.fixture
def local_scorer(hybridnb_home, scorer, monkeypatch):
    monkeypatch.setenv("HYBRIDNB_LOCAL_BACKEND", "vllm")
    monkeypatch.setenv("HYBRIDNB_LOCAL_BASE_URL", scorer.url)
    return scorer


@pytest.mark.parametrize("labels", [("positive", "negative"), ("negative", "positive"),
                                    ("Positive", "Negative"), ("NEGATIVE", "POSITIVE")])
def test_each_label_is_scored_whatever_its_order_or_casing(scorer, labels):
    b = VLLMServerBackend(scorer.url)
    reqs = [Request(f"hint: {gold} Review text.", MODEL, choices=labels) for gold in ("negative", "positive")]
    out = complete(b, reqs)
    assert [c.text.lower() for c in out] == ["negative", "positive"]
    for c in out:
        assert c.error is None and set(c.choice_probs) == set(labels)
        assert math.isclose(sum(c.choice_probs.values()), 1.0, rel_tol=1e-9)
        assert c.choice_probs[c.text] > 0.9 and c.extra["finish_reason"] == "choice"
    # the options are stated in what the model sees; one /completions call per request
    sent = [e["body"]["messages"][0]["content"] for e in scorer.log
            if e["path"] == "/tokenize" and "hint:" in json.dumps(e["body"])]
    stated = [next(o for o in (labels, labels[::-1]) if text == options_line(o)) for text in sent]
    assert len(sent) == 2 * len(reqs) and stated.count(labels) == stated.count(labels[::-1])  # both orders
    assert sum(e["path"] == "/v1/completions" for e in scorer.log) == len(reqs)
    assert b.describe()["choices"] == "scored"


def test_usage_counts_the_prompt_once_and_the_label_turn(scorer):
    b = VLLMServerBackend(scorer.url)
    [c] = complete(b, [Request("hint: yes", MODEL, choices=("yes", "no"))])
    from scoring_server import render
    from hybridnb.core.constraints import chat_messages

    prompts = [render(chat_messages("hint: yes", order), True)
               for order in (("yes", "no"), ("no", "yes"))]  # scored under both option orders
    assert c.usage.input_tokens == sum(len(p) for p in prompts) and c.extra["orders"] == 2
    assert c.usage.output_tokens == len("yes</assistant>")
    assert c.extra["scored_prompt_tokens"] > c.usage.input_tokens  # every variant was prefilled


def test_probabilities_reach_response_ledger_and_batch(local_scorer):
    r = hybridnb.local("hint: negative The soup was cold.", choices=["positive", "negative"])
    assert r.text == "negative" and r.confidence == r.choice_probs["negative"] > 0.9
    row = hybridnb.ledger().row(0, named=True)
    assert row["confidence"] == pytest.approx(r.confidence)
    assert json.loads(row["choice_probs"]) == pytest.approx(r.choice_probs)
    df = pl.DataFrame({"t": ["hint: positive great", "hint: negative awful", "hint: positive fine"]})
    out = hybridnb.map(df, "{t}", choices=["positive", "negative"], progress=False)
    assert out["answer"].to_list() == ["positive", "negative", "positive"]
    assert out["confidence"].dtype == pl.Float64 and out["confidence"].min() > 0.9


def test_a_server_without_tokenize_falls_back_to_constrained_with_probability_unknown(
        hybridnb_home, openai_server, monkeypatch, capsys):
    monkeypatch.setenv("HYBRIDNB_LOCAL_BACKEND", "vllm")
    monkeypatch.setenv("HYBRIDNB_LOCAL_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("HYBRIDNB_LOCAL_MODEL", "test-local-model")
    r = hybridnb.local("Is this about billing?", choices=["shipping", "billing"])
    assert r.ok and r.text == "billing" and r.choice_probs is None and r.confidence is None
    body = openai_server.log[-1]["body"]
    assert body["structured_outputs"] == {"choice": ["shipping", "billing"]}
    assert body["messages"][0] == {"role": "system", "content": options_line(["shipping", "billing"])}
    assert body["messages"][-1]["content"] == "Is this about billing?"
    assert hybridnb.ledger().row(0, named=True)["confidence"] is None
    from hybridnb.core.dispatcher import get_dispatcher

    d = get_dispatcher().resolve("local").backend.describe()
    assert d["choices"] == "constrained" and "no /tokenize" in d["choices_note"]
    assert "labels not scored" in capsys.readouterr().err


def test_openai_top_logprobs_give_label_probabilities():
    lp = lambda tok, p: {"token": tok, "logprob": math.log(p)}  # noqa: E731
    content = [{"token": '{"', "top_logprobs": []}, {"token": "label", "top_logprobs": []},
               {"token": '":"', "top_logprobs": []},
               {"token": "neg", "top_logprobs": [lp("neg", 0.6), lp("pos", 0.3), lp("Neg", 0.05), lp("x", 0.05)]},
               {"token": 'ative"}', "top_logprobs": []}]
    probs = _logprobs.label_probs('{"label":"negative"}', "negative", ["positive", "negative"], content)
    assert probs == pytest.approx({"positive": 0.3 / 0.95, "negative": 0.65 / 0.95})
    # labels that share their first token cannot be told apart there: probability unknown
    shared = [{"token": "very", "top_logprobs": [lp("very", 0.9)]}, {"token": " bad", "top_logprobs": []}]
    assert _logprobs.label_probs("very bad", "very bad", ["very good", "very bad"], shared) is None
    assert _logprobs.label_probs("negative", "negative", ["positive", "negative"], None) is None


def test_probability_helpers():
    assert logsumexp([math.log(0.25), math.log(0.5)]) == pytest.approx(math.log(0.75))
    assert logsumexp([]) == float("-inf")
    p = choice_probs({"a": -1000.0, "b": -1001.0})
    assert p["a"] == pytest.approx(1 / (1 + math.exp(-1))) and sum(p.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("labels, end_scored", [(("yes", "no"), False), (("yes", "yesterday"), True)])
def test_the_end_of_turn_is_scored_only_when_a_label_begins_another(scorer, labels, end_scored):
    b = VLLMServerBackend(scorer.url)
    [c] = complete(b, [Request("hint: yes", MODEL, choices=labels)])
    assert c.text == "yes"
    tokens = len("yes") + (len("</assistant>") if end_scored else 0)  # one token per character
    # the label's own tokens (variants "yes" and "Yes" both match the hint: log-sum-exp adds log 2)
    assert c.extra["choice_logprobs"]["yes"] == pytest.approx(-0.01 * tokens + math.log(2))


def test_prefix_free_label_tokens():
    assert prefix_free({"positive": [[1, 2]], "negative": [[3], [4, 2]]})
    assert not prefix_free({"yes": [[5]], "yes, partly": [[5, 6, 7]]})
    assert prefix_free({"yes": [[5], [5, 9]]})  # one label's own variants may share tokens
    assert not prefix_free({"a": [[1, 2]], "b": [[1, 2]]})  # identical tokens cannot be told apart


def test_a_prompt_that_names_every_label_is_not_given_the_options_line_again(scorer):
    b = VLLMServerBackend(scorer.url)
    labels = ("positive", "negative")
    [c] = complete(b, [Request("hint: negative Is this review Positive or negative?", MODEL, choices=labels)])
    assert c.text == "negative" and c.choice_probs["negative"] > 0.9 and c.extra["orders"] == 1
    chats = [e["body"]["messages"] for e in scorer.log if e["path"] == "/tokenize"
             and e["body"].get("add_generation_prompt") and e["body"]["messages"][-1]["content"] != "x"]
    # the request and its content-free twin ("N/A"), each once, neither with an options line
    assert [m[-1]["content"] for m in chats] == ["hint: negative Is this review Positive or negative?", "N/A"]
    assert all(len(m) == 1 for m in chats)
    [d] = complete(b, [Request("hint: positive Is it good?", MODEL, choices=labels)])  # not named: stated
    assert d.text == "positive" and d.extra["orders"] == 2


def test_options_are_stated_unless_the_prompt_names_every_label():
    from hybridnb.core.constraints import chat_messages, names_every, option_orders, with_options

    assert names_every("Is it POSITIVE or negative?", ["positive", "Negative"])
    assert not names_every("Is it positive or not?", ["positive", "negative"])
    assert not names_every("Is it nonnegative?", ["negative", "positive"])  # whole words only
    assert chat_messages("Is it good or bad?", ["good", "bad"]) == [{"role": "user", "content": "Is it good or bad?"}]
    assert chat_messages("Is it ok?", ["good", "bad"])[0] == {"role": "system", "content": options_line(["good", "bad"])}
    assert len(chat_messages("N/A", ["good", "bad"], stated=False)) == 1
    assert option_orders(["good", "bad"], "good or bad?") == [("good", "bad")]
    assert option_orders(["good", "bad"], "ok?") == [("good", "bad"), ("bad", "good")]
    assert with_options("good or bad?", ["good", "bad"]) == "good or bad?"
