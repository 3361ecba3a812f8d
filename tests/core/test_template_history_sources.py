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
