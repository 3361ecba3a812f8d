"""The report stage: figures into the ``results`` table, a markdown report and Altair charts."""

from __future__ import annotations

import json

import altair as alt
import polars as pl

from . import _report
from . import _store

TARGETS = {"quality.top2_correct": 1.0, "quality.spearman_primary": 0.95, "quality.macro_f1": 0.9}
STAND_IN_NOTE = ("\n*No reasoning API was configured: every reasoning-route decision above (topic names, "
                 "consolidation, taxonomy v2, reviews, validation) was taken by the **deterministic stand-in** "
                 "(c-TF-IDF keywords, centroid similarity, keyword overlap, classifier disagreements), not by a "
                 "model. The stand-in model was not run; each call's tokens were counted and priced at the "
                 "reference model, marked simulated in the ledger.*\n")


def report_paths(wf):
    stem = wf.db.with_suffix("")
    return stem.parent / f"{stem.name}_report.md", stem.parent / f"{stem.name}_charts.html"


def stage_report(wf) -> int:
    from . import _quality

    q = _quality.evaluate(wf.con)
    n = wf.con.execute("SELECT count(*) FROM segments").fetchall()[0][0]
    cost = _report.costs(wf.con, wf.run_id, n)
    _replace_table(wf.con, "cost_comparison", cost)
    md, html = report_paths(wf)
    md.write_text(markdown(wf, q, cost, n), encoding="utf-8")
    charts(wf.con, cost).save(str(html))
    return 1


def _replace_table(con, table: str, df: pl.DataFrame) -> None:
    con.register("_t", df.to_arrow())
    con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _t")
    con.unregister("_t")


def build_result(wf, timings, resumed):
    from ._result import Result

    q = {k: v for k, v in _store.frame(wf.con, "SELECT name, value FROM results").iter_rows() if v is not None}
    cost = _store.frame(wf.con, "SELECT * FROM cost_comparison")
    return Result(wf.db, report_paths(wf)[0], timings, q, _report.ranking(wf.con), cost, resumed,
                  _report.secondary_ranking(wf.con))


def table(df: pl.DataFrame, floats: str = "{:.3f}") -> str:
    """A polars frame as a markdown table (``$`` escaped for notebook rendering)."""
    def cell(v):
        if isinstance(v, float):
            return floats.format(v)
        return "" if v is None else str(v).replace("|", "\\|").replace("$", "\\$")
    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "".join("| " + " | ".join(cell(v) for v in row) + " |\n" for row in df.iter_rows())


def markdown(wf, q, cost: pl.DataFrame, n: int) -> str:
    con = wf.con
    rank = _report.ranking(con).with_row_index("rank", offset=1)
    sec = _report.secondary_ranking(con).with_row_index("rank", offset=1)
    runs = _store.frame(con, "SELECT stage, seconds, rows FROM runs WHERE status = 'done' ORDER BY started")
    agree = _store.frame(con, "SELECT name AS rounds, value AS agreement, detail FROM results "
                              "WHERE name LIKE 'agreement_round_%' ORDER BY name")
    v1 = _store.frame(con, "SELECT category, description, keywords, topics, is_noise AS off_topic FROM taxonomy "
                           "WHERE version = 1 ORDER BY is_noise, category")
    diff = _store.frame(con, "SELECT change, category, detail, decided_by FROM taxonomy_changes "
                             "WHERE version = 2 ORDER BY change, category")
    usd = cost.with_columns(pl.col("usd").map_elements(lambda x: f"${x:,.4f}" if x is not None else "n/a",
                                                       return_dtype=pl.String))
    who = _report.reasoning_summary(con)
    stand_in = who.height > 0 and who["decided_by_stand_in"].sum() > 0
    src = dict(con.execute("SELECT key, value FROM source_info").fetchall())
    parts = [
        f"# Priorities discovered in {n:,} segments\n",
        f"DB `{wf.db}` · run `{wf.run_id}` · source: {src.get('kind', '?')} {src.get('path') or src.get('table') or ''}"
        f" · off-topic/noise: {_report.off_topic_share(con):.1%} of segments · every figure below is a query over "
        f"the DB (tables `final_labels`, `taxonomy`, `taxonomy_changes`, `reason_calls`, `results`, `runs`).\n",
        "## Ranking of priorities (primary concern, share of on-topic segments)\n", table(rank.head(25), "{:.4f}"),
        "\n## Secondary mentions (share of on-topic segments that also mention the category)\n",
        table(sec.head(25), "{:.4f}"),
    ]
    for by in ("speaker_role", "year"):
        if con.execute(f"SELECT count({by}) FROM segments").fetchall()[0][0]:
            parts += [f"\n## By {by.replace('_', ' ')} (primary share)\n", table(_pivot(_report.ranking(con, by), by), "{:.3f}")]
    parts += [
        "\n## Taxonomy v1 (discovered)\n", table(v1),
        "\n## Taxonomy v1 → v2 (from the label rounds' disagreements)\n", table(diff),
        "\n## Label stability (agreement between successive rounds)\n", table(agree),
        "\n## Reasoning calls (who decided)\n", table(who, "{:.5f}"), STAND_IN_NOTE if stand_in else "",
        "\n## Cost comparison (from the ledger)\n", table(usd, "{:.4f}"),
        "\n## Quality\n", q.to_markdown() if q.kind != "none" else "No truth column and no held-out labels.\n",
        "\n## Stage timings\n", table(runs, "{:.1f}"),
    ]
    return "\n".join(parts)


def _pivot(df: pl.DataFrame, by: str) -> pl.DataFrame:
    top = df.group_by("category").agg(pl.col("segments").sum()).sort("segments", descending=True)
    wide = df.pivot(on=by, index="category", values="primary_share", sort_columns=True)
    return top.select("category").join(wide, on="category", how="left").head(8)


def charts(con, cost: pl.DataFrame) -> alt.VConcatChart:
    """Ranking (primary vs secondary), drift by year, and the cost comparison."""
    prim = _report.ranking(con).select("category", pl.col("primary_share").alias("share"),
                                       pl.lit("primary").alias("kind"))
    sec = _report.secondary_ranking(con).select("category", pl.col("secondary_share").alias("share"),
                                                pl.lit("secondary").alias("kind"))
    both = pl.concat([prim, sec]).to_pandas()
    order = prim["category"].to_list()
    rank = alt.Chart(both).mark_bar().encode(
        y=alt.Y("category:N", sort=order, title=None), x=alt.X("share:Q", axis=alt.Axis(format="%")),
        color="kind:N", yOffset="kind:N").properties(title="CTO priorities", width=420)
    years = alt.Chart(_report.ranking(con, "year").to_pandas()).mark_line(point=True).encode(
        x="year:O", y=alt.Y("primary_share:Q", axis=alt.Axis(format="%")), color="category:N"
    ).properties(title="Primary share by year", width=420)
    money = alt.Chart(cost.drop_nulls("usd").to_pandas()).mark_bar().encode(
        x=alt.X("usd:Q", title="USD"), y=alt.Y("item:N", title=None, sort=None)
    ).properties(title="What the work cost, and what all-tokens would have cost", width=420)
    return alt.vconcat(rank, years, money)


def summary_json(result) -> str:
    return json.dumps({"db": str(result.db), "report": str(result.report), "timings": result.timings,
                       "quality": result.quality}, indent=2, default=str)
