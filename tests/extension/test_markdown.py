"""The exportable Markdown summary never lets JupyterLab typeset dollars as LaTeX.

JupyterLab drops the backslash of ``\\$`` before MathJax runs, so two dollars
in one text run pair up (jupyterlab/jupyterlab#8645; the browser test saw it).
The rule checked here: outside code spans there is no bare ``$``, and no text
run (a table cell, or a line of prose) holds more than one ``$``.
"""

from __future__ import annotations

import re

from hybridnb.notebook.server._markdown import prose, render, usd

def _state(**kw):
    row = {"route": "reason", "backend": "openai", "model": "gpt-5", "calls": 3, "cache_hits": 1,
           "tokens": 900, "cost_usd": 0.0123, "saved_usd": 0.004, "gpu_hours": 0.0, "utilisation": None}
    state = {"home": "/h", "generated_at": 0, "current": None, "totals": dict(row), "by_model": [row],
             "budget": {"state": "warn", "limit_usd": 0.015, "spent_usd": 0.0123,
                        "remaining_usd": 0.0027, "fraction": 0.82}, "advice": [], "note": ""}
    state.update(kw)
    return state


def test_amounts_stand_alone(assert_no_latex):
    md = render(_state(advice=[{"kind": "move_the_work", "title": "Move the work",
                                "message": "spent $1.20 on reason; $0.02 on local, break-even at 500 rows"}],
                       note="cost $3 vs $4"))
    assert_no_latex(md)
    assert "`$1.20`" in md and "`$0.02`" in md
    assert "| \\$0.0150 | \\$0.0123 | \\$0.0027 | 82% | warn |" in md
    assert "| **total** |" in md


def test_prose_escapes_what_is_not_an_amount(assert_no_latex):
    assert prose("costs $x and $5") == "costs `$`x and `$5`"
    assert prose("already `$9` here") == "already `$9` here"
    assert_no_latex(prose("a $1 b $2 c $ d $$"))


def test_usd_digits():
    assert [usd(x) for x in (0.002, 0.0000123, 0.0, 1.5, 1234.5)] == [
        "\\$0.0020", "\\$0.000012", "\\$0.0000", "\\$1.5000", "\\$1,234.50"]


def test_no_budget_and_no_calls(assert_no_latex):
    md = render(_state(by_model=[], budget={"state": "none", "spent_usd": 0.0}))
    assert "No model calls recorded yet." in md and "No budget set." in md
    assert_no_latex(md)
