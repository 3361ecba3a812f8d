"""The exported Markdown never lets JupyterLab typeset dollars as LaTeX (one rule: render.md).

JupyterLab drops the backslash of ``\\$`` before MathJax runs, so two dollars
in one text run pair up (jupyterlab/jupyterlab#8645; the browser test saw it).
The rule: every ``$`` sits inside a code span; outside code spans there is none.
"""

from __future__ import annotations

from hybridnb.spend import render
from hybridnb.spend.report import Budget, Scope, SpendReport


def _report(rows=None, budget=None, advice=(), note=""):
    row = {"route": "reason", "backend": "openai", "model": "gpt-5", "calls": 3, "cache_hits": 1,
           "errors": 0, "input_tokens": 600, "output_tokens": 300, "cost_usd": 0.0123,
           "saved_usd": 0.004, "gpu_hours": 0.0, "held_s": 0.0, "busy_s": 0.0, "utilisation": None}
    return SpendReport(Scope("notebook", notebook="/w/nb.ipynb"), "/h", [row] if rows is None else rows,
                       budget or Budget(0.015, "session", spent_usd=0.0123), list(advice), note, 0.0)


def test_amounts_stand_alone(assert_no_latex):
    md = render.to_markdown(_report(
        advice=[{"kind": "move_the_work", "title": "Move the work",
                 "message": "spent $1.20 on reason; $0.02 on local, break-even at 500 rows"}],
        note="cost $3 vs $4"))
    assert_no_latex(md)
    assert "`$1.20`" in md and "`$0.02`" in md and "`$0.0123`" in md
    assert "session budget: `$0.0123` of `$0.0150` spent (82%), `$0.0027` left" in md
    assert "| **total** |" in md and "this notebook (nb.ipynb)" in md


def test_md_escapes_what_is_not_an_amount(assert_no_latex):
    assert render.md("costs $x and $5") == "costs `$`x and `$5`"
    assert render.md("a | b") == "a \\| b"
    assert_no_latex(render.md("a $1 b $2 c $ d $$"))


def test_no_budget_and_no_calls(assert_no_latex):
    md = render.to_markdown(_report(rows=[], budget=Budget(None)))
    assert "No model calls recorded yet." in md and "no budget set" in md
    assert_no_latex(md)
