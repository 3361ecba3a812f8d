"""``--choices`` / ``json_schema`` parsing, value by value (tests written from surviving mutants, issue 17)."""

import json
import math

import pytest

from hybridnb.core.constraints import (chat_messages, check_choices, combine_orders, load_schema, option_orders,
                                      options_line, with_options)
from hybridnb.errors import HybridnbError


@pytest.mark.parametrize("given, labels", [
    (None, None),
    ("risk,cost,other", ["risk", "cost", "other"]),
    (" risk , cost ,, other ", ["risk", "cost", "other"]),  # spaces and empty items dropped
    ('"Risk and security,Cost"', ["Risk and security", "Cost"]),  # a magic keeps the quotes
    ("'a,b'", ["a", "b"]),
    ('"a,b\'', ['"a', "b'"]),  # unmatched quotes are part of the labels
    ("Xa,bX", ["Xa", "bX"]),  # only quotes are stripped
    (["yes", " no ", 3], ["yes", "no", "3"]),
    (("x", "", "y"), ["x", "y"]),
])
def test_choices_parse_to_exactly_these_labels(given, labels):
    assert check_choices(given) == labels


@pytest.mark.parametrize("given, message", [
    ("only", "at least two labels"), ("a,,", "at least two labels"), ('""', "at least two labels"),
    (["a", "a "], "duplicate labels"), ("x,y,x", "duplicate labels"),
])
def test_too_few_or_duplicate_labels_are_one_clear_error(given, message):
    with pytest.raises(HybridnbError) as e:
        check_choices(given)
    assert str(e.value) == f"choices {'needs' if 'two' in message else 'has'} {message}"


def test_a_schema_inline_is_a_copy_and_a_file_is_read(tmp_path):
    inline = {"type": "object"}
    got = load_schema(inline)
    assert got == inline and got is not inline
    assert load_schema(None) is None
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"type": "object", "properties": {"a": {"type": "string"}}}), encoding="utf-8")
    assert load_schema(str(f)) == {"type": "object", "properties": {"a": {"type": "string"}}}
    assert load_schema(f) == load_schema(str(f))


def test_a_schema_path_may_start_with_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "s.json").write_text('{"type": "object"}', encoding="utf-8")
    assert load_schema("~/s.json") == {"type": "object"}


def test_a_bad_schema_file_is_one_error_naming_the_file(tmp_path):
    missing = tmp_path / "none.json"
    with pytest.raises(HybridnbError) as e:
        load_schema(missing)
    assert str(e.value) == f"json_schema: cannot read {missing}: No such file or directory"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(HybridnbError) as e:
        load_schema(bad)
    assert str(e.value).startswith(f"json_schema: {bad} is not valid JSON: Expecting property name")
    arr = tmp_path / "arr.json"
    arr.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(HybridnbError) as e:
        load_schema(arr)
    assert str(e.value) == f"json_schema: {arr} must hold a JSON object"


def test_calibration_divides_by_the_content_free_likelihoods_per_order():
    lps = {"a": math.log(0.6), "b": math.log(0.2)}
    null = {"a": math.log(0.5), "b": math.log(0.25)}
    # calibrated: 0.6/0.5 = 1.2 against 0.2/0.25 = 0.8, normalised to 0.6 / 0.4
    assert combine_orders([lps], [null]) == pytest.approx({"a": 0.6, "b": 0.4})
    assert combine_orders([lps]) == pytest.approx({"a": 0.75, "b": 0.25})  # no calibration given
    # a label the content-free prompt did not score is left as it is: 0.6/0.5 = 1.2 against 0.2
    assert combine_orders([lps], [{"a": math.log(0.5)}]) == pytest.approx({"a": 1.2 / 1.4, "b": 0.2 / 1.4})


def test_orders_are_averaged_as_a_geometric_mean_after_each_is_normalised():
    first = {"a": math.log(0.3), "b": math.log(0.1)}  # 0.75 / 0.25 once normalised
    second = {"a": math.log(0.05), "b": math.log(0.45)}  # 0.1 / 0.9
    ga, gb = math.sqrt(0.75 * 0.1), math.sqrt(0.25 * 0.9)
    assert combine_orders([first, second]) == pytest.approx({"a": ga / (ga + gb), "b": gb / (ga + gb)})
    # a label impossible under one order is impossible overall
    got = combine_orders([first, {"a": float("-inf"), "b": math.log(0.5)}])
    assert got == pytest.approx({"a": 0.0, "b": 1.0})


def test_an_order_that_rules_out_every_label_leaves_them_equally_likely():
    none_possible = {"a": float("-inf"), "b": float("-inf"), "c": float("-inf")}
    assert combine_orders([none_possible]) == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})


def test_the_options_are_stated_in_one_exact_sentence_before_the_prompt():
    assert options_line(["Risk", "Cost", "Other"]) == "Answer with exactly one of: Risk, Cost, Other."
    assert with_options("Review: fine.", ("pos", "neg")) == "Answer with exactly one of: pos, neg.\n\nReview: fine."
    assert with_options("Review: fine.", None) == "Review: fine."
    assert with_options("Review: fine.", ()) == "Review: fine."


@pytest.mark.parametrize("system, choices, messages", [
    (None, None, [{"role": "user", "content": "q"}]),
    ("be terse", None, [{"role": "system", "content": "be terse"}, {"role": "user", "content": "q"}]),
    (None, ["a", "b"], [{"role": "system", "content": "Answer with exactly one of: a, b."},
                        {"role": "user", "content": "q"}]),
    ("be terse", ["a", "b"], [{"role": "system", "content": "be terse\n\nAnswer with exactly one of: a, b."},
                              {"role": "user", "content": "q"}]),
    ("", [], [{"role": "user", "content": "q"}]),
])
def test_chat_messages_put_the_options_after_the_callers_system_text(system, choices, messages):
    assert chat_messages("q", choices, system) == messages


@pytest.mark.parametrize("k, starts", [(1, [0]), (2, [0, 1]), (3, [0, 1, 2]), (4, [0, 1, 2, 3]),
                                       (5, [0, 1, 2, 4]), (8, [0, 2, 4, 6]), (10, [0, 2, 5, 8])])
def test_option_orders_are_at_most_four_evenly_spaced_rotations_given_order_first(k, starts):
    opts = [f"o{i}" for i in range(k)]
    assert option_orders(opts) == [tuple(opts[s:] + opts[:s]) for s in starts]
