"""Results: ranking of priorities, quality against ground truth, and the cost comparison."""

from __future__ import annotations

import polars as pl
from scipy.stats import spearmanr
from sklearn.metrics import adjusted_rand_score, f1_score, normalized_mutual_info_score

from ..store import ledger as _ledger
from ..config import get_settings
from . import _store
from ._generate import NOISE_LABEL
from ._taxonomy import OFF_TOPIC

LOCAL = "source = 'local'"


def truth_mapping(con) -> dict[str, str]:
    """Each recovered category -> the true category most of its segments have (evaluation only)."""
    df = _store.frame(con, f"""
        WITH c AS (SELECT l.label, s.true_primary, count(*) AS n FROM labels l
                   JOIN segments s USING (segment_id) WHERE l.{LOCAL} GROUP BY l.label, s.true_primary)
        SELECT label, true_primary FROM c
        QUALIFY row_number() OVER (PARTITION BY label ORDER BY n DESC, true_primary) = 1""")
    return dict(zip(df["label"], df["true_primary"]))


def ranking(con, by: str | None = None) -> pl.DataFrame:
    """Primary share (of on-topic segments) per category, optionally per ``by`` column."""
    group = f"s.{by}, " if by else ""
    part = f"PARTITION BY s.{by}" if by else ""
    return _store.frame(con, f"""
        SELECT {group}l.label AS category, count(*) AS segments,
               count(*) / sum(count(*)) OVER ({part}) AS primary_share
        FROM labels l JOIN segments s USING (segment_id)
        WHERE l.{LOCAL} AND l.label != '{OFF_TOPIC}' GROUP BY {group}l.label
        ORDER BY {group}primary_share DESC""")


def secondary_ranking(con) -> pl.DataFrame:
    """Share of on-topic segments that mention each category as a secondary concern."""
    return _store.frame(con, f"""
        WITH on_topic AS (SELECT * FROM labels WHERE {LOCAL} AND label != '{OFF_TOPIC}')
        SELECT secondary AS category, count(*) AS segments,
               count(*) / (SELECT count(*) FROM on_topic) AS secondary_share
        FROM on_topic WHERE secondary IS NOT NULL AND secondary != '{OFF_TOPIC}'
        GROUP BY secondary ORDER BY secondary_share DESC""")


def true_ranking(con) -> pl.DataFrame:
    return _store.frame(con, f"""
        SELECT true_primary AS category, count(*) / sum(count(*)) OVER () AS primary_share
        FROM segments WHERE true_primary != '{NOISE_LABEL}' GROUP BY true_primary ORDER BY primary_share DESC""")


def quality(con) -> dict[str, float]:
    """Topic NMI/ARI, labeller macro-F1 (vs truth, vs reasoning labels), ranking Spearman."""
    mapping = truth_mapping(con)
    out = _topic_quality(con)
    df = _store.frame(con, f"""
        SELECT l.label, s.true_primary, t.split FROM labels l JOIN segments s USING (segment_id)
        LEFT JOIN sample t USING (segment_id) WHERE l.{LOCAL}""")
    unseen = df.filter(pl.col("split").is_null() | (pl.col("split") != "train"))
    pred = unseen["label"].replace_strict(mapping, default=None).fill_null("?")
    out["local_macro_f1_vs_truth"] = f1_score(unseen["true_primary"], pred, average="macro",
                                              labels=sorted(unseen["true_primary"].unique()))
    out["local_accuracy_vs_truth"] = float((pred == unseen["true_primary"]).mean())
    out.update(_vs_reasoning(con, mapping))
    out.update(_ranking_quality(con, mapping))
    return out


def _topic_quality(con) -> dict[str, float]:
    df = _store.frame(con, f"""SELECT a.topic_id, s.true_primary FROM topic_assignments a
        JOIN segments s USING (segment_id) WHERE s.true_primary != '{NOISE_LABEL}'""")
    return {"topics_nmi": normalized_mutual_info_score(df["true_primary"], df["topic_id"]),
            "topics_ari": adjusted_rand_score(df["true_primary"], df["topic_id"])}


def _vs_reasoning(con, mapping: dict[str, str]) -> dict[str, float]:
    df = _store.frame(con, f"""
        SELECT h.label AS reasoning, l.label AS local_label, s.true_primary FROM labels h
        JOIN labels l ON l.segment_id = h.segment_id AND l.{LOCAL}
        JOIN segments s ON s.segment_id = h.segment_id WHERE h.split = 'holdout'""")
    tr = _store.frame(con, """
        SELECT l.label, s.true_primary FROM labels l JOIN segments s USING (segment_id)
        WHERE l.split = 'train' AND l.round = (SELECT max(round) FROM labels WHERE split = 'train')""")
    out = {}
    if df.height:
        out["local_macro_f1_vs_reasoning"] = f1_score(df["reasoning"], df["local_label"], average="macro")
        out["reasoning_labels_accuracy_vs_truth"] = float(
            (df["reasoning"].replace_strict(mapping, default="?") == df["true_primary"]).mean())
    if tr.height:
        out["finetune_labels_accuracy_vs_truth"] = float(
            (tr["label"].replace_strict(mapping, default="?") == tr["true_primary"]).mean())
    return out


def _ranking_quality(con, mapping: dict[str, str]) -> dict[str, float]:
    truth = true_ranking(con)
    rec = ranking(con).with_columns(pl.col("category").replace_strict(mapping, default=None).alias("truth"))
    rec = rec.filter(pl.col("truth").is_not_null() & (pl.col("truth") != NOISE_LABEL))
    share = rec.group_by("truth").agg(pl.col("primary_share").sum())
    joined = truth.join(share, left_on="category", right_on="truth", how="left").fill_null(0.0)
    rho = spearmanr(joined["primary_share"], joined["primary_share_right"]).statistic
    top_rec = joined.sort("primary_share_right", descending=True)["category"].head(2).to_list()
    top_true = truth["category"].head(2).to_list()
    return {"ranking_spearman": float(rho), "top_two_correct": float(top_rec == top_true)}


def costs(con, run_id: str, n: int) -> pl.DataFrame:
    """Spend from the ledger for this run, and what labelling every segment on tokens would cost."""
    home = get_settings().home
    led = _ledger.read(home, where=f"batch LIKE 'corpus:{run_id}:%'")
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
    """Per step: calls, valid answers, agreement with evidence, who decided, tokens."""
    return _store.frame(con, """
        SELECT step, count(*) AS calls, count(*) FILTER (WHERE valid) AS valid_answers,
               count(*) FILTER (WHERE answer = decided) AS answer_used_or_agreed,
               count(*) FILTER (WHERE decided_by = 'reason') AS decided_by_reason,
               count(*) FILTER (WHERE decided_by = 'evidence') AS decided_by_evidence,
               sum(tokens) AS tokens, sum(cost_usd) AS usd, count(*) FILTER (WHERE error IS NOT NULL) AS errors
        FROM reason_calls GROUP BY step ORDER BY min(rowid)""")
