"""An answer outside `choices` is never returned as an answer: on a single call it raises InvalidAnswer
(and the billed call is in the ledger), in a batch it is that row's error and the other rows survive."""

from __future__ import annotations

import polars as pl
import pytest

import hybridnb
from hybridnb.errors import InvalidAnswer


def test_single_call_with_an_out_of_set_answer_raises_and_is_ledgered(reason_on_server):
    reason_on_server.script(queue=[{"content": "maybe"}])
    with pytest.raises(InvalidAnswer, match="maybe"):
        hybridnb.reason("Is the sky blue? yes or no", choices=["yes", "no"], cache=False)
    rows = hybridnb.ledger()
    assert rows.height == 1 and rows["status"][0] == "error"
    assert rows["cost_usd"][0] > 0  # the provider billed it: the bill shows it


def test_in_set_answer_is_returned(reason_on_server):
    reason_on_server.script(queue=[{"content": "no"}])
    r = hybridnb.reason("Is the sky green? yes or no", choices=["yes", "no"], cache=False)
    assert r.text == "no"


def test_batch_row_with_an_out_of_set_answer_is_that_rows_error(reason_on_server):
    reason_on_server.script(queue=[{"content": "yes"}, {"content": "perhaps"}, {"content": "no"}])
    df = pl.DataFrame({"q": ["first question", "second question", "third question"]})
    out = hybridnb.map(df, "Answer yes or no: {q}", route="reason", choices=["yes", "no"], concurrency=1,
                       cache=False)
    assert out["answer"].to_list() == ["yes", None, "no"]
    errors = out["error"].to_list()
    assert errors[0] is None and errors[2] is None
    assert "InvalidAnswer" in errors[1] or "perhaps" in errors[1]
