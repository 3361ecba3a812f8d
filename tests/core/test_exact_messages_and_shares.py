"""Tests written from mutants that survived ``bash scripts/mutation.sh`` (issue 17): exact values where
the suite only checked that something was returned."""

import pytest

from hybridnb.core import pricing
from hybridnb.core.template import render, resolve_refs
from hybridnb.errors import TemplateError
from hybridnb.types import Usage

NS = {"In": ["", "a = 1", "print(a)"], "Out": {i: f"out {i}" for i in range(1, 11) if i != 2}, "Err": {}}


@pytest.mark.parametrize("field, message", [
    ("In[5]", "{In[5]} does not exist: cell 5 has not run in this kernel (this is cell 2)"),
    ("In[-5]", "{In[-5]} does not exist: a cell before the first (-3) has not run in this kernel (this is cell 2)"),
    ("In[0]", "{In[0]} does not exist: a cell before the first (0) has not run in this kernel (this is cell 2)"),
    # the last 8 cells that have a result, in cell order (10 sorts after 9: numbers, not text)
    ("Out[2]", "{Out[2]} does not exist: cell 2 returned no value (Out has cells 3, 4, 5, 6, 7, 8, 9, 10)"),
    ("Err[1]", "{Err[1]} does not exist: cell 1 raised no error (no cell has an error yet)"),
])
def test_a_missing_cell_reference_says_exactly_what_is_missing(field, message):
    with pytest.raises(TemplateError) as e:
        render("see {" + field + "}", NS)
    assert str(e.value) == message


def test_a_result_table_without_cell_numbers_says_no_cell_has_one():
    with pytest.raises(TemplateError) as e:
        render("{Out[1]}", {"In": ["", "x"], "Out": ["", None]})
    assert str(e.value) == "{Out[1]} does not exist: cell 1 returned no value (no cell has a result yet)"


def test_relative_references_count_back_from_the_running_cell():
    assert render("{Out[-1]} / {In[-1]} / {Out[3]}", NS) == "out 1 / a = 1 / out 3"
    with pytest.raises(TemplateError, match="no cell history here"):
        render("{Out[1]}", {})


def test_a_zero_length_interval_holds_nothing_and_takes_nothing_from_the_others():
    assert pricing.held_shares([(1.0, 1.0), (0.0, 2.0), (2.0, 2.0)]) == [0.0, 2.0, 0.0]
    assert pricing.held_shares([(0.0, 1.0), (1.0, 3.0)]) == [1.0, 2.0]  # touching: no overlap


def test_resolved_references_are_literal_text_and_other_fields_stay_for_each_row():
    ns = {**NS, "Out": {**NS["Out"], 4: "{x}"}}
    got = resolve_refs("{{lit}} {In[1]!r:>8} and {row.x!s:>3} {Out[3]} {Out[4]}", ns)
    assert got == "{{lit}}  'a = 1' and {row.x!s:>3} out 3 {{x}}"  # conversion and spec applied, braces escaped
    assert got.format(row=type("Row", (), {"x": 7})) == "{lit}  'a = 1' and   7 out 3 {x}"
    assert resolve_refs("{Out[3]} {q}", ns) == "out 3 {q}"  # a field without conversion or spec stays as written


def test_in_references_read_the_raw_cell_source_from_the_shell():
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_cell("%%capture\nx = 2", store_history=True)
    n = ip.execution_count - 1
    assert resolve_refs("{In[%d]}" % n, ip.user_ns, ip) == "%%capture\nx = 2"  # not the transformed Python
    assert resolve_refs("{In[%d]}" % n, ip.user_ns) == "get_ipython().run_cell_magic('capture', '', 'x = 2\\n')"


@pytest.mark.parametrize("chars, typical, worst", [(0, 1, 8), (1, 1, 9), (135, 34, 53), (136, 34, 54)])
def test_token_estimates_without_a_tokenizer_are_4_chars_typical_3_worst_plus_overhead(chars, typical, worst):
    text = "x" * chars  # no model: the character rule, never a tokenizer
    assert pricing.estimate_tokens(text) == typical  # ceil(chars / 4), at least 1
    assert pricing.estimate_tokens(text, worst=True) == worst  # ceil(chars / 3) + 8 for the message
    assert isinstance(pricing.estimate_tokens(text, worst=True), int)


def test_a_partial_price_override_keeps_the_rest_of_the_known_prices():
    base = pricing.token_prices("gpt-4o-mini")
    p = pricing.token_prices("gpt-4o-mini", {"gpt-4o-mini": {"output": 9.0}})
    assert (p.input, p.output, p.cached_input, p.source) == (base.input, 9.0, base.cached_input, "override")
    own = pricing.token_prices("my-model", {"my-model": {"input": 3.0}})  # unknown model: cached = input, output 0
    assert (own.input, own.output, own.cached_input, own.source) == (3.0, 0.0, 3.0, "override")
    assert pricing.token_prices("my-model", {"my-model": {"output": 4.0}}).input == 0.0
    kept = pricing.token_prices("gpt-4o-mini", {"gpt-4o-mini": {"input": 0.5}})  # the known output price stays
    assert (kept.input, kept.output, kept.cached_input) == (0.5, base.output, base.cached_input)
    assert base.output > 0


def test_token_cost_is_exact_per_million_with_cached_input_at_its_own_price():
    ov = {"m": {"input": 2.0, "output": 8.0, "cached_input": 0.5}}
    usage = Usage(3_000_000, 1_000_000, cached_input_tokens=2_000_000)
    assert pricing.token_cost("m", usage, ov) == (2.0 + 1.0 + 8.0, False)  # 1M fresh, 2M cached, 1M out
