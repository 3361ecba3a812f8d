"""The exportable Markdown cost summary the "Insert cost summary" command inserts.

Dollars must not render as LaTeX.  ``\\$`` alone is not enough in JupyterLab:
the Markdown renderer drops the backslash and MathJax then pairs any two ``$``
in one text run (jupyterlab/jupyterlab#8645).  So every amount stands alone in
a table cell as ``\\$``, and amounts inside free text (advice, notes) become
code spans (`` `$1.20` ``), which no renderer typesets.  ``|`` inside cells is
escaped so a model name cannot break the table.
"""

from __future__ import annotations

import re
import time
from typing import Any


def esc(text: Any) -> str:
    """Escape text for a Markdown table cell (``$`` → ``\\$``, ``|`` → ``\\|``)."""
    s = "" if text is None else str(text)
    return s.replace("\\", "\\\\").replace("$", "\\$").replace("|", "\\|").replace("\n", " ")


def usd(v: float | None) -> str:
    """Dollars with enough digits for sub-cent calls, already escaped: ``\\$0.0042``."""
    if v is None:
        return "–"
    digits = 2 if abs(v) >= 100 else 4 if abs(v) >= 0.01 or v == 0 else 6
    text = f"{v:,.{digits}f}"
    if digits == 6:  # \$0.0020 and \$0.000012: at least 4 decimals, no padding zeros
        text = text[:-2] + text[-2:].rstrip("0")
    return f"\\${text}"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.0f}%"


_HEAD = ("| route | backend | model | calls | cache hits | tokens | cost | saved by cache "
         "| GPU-hours | utilisation |\n|---|---|---|--:|--:|--:|--:|--:|--:|--:|")


def _row(r: dict[str, Any], label: tuple[str, str, str]) -> str:
    cells = [*label, f"{r.get('calls', 0):,}", f"{r.get('cache_hits', 0):,}",
             f"{r.get('tokens', 0):,}", usd(r.get("cost_usd")), usd(r.get("saved_usd")),
             f"{r.get('gpu_hours', 0):.3f}", _pct(r.get("utilisation"))]
    return "| " + " | ".join(cells) + " |"


_AMOUNT = re.compile(r"-?\$\s?\d[\d,]*(?:\.\d+)?[KMB]?")
_DOLLARS = re.compile(_AMOUNT.pattern + r"|\$+")
_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")


def prose(text: Any) -> str:
    """Free text for Markdown: amounts (and any other ``$``) as code spans."""
    s = ("" if text is None else str(text)).replace("\n", " ")

    def plain(part: str) -> str:  # every amount, and any other run of $, as a code span
        return _DOLLARS.sub(lambda m: f"`{m.group(0)}`", part)

    out, pos = [], 0
    for m in _CODE.finditer(s):  # leave existing code spans alone
        out += [plain(s[pos:m.start()]), m.group(0)]
        pos = m.end()
    out.append(plain(s[pos:]))
    return "".join(out)


def _code(text: Any) -> str:
    """A code span (literal everywhere, never LaTeX)."""
    return "`" + str(text).replace("`", "'").replace("\n", " ") + "`"


def _advice_line(item: Any) -> str:
    if isinstance(item, dict):
        text = item.get("message") or item.get("text") or item.get("title") or item.get("kind")
        kind = item.get("title") or item.get("kind") or item.get("type")
        if kind and text and text != kind:
            return f"- **{prose(kind)}**: {prose(text)}"
        return f"- {prose(text or item)}"
    return f"- {prose(item)}"


def _budget_table(b: dict[str, Any]) -> list[str]:
    if not b or b.get("state") == "none":
        return ["No budget set."]
    return ["| budget | spent | left | used | state |", "|--:|--:|--:|--:|---|",
            f"| {usd(b['limit_usd'])} | {usd(b['spent_usd'])} | {usd(b['remaining_usd'])} "
            f"| {_pct(b['fraction'])} | {esc(b['state'])} |"]


def render(state: dict[str, Any], now: float | None = None) -> str:
    """Markdown for the current notebook's scope if the state has one, else for all kernels."""
    cur = state.get("current")
    scope = cur if cur else state.get("totals") or {}
    rows = (cur or {}).get("by_model") if cur else state.get("by_model")
    if cur:
        who = cur.get("notebook") or cur.get("kernel") or cur.get("session") or "this notebook"
        title = f"this notebook ({_code(who)})"
    else:
        title = "all kernels"
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(now or state.get("generated_at") or time.time()))
    lines = [f"### hybridnb cost summary — {title}", "",
             f"_Generated {stamp} from the ledger at {_code(state.get('home', ''))}._", ""]
    if not rows:
        lines += ["No model calls recorded yet.", ""]
    else:
        lines.append(_HEAD)
        lines += [_row(r, (esc(r.get("route")), esc(r.get("backend")), esc(r.get("model"))))
                  for r in rows]
        lines += [_row(scope, ("**total**", "", "")), ""]
    lines += _budget_table(state.get("budget") or {})
    advice = state.get("advice") or []
    if advice:
        lines += ["", "**Advice in force:**", "", *(_advice_line(a) for a in advice)]
    if state.get("note"):
        lines += ["", f"_Note: {prose(state['note'])}_"]
    return "\n".join(lines) + "\n"
