"""Where cell references read their history from (survivors of `bash scripts/mutation.sh pure`, issue 17):
the shell's raw input history when it has one, the namespace's ``In`` otherwise, and the running cell
counted as 0 when there is no input history at all."""

from types import SimpleNamespace

import pytest

from hybridnb.core.template import render
from hybridnb.errors import TemplateError

NS = {"In": ["", "a = 1", "b = 2"], "Out": {1: "one"}}


def test_a_shell_without_a_history_manager_falls_back_to_the_namespace():
    assert render("{In[1]} {In[-1]}", NS, SimpleNamespace()) == "a = 1 a = 1"


def test_a_history_manager_without_raw_input_falls_back_to_the_namespace():
    shell = SimpleNamespace(history_manager=SimpleNamespace())
    assert render("{In[2]}", NS, shell) == "b = 2"


def test_an_empty_raw_input_history_falls_back_to_the_namespace():
    shell = SimpleNamespace(history_manager=SimpleNamespace(input_hist_raw=[]))
    assert render("{In[2]}", NS, shell) == "b = 2"


def test_a_raw_input_history_wins_over_the_namespace():
    shell = SimpleNamespace(history_manager=SimpleNamespace(input_hist_raw=["", "%%local\nraw", "now"]))
    assert render("{In[1]}", NS, shell) == "%%local\nraw"


@pytest.mark.parametrize("ns, message", [
    ({"Out": {1: "one"}}, "{Out[-1]} does not exist: a cell before the first (-1) returned no value (Out has cells 1)"),
    ({"In": [""], "Out": {}}, "{Out[-1]} does not exist: a cell before the first (-1) returned no value "
                              "(no cell has a result yet)"),
])
def test_without_input_history_the_running_cell_is_cell_0(ns, message):
    with pytest.raises(TemplateError) as e:
        render("{Out[-1]}", ns)
    assert str(e.value) == message


def test_field_names_are_the_roots_of_each_field_once_in_order_without_cell_references():
    from hybridnb.core.template import field_names

    got = field_names("{In[1]} {row.text} {d[0][1]} {a.b.c} {d} {Out[-1]} {row} {e[k].x}")
    assert got == ["row", "d", "a", "e"]


@pytest.mark.parametrize("template", ["{}", "a {0} b", "{1}"])
def test_an_empty_or_positional_field_gets_one_clear_error(template):
    with pytest.raises(TemplateError) as e:
        render(template, {"x": 1})
    assert str(e.value) == "empty {} in the prompt: name a variable, or write {{ }} for a literal brace"


@pytest.mark.parametrize("template, ns, message", [
    ("{b} and {a}", {"a": 1},
     "{b} is not defined: set a variable named 'b' first (or write {{ }} for literal braces)"),
    ("{b} and {a}", {},  # the first missing name is the one named
     "{b} is not defined: set a variable named 'b' first (or write {{ }} for literal braces)"),
    ("{a", {"a": 1}, "malformed template (expected '}' before end of string); write {{ and }} for literal braces"),
    ("a}", {}, "malformed template (Single '}' encountered in format string); write {{ and }} for literal braces"),
    ("{x.y}", {"x": 1}, "cannot fill the prompt: AttributeError: 'int' object has no attribute 'y'"),
    ("{x[3]}", {"x": [1]}, "cannot fill the prompt: IndexError: list index out of range"),
])
def test_a_template_that_cannot_be_filled_says_why(template, ns, message):
    with pytest.raises(TemplateError) as e:
        render(template, ns)
    assert str(e.value) == message
