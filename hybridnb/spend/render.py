"""Every view of spend as text: one money formatter, one Markdown rule, four formats.

:func:`money` is the only place a dollar amount becomes text (the JupyterLab
extension and the widget receive these strings; they never format money).

The Markdown rule (MathJax-safe, see FACTS.md): in JupyterLab ``\\$`` alone is
not enough, two dollars in one run of text may pair as LaTeX.  So in Markdown
every amount, and any other ``$``, sits inside a code span (`` `$0.0042` ``),
which no renderer typesets; in HTML every amount is a ``<code>`` element, which
MathJax skips.  :func:`md` applies the rule to any text; nothing else escapes.

A report is anything with the :class:`~hybridnb.spend.report.SpendReport`
attributes (``rows``, ``totals``, ``budget``, ``scope``, ``advice``, ``note``).
"""

from __future__ import annotations

import html as _html
import math
import re
import time
from typing import Any

# ------------------------------------------------------------------ numbers


def money(x: float | None) -> str:
    """Dollars with enough digits for sub-cent calls: ``$0.000042``, ``$0.0027``, ``$0.0420``, ``$4.20``, ``$1,234.00``."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    a = abs(x)
    if a == 0:
        return "$0.00"
    digits = 2 if a >= 1 else 4 if a >= 0.01 else 6
    text = f"{a:,.{digits}f}"
    if digits == 6:  # $0.0027, $0.000042: at least 4 decimals, no padding zeros
        text = text[:-2] + text[-2:].rstrip("0")
    return ("-" if x < 0 else "") + "$" + text


def pct(x: float | None) -> str:
    """``42%`` (``–`` when unknown)."""
    return "–" if x is None else f"{x:.0%}"


def count(n: float | None) -> str:
    return "–" if n is None else f"{int(n):,}"


def hours(x: float | None) -> str:
    return "–" if not x else f"{x:.4f}"


def utilisation(busy_s: float | None, held_s: float | None) -> float | None:
    """Busy / held compute time — the one definition (None when nothing was held: a token API)."""
    return (busy_s or 0.0) / held_s if held_s else None


# ----------------------------------------------------------- the Markdown rule

_DOLLARS = re.compile(r"-?\$\s?\d[\d,]*(?:\.\d+)?[KMB]?|\$+")


def md(text: Any) -> str:
    """Text safe in Markdown: ``\\``, ``|`` escaped, one line, every ``$`` inside a code span."""
    s = ("" if text is None else str(text)).replace("\n", " ").replace("`", "'")
    s = s.replace("\\", "\\\\").replace("|", "\\|")
    return _DOLLARS.sub(lambda m: f"`{m.group(0)}`", s)


def html_text(text: Any) -> str:
    """Text safe in HTML: escaped, every amount in its own ``<code>`` element."""
    return _DOLLARS.sub(lambda m: f"<code>{m.group(0)}</code>", _html.escape("" if text is None else str(text)))


# ------------------------------------------------------------ shared pieces

HEADER = ("route", "backend", "model", "calls", "cache hits", "input tok", "output tok",
          "cost", "saved by cache", "GPU-hours", "utilisation")


def _model(r: dict) -> str:
    m = str(r.get("model") or "")
    if r.get("simulated"):
        ref = r.get("reference_model")
        return m + (f" (offline stand-in for {ref})" if ref else " (simulated)")
    return m + (" (unpriced)" if r.get("unpriced") else "")


def cells(r: dict) -> list[str]:
    """One row (or the totals) as the strings every table shows, in :data:`HEADER` order."""
    return [str(r.get("route") or ""), str(r.get("backend") or ""), _model(r),
            count(r.get("calls")), count(r.get("cache_hits")), count(r.get("input_tokens")),
            count(r.get("output_tokens")), money(r.get("cost_usd")), money(r.get("saved_usd")),
            hours(r.get("gpu_hours")), pct(r.get("utilisation"))]


def total_cells(rep) -> list[str]:
    return ["total", "", "", *cells(rep.totals)[3:]]


def budget_line(b) -> str:
    """``session budget: $0.0012 of $10.00 spent (0%), $9.9988 left`` — always naming the basis."""
    if b is None or b.limit_usd is None:
        return "no budget set"
    return (f"{b.label}: {money(b.spent_usd)} of {money(b.limit_usd)} spent ({pct(b.fraction)}), "
            f"{money(b.remaining_usd)} left")


def totals_line(rep) -> str:
    """One line: scope, spend, calls, cache hits and savings, compute."""
    t = rep.totals
    parts = [f"{rep.scope.label}: {money(t['cost_usd'])} over {t['calls']:,} calls",
             f"{t['cache_hits']:,} cache hits saved {money(t['saved_usd'])}"]
    if t.get("gpu_hours"):
        parts.append(f"{t['gpu_hours']:.4f} GPU-hours at {pct(t.get('utilisation'))} utilisation")
    if t.get("unsettled"):  # written when sent, never settled (a killed kernel): cost unknown
        parts.append(f"{t['unsettled']:,} unsettled (cost unknown)")
    if t.get("maybe_billed"):  # timeouts, cut-off replies: the provider may have charged
        parts.append(f"{t['maybe_billed']:,} attempts may have been billed without an answer")
    return " · ".join(parts)


def _advice_text(a: Any) -> tuple[str, str]:
    if isinstance(a, dict):
        return str(a.get("title") or a.get("kind") or ""), str(a.get("message") or "")
    return "", str(a)


def _stamp(rep) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(rep.generated_at))


# ------------------------------------------------------------------ formats


def to_markdown(rep) -> str:
    """The report as a Markdown cell (the exported cell and ``GET /hybridnb/summary.md``)."""
    lines = [f"### hybridnb cost summary — {md(rep.scope.label)}", "",
             f"_Generated {_stamp(rep)} from the ledger at {md(rep.home)}._", ""]
    if not rep.rows:
        lines += ["No model calls recorded yet.", ""]
    else:
        lines.append("| " + " | ".join(HEADER) + " |")
        lines.append("|" + "|".join(["---"] * 3 + ["--:"] * (len(HEADER) - 3)) + "|")
        for r in rep.rows:
            lines.append("| " + " | ".join(md(c) for c in cells(r)) + " |")
        tot = ["**total**", "", "", *(md(c) for c in cells(rep.totals)[3:])]
        lines += ["| " + " | ".join(tot) + " |", ""]
    lines += [f"**Budget** — {md(budget_line(rep.budget))}", ""]
    if rep.advice:
        lines += ["**Advice in force**", ""]
        for a in rep.advice:
            title, message = _advice_text(a)
            lines.append(f"- **{md(title)}** — {md(message)}" if title else f"- {md(message)}")
    else:
        lines.append("No advice in force.")
    if rep.note:
        lines += ["", f"_Note: {md(rep.note)}_"]
    return "\n".join(lines) + "\n"


def to_html(rep) -> str:
    """The report as a small self-contained HTML fragment."""
    e = html_text
    head = "".join(f"<th>{e(h)}</th>" for h in HEADER)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells(r)) + "</tr>" for r in rep.rows)
    body += "<tr>" + "".join(f"<td><b>{e(c)}</b></td>" for c in total_cells(rep)) + "</tr>"
    items = "".join(f"<li><b>{e(t)}</b> — {e(m)}</li>" for t, m in map(_advice_text, rep.advice))
    return (
        f'<div class="hybridnb-report"><h3>hybridnb cost summary — {e(rep.scope.label)}</h3>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        f'<p class="hybridnb-budget"><b>Budget</b> — {e(budget_line(rep.budget))}</p>'
        + (f"<p><b>Advice in force</b></p><ul>{items}</ul>" if items else "<p>No advice in force.</p>")
        + (f"<p><i>Note: {e(rep.note)}</i></p>" if rep.note else "")
        + "</div>"
    )


def to_text(rep) -> str:
    """Plain text: a fixed-width table, the totals line and the budget line."""
    table = [list(HEADER)] + [cells(r) for r in rep.rows] + [total_cells(rep)]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    out = [f"hybridnb cost summary — {rep.scope.label}"]
    out += ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
            for row in table]
    out += [totals_line(rep), f"Budget — {budget_line(rep.budget)}"]
    out += [f"Advice: {t}: {m}" if t else f"Advice: {m}" for t, m in map(_advice_text, rep.advice)]
    if rep.note:
        out.append(f"Note: {rep.note}")
    return "\n".join(out)


def display_strings(rep) -> dict[str, Any]:
    """The strings a front end shows (the extension and the widget never format money)."""
    t = rep.totals
    return {
        "scope": rep.scope.label,
        "cost": money(t["cost_usd"]),
        "saved": money(t["saved_usd"]),
        "calls": count(t["calls"]),
        "cache_hits": count(t["cache_hits"]),
        "utilisation": pct(t.get("utilisation")),
        "gpu_hours": hours(t.get("gpu_hours")),
        "budget": budget_line(rep.budget),
        "totals_line": totals_line(rep),
        "header": list(HEADER),
        "rows": [cells(r) for r in rep.rows],
        "total_row": total_cells(rep),
    }


def footer(rep) -> str:
    """A cell's bill in one line (the footer under a batch): calls, tokens, cost, cache, compute."""
    t = rep.totals
    parts = [f"{t['calls']:,} calls", f"{t['input_tokens']:,} in / {t['output_tokens']:,} out tokens",
             money(t["cost_usd"])]
    if t["cache_hits"]:
        parts.append(f"{t['cache_hits']:,} cached (saved {money(t['saved_usd'])})")
    if t.get("gpu_hours"):
        parts.append(f"{t['gpu_hours']:.4f} GPU-h")
    if t.get("errors"):
        parts.append(f"{t['errors']:,} errors")
    return "hybridnb cell: " + " · ".join(parts)
