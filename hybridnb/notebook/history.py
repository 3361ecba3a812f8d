"""``Err``: the error each cell raised, by execution count (beside IPython's ``In`` and ``Out``)."""

from __future__ import annotations

import traceback
from typing import Any

#: characters of a traceback kept per cell (the end: where the error is)
MAX_CHARS = 4000


def _record(shell: Any, result: Any) -> None:
    err = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
    count = getattr(result, "execution_count", None)
    if err is None or count is None:
        return
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None and "IPython" in tb.tb_frame.f_code.co_filename:
        tb = tb.tb_next  # start at the user's cell, not IPython's run_code
    text = "".join(traceback.format_exception(type(err), err, tb)).strip()
    if len(text) > MAX_CHARS:
        text = "…" + text[-MAX_CHARS:]
    errs = shell.user_ns.get("Err")
    if not isinstance(errs, dict):
        errs = shell.user_ns["Err"] = {}
    errs[count] = text


def track_errors(shell: Any) -> None:
    """Keep ``Err[n]`` in the user namespace from now on (once per shell; never replaces the handler)."""
    if shell is None or getattr(shell, "_hybridnb_err_hook", None) is not None:
        return
    errs = shell.user_ns.setdefault("Err", {})
    shell.user_ns_hidden["Err"] = errs  # like In and Out: not listed by %who
    hook = lambda result: _record(shell, result)  # noqa: E731
    shell.events.register("post_run_cell", hook)
    shell._hybridnb_err_hook = hook


def remember_output(shell: Any, route: str, value: Any) -> None:
    """Put an answer in ``Out[n]`` of its own cell (it is displayed, not returned), so ``{Out[n]}`` cites it."""
    hist = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None)
    out = shell.user_ns.get("Out") if shell is not None else None
    if not hist or not isinstance(out, dict):
        return
    if hist[-1].lstrip().startswith(f"%%{route}"):  # the running cell is this magic's cell
        out[len(hist) - 1] = value
