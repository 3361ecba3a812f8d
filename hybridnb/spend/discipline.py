"""The workflow-discipline report: where the bill comes from, habit by habit.

``hybridnb.discipline(by="notebook")`` (polars; also ``cell``, ``template``,
``user``) — one row per group with:

* **reasoning share** — ``reason_call_share`` / ``reason_usd_share`` of calls and $;
* **looks local** — reasoning calls of templates that behave like local work
  (≥ ``min_calls`` rows, a closed set of ≤ ``max_answers`` distinct answers that
  repeat, short outputs), with the break-even the advice computes
  (:func:`hybridnb.spend.advice.breakeven_rows`) in ``detail="looks_local"``;
* **iteration** — template versions per cell (an edited prompt re-run in the same
  cell is a new version) and $ per version; ``detail="iterations"`` lists them;
* **local vs external** — ``local_usd`` / ``reason_usd``, auto rows and escalations;
* **rework** — billed exact repeats (re-runs that missed the cache), billed
  near-duplicates (same normalised prompt), and what the cache saved.

``discipline(compare=["a.ipynb", "b.ipynb"])`` puts two notebooks (or two users)
side by side, one metric a row.  Everything is one DuckDB pass over the ledger.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from ..errors import HybridnbError
from .advice import Thresholds, breakeven_rows

GROUPS = {"notebook": "notebook", "cell": "notebook || ' · ' || cell", "template": "template", "user": "\"user\""}
DETAILS = ("groups", "looks_local", "iterations", "chart")

_ROWS_SQL = """
CREATE TEMP TABLE d AS
WITH l AS (
  SELECT {grp} AS grp, notebook, cell, template, route, model, status, kind, cost_usd, saved_usd, output_tokens,
         similarity, via, escalated, ts,
         CASE WHEN answer_hash <> '' THEN hash(answer_hash) END                          AS ah,
         CASE WHEN prompt_hash <> '' AND kind = 'call' THEN hash(route, model, prompt_hash) END AS ph,
         CASE WHEN prompt_norm <> '' AND kind = 'call' THEN hash(route, model, prompt_norm) END AS pn
  FROM ledger WHERE route IS NOT NULL {where}),
fe AS (SELECT ph, min(ts) AS first_exact FROM l WHERE status = 'ok' AND ph IS NOT NULL GROUP BY ph),
fn AS (SELECT pn, min(ts) AS first_near FROM l WHERE status = 'ok' AND pn IS NOT NULL GROUP BY pn)
SELECT l.* EXCLUDE (pn),
       coalesce(status = 'ok' AND ts > first_exact, false)                     AS exact_rep,  -- billed again
       coalesce(status = 'ok' AND ts = first_exact AND ts > first_near, false) AS near_rep    -- reworded
FROM l LEFT JOIN fe USING (ph) LEFT JOIN fn USING (pn)
"""

_TEMPLATES_SQL = """
SELECT template, count(*) AS calls, sum(cost_usd) AS cost_usd, count(DISTINCT ah) AS answers,
       count(DISTINCT ph) AS prompts, avg(output_tokens) AS output_tokens
FROM d WHERE route = 'reason' AND status = 'ok' AND template <> '' GROUP BY template
"""

_LOCAL_ROW_SQL = "SELECT count(*), coalesce(sum(cost_usd), 0) FROM d WHERE route = 'local' AND status <> 'cached'"

_GROUP_SQL = """
SELECT grp AS {by},
  count(*) FILTER (status <> 'cached' AND kind = 'call')                      AS calls,
  count(*) FILTER (status <> 'cached' AND kind = 'call' AND route = 'reason') AS reason_calls,
  coalesce(sum(cost_usd), 0)                                                  AS cost_usd,
  coalesce(sum(cost_usd) FILTER (route = 'reason'), 0)                        AS reason_usd,
  coalesce(sum(cost_usd) FILTER (route <> 'reason'), 0)                       AS local_usd,
  count(*) FILTER (looks_local)                                               AS looks_local_calls,
  coalesce(sum(cost_usd) FILTER (looks_local), 0)                             AS looks_local_usd,
  count(DISTINCT notebook || '\x1f' || cell) FILTER (kind = 'call')           AS cells,
  count(DISTINCT notebook || '\x1f' || cell || '\x1f' || template) FILTER (kind = 'call') AS versions,
  count(*) FILTER (exact_rep)                                                 AS billed_repeats,
  coalesce(sum(cost_usd) FILTER (exact_rep), 0)                               AS repeat_usd,
  count(*) FILTER (near_rep)                                                  AS near_repeats,
  coalesce(sum(cost_usd) FILTER (near_rep), 0)                                AS near_repeat_usd,
  count(*) FILTER (status = 'cached')                                         AS cache_hits,
  count(*) FILTER (similarity IS NOT NULL)                                    AS semantic_hits,
  coalesce(sum(saved_usd), 0)                                                 AS saved_usd,
  count(*) FILTER (via = 'auto' AND route = 'local' AND status <> 'cached')   AS auto_rows,
  count(*) FILTER (via = 'auto' AND escalated)                                AS escalated
FROM (SELECT d.*, route = 'reason' AND status = 'ok' AND template IN (SELECT template FROM ll) AS looks_local
      FROM d) x
GROUP BY grp
"""

_CATEGORY_SQL = """
SELECT grp AS {by}, CASE WHEN exact_rep OR near_rep THEN 'rework (billed repeats)'
                         WHEN looks_local THEN 'reasoning that looks local'
                         WHEN route = 'reason' THEN 'reasoning' ELSE 'local' END AS category,
       sum(cost_usd) AS usd
FROM (SELECT d.*, route = 'reason' AND status = 'ok' AND template IN (SELECT template FROM ll) AS looks_local
      FROM d) x
GROUP BY ALL HAVING sum(cost_usd) > 0
"""

_ITER_SQL = """
SELECT notebook, cell, template, min(ts) AS first_ts, count(*) FILTER (status <> 'cached') AS calls,
       coalesce(sum(cost_usd), 0) AS cost_usd
FROM d WHERE kind = 'call' GROUP BY ALL
"""


def _looks_local(con, t: Thresholds, min_calls: int, max_answers: int, max_output_tokens: float):
    """Templates on reason that look like local work, with their break-even (polars)."""
    import polars as pl

    rows, cost = con.sql(_LOCAL_ROW_SQL).fetchall()[0]
    local_row = cost / rows if rows and cost > 0 else t.local_usd_per_row
    tp = con.sql(_TEMPLATES_SQL).pl()
    flagged = tp.filter((pl.col("calls") >= min_calls) & (pl.col("answers") <= max_answers)
                        & (pl.col("answers") < pl.col("calls") * (1 - t.min_answer_repeat) + 1)
                        & (pl.col("output_tokens") <= max_output_tokens))
    be = [breakeven_rows(c / n, local_row, t.setup_usd) for c, n in zip(flagged["cost_usd"], flagged["calls"])]
    return flagged.with_columns(
        pl.Series("usd_per_row", [c / n for c, n in zip(flagged["cost_usd"], flagged["calls"])]),
        pl.lit(local_row).alias("local_usd_per_row"),
        pl.Series("breakeven_rows", [None if math.isinf(b) else math.ceil(b) for b in be], dtype=pl.Int64),
    ).sort("cost_usd", descending=True)


def discipline(by: str = "notebook", *, compare: Sequence[str] | None = None, where: str | None = None,
               detail: str = "groups", home=None, min_calls: int = 20, max_answers: int = 20,
               max_output_tokens: float = 16, thresholds: Thresholds | None = None):
    """The discipline report as polars (see the module docstring); ``detail`` picks
    ``groups`` (default), ``looks_local``, ``iterations`` or ``chart`` (its data)."""
    from ..config import get_settings
    from ..store.ledger import connect

    if by not in GROUPS:
        raise HybridnbError(f"discipline by {by!r}? choose one of: {', '.join(GROUPS)}")
    if detail not in DETAILS:
        raise HybridnbError(f"discipline detail {detail!r}? choose one of: {', '.join(DETAILS)}")
    con = connect(home if home is not None else get_settings().home)
    try:
        if compare:
            by, where = _compare_scope(con, compare, where)
        con.sql(_ROWS_SQL.format(grp=GROUPS[by], where=f"AND ({where})" if where else ""))
        ll = _looks_local(con, thresholds or Thresholds(), min_calls, max_answers, max_output_tokens)
        if detail == "looks_local":
            return ll
        con.register("ll_frame", ll.select("template").to_arrow())
        con.sql("CREATE TEMP TABLE ll AS SELECT template, true AS flag FROM ll_frame")
        if detail == "iterations":
            return _iterations(con)
        if detail == "chart":
            return con.sql(_CATEGORY_SQL.format(by=by)).pl().sort([by, "category"])
        table = _finish(con.sql(_GROUP_SQL.format(by=by)).pl(), by)
    finally:
        con.close()
    return _side_by_side(table, by, compare) if compare else table


def _finish(df, by: str):
    import polars as pl

    def share(a: str, b: str) -> pl.Expr:
        return pl.when(pl.col(b) > 0).then(pl.col(a) / pl.col(b)).otherwise(0.0)

    return df.with_columns(
        share("reason_calls", "calls").alias("reason_call_share"),
        share("reason_usd", "cost_usd").alias("reason_usd_share"),
        share("versions", "cells").alias("versions_per_cell"),
        share("cost_usd", "versions").alias("usd_per_version"),
        (pl.col("repeat_usd") + pl.col("near_repeat_usd")).alias("rework_usd"),
        share("escalated", "auto_rows").alias("escalation_rate"),
    ).sort("cost_usd", descending=True)


def _iterations(con):
    """One row per (notebook, cell, template version) in first-run order, with its $."""
    import polars as pl

    it = con.sql(_ITER_SQL).pl().sort(["notebook", "cell", "first_ts"])
    return it.with_columns(pl.int_range(1, pl.len() + 1).over(["notebook", "cell"]).alias("version"),
                           pl.len().over(["notebook", "cell"]).alias("versions"))


def _compare_scope(con, names: Sequence[str], where: str | None) -> tuple[str, str]:
    """(by, filter) for ``compare``: notebooks when every name matches one, else users."""
    if len(names) < 2:
        raise HybridnbError("compare needs two (or more) notebooks or users")
    quoted = ", ".join("'" + str(n).replace("'", "''") + "'" for n in names)
    notebooks = {r[0] for r in con.sql("SELECT DISTINCT notebook FROM ledger").fetchall() if r[0]}
    users = {r[0] for r in con.sql('SELECT DISTINCT "user" FROM ledger').fetchall() if r[0]}
    matched = {n: [nb for nb in notebooks if nb == n or nb.endswith("/" + n)] for n in names}
    if all(matched.values()):
        paths = ", ".join("'" + p.replace("'", "''") + "'" for ps in matched.values() for p in ps)
        scope = f"notebook IN ({paths})"
        by = "notebook"
    elif all(n in users for n in names):
        scope, by = f'"user" IN ({quoted})', "user"
    else:
        missing = [n for n in names if not matched[n] and n not in users]
        raise HybridnbError(f"compare: no ledger rows for {', '.join(missing)} (neither a notebook nor a user)")
    return by, scope + (f" AND ({where})" if where else "")


#: the metrics shown side by side, in order
COMPARE_METRICS = ("calls", "cost_usd", "reason_call_share", "reason_usd_share", "looks_local_calls",
                   "looks_local_usd", "versions_per_cell", "usd_per_version", "billed_repeats", "near_repeats",
                   "rework_usd", "cache_hits", "saved_usd", "local_usd", "reason_usd", "escalation_rate")


def _side_by_side(table, by: str, names: Sequence[str]):
    """One row per metric, one column per compared notebook/user (by its given name)."""
    import polars as pl

    base = [c for c in table.columns if c != by and c not in _DERIVED]
    cols: dict[str, Any] = {"metric": list(COMPARE_METRICS)}
    for n in names:
        rows = table.filter((pl.col(by) == n) | pl.col(by).str.ends_with("/" + n))
        summed = _finish(rows.select([pl.lit(str(n)).alias(by)] + [pl.col(c).sum() for c in base]), by)
        cols[str(n)] = [float(summed[m][0]) for m in COMPARE_METRICS]
    return pl.DataFrame(cols)


_DERIVED = ("reason_call_share", "reason_usd_share", "versions_per_cell", "usd_per_version", "rework_usd",
            "escalation_rate")


# ---- the notebook view --------------------------------------------------------
_SHOWN = (("calls", "calls", "n"), ("cost_usd", "cost", "usd"), ("reason_usd_share", "$ on reasoning", "pct"),
          ("looks_local_usd", "reasoning that looks local", "usd"), ("versions_per_cell", "versions / cell", "x"),
          ("usd_per_version", "$ / version", "usd"), ("rework_usd", "rework", "usd"),
          ("saved_usd", "saved by cache", "usd"), ("escalation_rate", "auto escalated", "pct"))


def _fmt(v: Any, kind: str) -> str:
    from .render import md, money

    if kind == "n":
        return f"{int(v):,}"
    if kind == "pct":
        return f"{v:.0%}"
    if kind == "x":
        return f"{v:.1f}"
    return md(money(v))  # the project's Markdown rule: every amount in a code span


def to_markdown(table, by: str, limit: int = 15) -> str:
    """A compact Markdown table (each amount in a code span, safe from MathJax)."""
    from .render import md

    head = [by] + [h for _, h, _ in _SHOWN]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * len(_SHOWN)]
    for r in table.head(limit).iter_rows(named=True):
        name = md(str(r[by]) or "(none)")
        lines.append("| " + " | ".join([name] + [_fmt(r[k], kind) for k, _, kind in _SHOWN]) + " |")
    if table.height > limit:
        lines.append(f"\n{table.height - limit} more in `hybridnb.discipline(by={by!r})`")
    return "\n".join(lines) + "\n"


def chart(data, by: str):
    """Altair: each group's $ stacked by what it bought (rework, looks-local reasoning, reasoning, local)."""
    import altair as alt

    return alt.Chart(data.to_pandas()).mark_bar().encode(
        y=alt.Y(f"{by}:N", sort="-x", title=by), x=alt.X("usd:Q", title="$"),
        color=alt.Color("category:N", scale=alt.Scale(
            domain=["rework (billed repeats)", "reasoning that looks local", "reasoning", "local"],
            range=["#d62728", "#ff7f0e", "#1f77b4", "#2ca02c"])),
        tooltip=[f"{by}:N", "category:N", alt.Tooltip("usd:Q", format="$.4f")],
    ).properties(title=f"Where the $ went, by {by}", width=420)


def magic(words: Sequence[str]) -> None:
    """``%hybridnb discipline [notebook|cell|template|user] [--compare A B]``: table + chart."""
    from IPython.display import Markdown, display

    words = list(words)
    compare = None
    if "--compare" in words:
        i = words.index("--compare")
        compare, words = words[i + 1:], words[:i]
    by = words[0] if words else "notebook"
    if compare:
        table = discipline(compare=compare)
        lines = ["| metric | " + " | ".join(compare) + " |", "|---|" + "---:|" * len(compare)]
        for r in table.iter_rows():
            kind = "usd" if "usd" in r[0] else "pct" if r[0].endswith(("share", "rate")) else "x"
            lines.append(f"| {r[0]} | " + " | ".join(_fmt(v, kind) for v in r[1:]) + " |")
        display(Markdown("\n".join(lines)))
        return
    table = discipline(by)
    if table.height == 0:
        print("the ledger has no calls yet")
        return
    display(Markdown(to_markdown(table, by)))
    data = discipline(by, detail="chart")
    if data.height:
        display(chart(data, by))
