"""Results: ranking of priorities (primary and secondary), and the cost comparison."""

from __future__ import annotations

import polars as pl

from .. import ledger as _read_ledger
from . import _store


def ranking(con, by: str | None = None) -> pl.DataFrame:
    """Primary share (of on-topic segments) per category, optionally per ``by`` column of segments."""
    group = f"s.{by}, " if by else ""
    part = f"PARTITION BY s.{by}" if by else ""
    return _store.frame(con, f"""
        SELECT {group}f.primary_label AS category, count(*) AS segments,
               count(*) / sum(count(*)) OVER ({part}) AS primary_share
        FROM final_labels f JOIN segments s USING (segment_id)
        WHERE f.primary_label IS NOT NULL GROUP BY {group}f.primary_label
        ORDER BY {group}primary_share DESC, category""")


def secondary_ranking(con) -> pl.DataFrame:
    """Share of on-topic segments that mention each category as a secondary concern."""
    return _store.frame(con, """
        WITH on_topic AS (SELECT * FROM final_labels WHERE primary_label IS NOT NULL)
        SELECT secondary_label AS category, count(*) AS segments,
               count(*) / (SELECT count(*) FROM on_topic) AS secondary_share
        FROM on_topic WHERE secondary_label IS NOT NULL
        GROUP BY secondary_label ORDER BY secondary_share DESC, category""")


def off_topic_share(con) -> float:
    return float(con.execute("SELECT avg((primary_label IS NULL)::INT) FROM final_labels").fetchall()[0][0] or 0.0)


def costs(con, run_id: str, n: int) -> pl.DataFrame:
    """Spend from the ledger for this run, and what labelling every segment on tokens would cost."""
    led = _read_ledger(where=f"batch LIKE 'corpus:{run_id}:%'")
    rows = []
    for route, label in (("reason", "reasoning route (taxonomy, fine-tuning data, validation)"),
                         ("local", "local compute (distilled labeller, all segments)")):
        part = led.filter(pl.col("route") == route) if led.height else led
        rows.append({"item": label, "usd": float(part["cost_usd"].sum()) if part.height else 0.0,
                     "calls": part.filter(~pl.col("cached")).height if part.height else 0,
                     "tokens": int((part["input_tokens"] + part["output_tokens"]).sum()) if part.height else 0,
                     "segments": int(part["rows"].sum()) if part.height and route == "local" else None,
                     "simulated": bool(part["simulated"].any()) if part.height else False})
    per_seg, price = _token_rate(con)
    rows.append({"item": f"projected: all {n:,} segments on the reasoning route",
                 "usd": n * per_seg * price if price == price else None, "calls": n,
                 "tokens": int(n * per_seg) if per_seg == per_seg else None, "segments": n,
                 "simulated": rows[0]["simulated"]})
    _store.set_result(con, "tokens_per_segment", per_seg)
    _store.set_result(con, "usd_per_token", price)
    return pl.DataFrame(rows, schema_overrides={"segments": pl.Int64, "usd": pl.Float64,
                                                "tokens": pl.Int64})


def _token_rate(con) -> tuple[float, float]:
    """Measured tokens per labelled segment and $ per token (uncached labelling calls)."""
    df = _store.frame(con, """SELECT tokens, cost_usd, cached FROM reason_calls
        WHERE (step LIKE 'review_round_%' OR step = 'validate') AND tokens > 0""")
    if df.height == 0:
        return float("nan"), float("nan")
    billed = df.filter(~pl.col("cached"))
    price = billed["cost_usd"].sum() / billed["tokens"].sum() if billed.height and billed["tokens"].sum() else float("nan")
    return float(df["tokens"].mean()), float(price)


def reasoning_summary(con) -> pl.DataFrame:
    """Per step: calls, valid answers, who decided (reasoning model, stand-in, evidence), tokens, $."""
    return _store.frame(con, """
        SELECT step, count(*) AS calls, count(*) FILTER (WHERE valid) AS valid_answers,
               count(*) FILTER (WHERE decided_by = 'reason') AS decided_by_reason,
               count(*) FILTER (WHERE decided_by = 'stand-in') AS decided_by_stand_in,
               count(*) FILTER (WHERE decided_by = 'evidence') AS decided_by_evidence,
               bool_or(simulated) AS simulated, sum(tokens) AS tokens, sum(cost_usd) AS usd,
               count(*) FILTER (WHERE error IS NOT NULL) AS errors
        FROM reason_calls GROUP BY step ORDER BY min(rowid)""")
