"""The report stage: figures into the ``results`` table, a markdown report and Altair charts."""

from __future__ import annotations

import json

import altair as alt
import polars as pl

from . import _report
from . import _store
from ._reasoning import calls

TARGETS = {"top_two_correct": 1.0, "ranking_spearman": 0.9, "local_macro_f1_vs_truth": 0.85}


def report_paths(wf):
    stem = wf.db.with_suffix("")
    return stem.parent / f"{stem.name}_report.md", stem.parent / f"{stem.name}_charts.html"


def stage_report(wf) -> int:
    q = _report.quality(wf.con)
    for k, v in q.items():
        _store.set_result(wf.con, k, v, target=TARGETS.get(k))
    cost = _report.costs(wf.con, wf.run_id, wf.opts.n)
    _replace_table(wf.con, "cost_comparison", cost)
    md, html = report_paths(wf)
    md.write_text(markdown(wf, q, cost), encoding="utf-8")
    charts(wf.con, cost).save(str(html))
    return 1


def _replace_table(con, table: str, df: pl.DataFrame) -> None:
    con.register("_t", df.to_arrow())
    con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _t")
    con.unregister("_t")


def build_result(wf, timings, resumed):
    from ._workflow import Result

    q = dict(_store.frame(wf.con, "SELECT name, value FROM results").iter_rows())
    cost = _store.frame(wf.con, "SELECT * FROM cost_comparison")
    return Result(wf.db, report_paths(wf)[0], timings, q, _report.ranking(wf.con), cost, resumed)


def table(df: pl.DataFrame, floats: str = "{:.3f}") -> str:
    """A polars frame as a markdown table (``$`` escaped for notebook rendering)."""
    def cell(v):
        if isinstance(v, float):
            return floats.format(v)
        return "" if v is None else str(v).replace("|", "\\|").replace("$", "\\$")
    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "".join("| " + " | ".join(cell(v) for v in row) + " |\n" for row in df.iter_rows())


def markdown(wf, q: dict, cost: pl.DataFrame) -> str:
    con = wf.con
    rank = _report.ranking(con).with_row_index("rank", offset=1)
    truth = _report.truth_mapping(con)
    rank = rank.with_columns(pl.col("category").replace_strict(truth, default=None).alias("maps_to_truth"))
    runs = _store.frame(con, "SELECT stage, seconds, rows FROM runs WHERE status = 'done' ORDER BY started")
    quality = pl.DataFrame([{"figure": k, "value": float(v), "target": TARGETS.get(k)} for k, v in q.items()],
                           schema_overrides={"target": pl.Float64})
    agree = _store.frame(con, "SELECT name AS rounds, value AS agreement, detail FROM results "
                              "WHERE name LIKE 'agreement_round_%' ORDER BY name")
    role = _pivot(_report.ranking(con, "speaker_role"), "speaker_role")
    year = _pivot(_report.ranking(con, "year"), "year")
    diff = _store.frame(con, "SELECT change, category, detail, decided_by FROM taxonomy_changes "
                             "WHERE version = 2 ORDER BY change, category")
    usd = cost.with_columns(pl.col("usd").map_elements(lambda x: f"${x:,.4f}" if x is not None else "n/a",
                                                       return_dtype=pl.String))
    stand_in = bool(calls(con)["simulated"].any()) if calls(con).height else False
    parts = [
        f"# CTO priorities from {wf.opts.n:,} transcript segments\n",
        f"DB `{wf.db}` · run `{wf.run_id}` · seed {wf.opts.seed} · shares: {wf.spec.source} · "
        f"every figure below is a query over the DB (tables `results`, `labels`, `taxonomy`, "
        f"`taxonomy_changes`, `reason_calls`, `cost_comparison`, `runs`).\n",
        "## Ranking of priorities (primary concern, share of on-topic segments, local labels)\n",
        table(rank.head(20), "{:.4f}"),
        "\n## Secondary mentions (share of on-topic segments)\n", table(_report.secondary_ranking(con), "{:.4f}"),
        "\n## By speaker role (primary share)\n", table(role, "{:.3f}"),
        "\n## By year (primary share)\n", table(year, "{:.3f}"),
        "\n## Taxonomy v1 → v2\n", table(diff),
        "\n## Label stability (agreement between successive rounds)\n", table(agree),
        "\n## Reasoning calls\n", table(_report.reasoning_summary(con), "{:.5f}"),
        ("\n*The reasoning route was the offline stand-in (a small CPU model priced as the reference "
         "model): it cannot really reason, so every decision above was taken by the recorded evidence "
         "(keywords, centroids, classifier) and the stand-in's answers are shown for transparency. "
         "With a real reasoning API the model's valid answers decide.*\n" if stand_in else ""),
        "\n## Cost comparison (from the ledger)\n", table(usd, "{:.4f}"),
        "\n## Quality against ground truth\n", table(quality, "{:.3f}"),
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
