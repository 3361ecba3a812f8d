"""Honest quality of a corpus run: against truth when the input has it, else agreement.

With truth, discovered categories are mapped one-to-one to true ones (Hungarian assignment on
the confusion matrix, off-topic/noise as one class on both sides). Every discovered category
counts: one left unmapped, or holding mostly noise, is an error in the ranking a reader sees.
Without truth, the local labels are compared with held-out reasoning-route labels (95 % Wilson).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy.optimize import linear_sum_assignment
from scipy.stats import rankdata

from . import _store

NOISE = "(noise)"  # the off-topic class, on both sides
REASONING = "held-out reasoning-route labels"
STAND_IN = "held-out labels of the offline stand-in (deterministic rules, not a model)"
TRUTH = "the input's truth column"
Z95 = 1.959963984540054


def one_to_one(pred: Sequence[str | None], true: Sequence[str | None]) -> dict[str, str | None]:
    """Map each discovered label to one true label (None = unmapped) maximising shared segments.

    ``None`` in either input is the noise class, returned as :data:`NOISE`. A pair that shares no
    segment is no mapping. The off-topic label is never a category: it maps to the true noise class
    or to nothing (to itself when the truth has no noise class: its segments are then misses).
    """
    p = [NOISE if x is None else str(x) for x in pred]
    t = [NOISE if x is None else str(x) for x in true]
    if len(p) != len(t):
        raise ValueError(f"pred and true differ in length ({len(p)} vs {len(t)})")
    rows, cols = sorted(set(p)), sorted(set(t))
    ri, ci = {r: i for i, r in enumerate(rows)}, {c: i for i, c in enumerate(cols)}
    conf = np.zeros((len(rows), len(cols)), dtype=np.int64)
    np.add.at(conf, ([ri[x] for x in p], [ci[x] for x in t]), 1)
    if NOISE in ri:  # off-topic segments shared with a true category are not a match for it
        noise_row = np.zeros(len(cols), dtype=np.int64)
        if NOISE in ci:
            noise_row[ci[NOISE]] = conf[ri[NOISE], ci[NOISE]]
        conf[ri[NOISE]] = noise_row
    mapping: dict[str, str | None] = dict.fromkeys(rows)
    for r, c in zip(*linear_sum_assignment(-conf)):
        if conf[r, c] > 0:
            mapping[rows[r]] = cols[c]
    if NOISE in ri and NOISE not in ci:
        mapping[NOISE] = NOISE
    return mapping


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) != len(b):
        raise ValueError(f"a and b differ in length ({len(a)} vs {len(b)})")
    ra, rb = rankdata(a), rankdata(b)
    if len(a) < 2 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def top_k_correct(seen: Sequence[str | None], truth: Sequence[str], k: int) -> bool:
    """Whether the first ``k`` of the reader's ranking (mapped to true names; None = no true
    category) are the true top ``k`` in the same order."""
    return len(seen) >= k and len(truth) >= k and list(seen[:k]) == list(truth[:k])


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion (95 % by default)."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Quality:
    """Quality figures of a run; ``kind`` says whether they are against truth or agreement."""

    kind: str  # "truth" | "agreement" | "none"
    figures: dict[str, float]
    per_category: pl.DataFrame = field(default_factory=pl.DataFrame)
    ranking_check: pl.DataFrame = field(default_factory=pl.DataFrame)
    unmapped: list[str] = field(default_factory=list)
    basis: str = ""  # what the figures compare with, in words

    def to_markdown(self) -> str:
        from ._quality_md import render

        return render(self)


def _shares(values: pl.Series) -> dict[str, float]:
    on = values.drop_nulls()
    if on.len() == 0:
        return {}
    counts = on.value_counts()
    return {str(k): c / on.len() for k, c in counts.iter_rows()}


def ranking_check(df: pl.DataFrame, mapping: dict[str, str | None]) -> pl.DataFrame:
    """The reader's primary ranking next to the truth, one row per discovered or true category.

    ``df`` has ``primary`` and ``true_primary`` (None = noise). A discovered category that maps to
    nothing, to noise, or whose segments are mostly true noise is compared with a true share of 0.
    """
    seen, true = _shares(df["primary"]), _shares(df["true_primary"])
    noise_frac = (df.filter(pl.col("primary").is_not_null())
                  .group_by("primary").agg(pl.col("true_primary").is_null().mean().alias("f")))
    noise_frac = dict(noise_frac.iter_rows())
    rows, claimed = [], set()
    for cat, share in seen.items():
        target = mapping.get(cat)
        status = "mapped"
        if target == NOISE:
            status = "noise"
        elif noise_frac.get(cat, 0.0) > 0.5:
            status = "mostly noise"
        elif target is None:
            status = "unmapped"
        ok = status == "mapped"
        if ok:
            claimed.add(target)
        rows.append((cat, target if ok else None, status, share, true.get(target, 0.0) if ok else 0.0))
    rows += [(None, t, "missed", 0.0, s) for t, s in true.items() if t not in claimed]
    out = pl.DataFrame(rows, schema={"category": pl.String, "true_category": pl.String, "status": pl.String,
                                     "seen_share": pl.Float64, "true_share": pl.Float64}, orient="row")
    return out.sort(["seen_share", "true_share", "category"], descending=[True, True, False],
                    nulls_last=True).with_columns(share_error=pl.col("seen_share") - pl.col("true_share"))


def ranking_figures(check: pl.DataFrame, true_order: list[str]) -> dict[str, float]:
    """Spearman over every row of ``check`` and top-2/top-3 of the seen ranking."""
    seen_rows = check.filter(pl.col("category").is_not_null()).sort(
        ["seen_share", "category"], descending=[True, False])
    seen_order = seen_rows["true_category"].to_list()
    err = check.filter(pl.col("status") != "missed")["share_error"].abs()
    return {"spearman_primary": spearman(check["seen_share"].to_list(), check["true_share"].to_list()),
            "top2_correct": float(top_k_correct(seen_order, true_order, 2)),
            "top3_correct": float(top_k_correct(seen_order, true_order, 3)),
            "primary_share_mae": float(check["share_error"].abs().mean()) if check.height else float("nan"),
            "primary_share_max_error": float(err.max()) if err.len() else float("nan")}


def mapped_labels(pred: Sequence[str | None], mapping: dict[str, str | None]) -> list[str]:
    """Each prediction under ``mapping``: its true name, NOISE, or ``unmapped:<name>``."""
    out = []
    for x in pred:
        key = NOISE if x is None else str(x)
        out.append(mapping.get(key) or f"unmapped:{key}")
    return out


def per_category(pred: Sequence[str | None], true: Sequence[str | None],
                 mapping: dict[str, str | None]) -> pl.DataFrame:
    """Precision, recall and F1 per true class (noise included), then one row per unmapped
    discovered category (precision 0: all its segments are errors)."""
    yp = np.array(mapped_labels(pred, mapping), dtype=object)
    yt = np.array([NOISE if x is None else str(x) for x in true], dtype=object)
    inverse = {v: k for k, v in mapping.items() if v is not None}
    rows = []
    counts = {t: int((yt == t).sum()) for t in set(yt.tolist())}
    for t in sorted(counts, key=lambda c: (c == NOISE, -counts[c], c)):  # largest first, noise last
        hit = int(((yp == t) & (yt == t)).sum())
        n_pred, n_true = int((yp == t).sum()), int((yt == t).sum())
        prec = hit / n_pred if n_pred else 0.0
        rec = hit / n_true if n_true else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        rows.append((t, inverse.get(t), n_true, n_pred, prec, rec, f1))
    for d in sorted(k for k, v in mapping.items() if v is None):
        rows.append((None, d, 0, int((yp == f"unmapped:{d}").sum()), 0.0, None, None))
    return pl.DataFrame(rows, orient="row", schema={
        "true_category": pl.String, "discovered": pl.String, "true_segments": pl.Int64,
        "seen_segments": pl.Int64, "precision": pl.Float64, "recall": pl.Float64, "f1": pl.Float64})


def secondary_check(df: pl.DataFrame, mapping: dict[str, str | None]) -> pl.DataFrame:
    """Secondary share (of on-topic segments) seen vs true, per true category and per unmapped one."""
    seen_on = df.filter(pl.col("primary").is_not_null())
    true_on = df.filter(pl.col("true_primary").is_not_null())
    seen: dict[str, float] = {}
    for cat, n in seen_on["secondary"].drop_nulls().value_counts().iter_rows():
        key = mapping.get(str(cat)) or f"unmapped:{cat}"
        if key != NOISE:
            seen[key] = seen.get(key, 0.0) + n / max(seen_on.height, 1)
    true = {str(k): n / max(true_on.height, 1)
            for k, n in true_on["true_secondary"].drop_nulls().value_counts().iter_rows()}
    cats = sorted(set(seen) | set(true) | set(true_on["true_primary"].unique().to_list()))
    return pl.DataFrame({"true_category": cats, "seen_secondary_share": [seen.get(c, 0.0) for c in cats],
                         "true_secondary_share": [true.get(c, 0.0) for c in cats]},
                        schema={"true_category": pl.String, "seen_secondary_share": pl.Float64,
                                "true_secondary_share": pl.Float64}).with_columns(
        secondary_error=pl.col("seen_secondary_share") - pl.col("true_secondary_share"))


def has_secondary_truth(df: pl.DataFrame) -> bool:
    """Whether the truth has any secondary label (without, secondary shares cannot be scored)."""
    return "true_secondary" in df.columns and df["true_secondary"].drop_nulls().len() > 0


def evaluate_frame(df: pl.DataFrame) -> Quality:
    """Quality against truth of a frame with primary, secondary, true_primary, true_secondary (None = noise)."""
    pred, true = df["primary"].to_list(), df["true_primary"].to_list()
    mapping = one_to_one(pred, true)
    cats = per_category(pred, true, mapping)
    check = ranking_check(df, mapping)
    true_order = check.filter(pl.col("true_share") > 0).sort(
        ["true_share", "true_category"], descending=[True, False])["true_category"].to_list()
    yp, yt = mapped_labels(pred, mapping), [NOISE if x is None else str(x) for x in true]
    true_classes = cats.filter(pl.col("true_category").is_not_null())
    sec = secondary_check(df, mapping)
    scored = has_secondary_truth(df)
    n_noise_true = sum(1 for x in true if x is None)
    figures = {
        "n_segments": float(df.height),
        "macro_f1": float(true_classes["f1"].mean()) if true_classes.height else float("nan"),
        "accuracy": float(np.mean([a == b for a, b in zip(yp, yt)])) if yt else float("nan"),
        **ranking_figures(check, true_order),
        "noise_true_share": n_noise_true / max(df.height, 1),
        "noise_seen_share": sum(1 for x in pred if x is None) / max(df.height, 1),
        "noise_recovered": (sum(1 for a, b in zip(yp, yt) if a == b == NOISE) / n_noise_true
                            if n_noise_true else float("nan")),
        "n_discovered": float(len([k for k in mapping if k != NOISE])),
        "n_unmapped": float(sum(1 for v in mapping.values() if v is None)),
        "n_mostly_noise": float((check["status"].is_in(["noise", "mostly noise"])).sum()),
        "n_missed": float((check["status"] == "missed").sum()),
        "secondary_scored": float(scored),
        "secondary_share_mae": float(sec["secondary_error"].abs().mean()) if scored and sec.height else float("nan"),
        "secondary_share_max_error": (float(sec["secondary_error"].abs().max()) if scored and sec.height
                                      else float("nan")),
    }
    unmapped = sorted(k for k, v in mapping.items() if v is None)
    cats = cats.join(sec if scored else sec.select("true_category", "seen_secondary_share"), on="true_category",
                     how="left")
    return Quality("truth", figures, cats, check, unmapped, basis=TRUTH)


def agreement(pairs: Sequence[tuple[str | None, str | None]], basis: str = REASONING) -> Quality:
    """Agreement of local labels with held-out reference labels (pairs local, reference; None = off-topic)."""
    n = len(pairs)
    agree = sum(1 for a, b in pairs if a == b)
    low, high = wilson(agree, n)
    figures = {"agreement": agree / n if n else float("nan"), "agreement_low": low, "agreement_high": high,
               "agreement_n": float(n)}
    rows = {}
    for a, b in pairs:
        key = NOISE if b is None else b
        hit, tot = rows.get(key, (0, 0))
        rows[key] = (hit + (a == b), tot + 1)
    per = pl.DataFrame([(k, t, h / t) for k, (h, t) in sorted(rows.items())], orient="row",
                       schema={"reasoning_label": pl.String, "held_out": pl.Int64, "agreement": pl.Float64})
    return Quality("agreement", figures, per, basis=basis)


def evaluate(con) -> Quality:
    """Quality of the run in ``con``; writes ``quality.*`` rows to ``results``."""
    has_truth = _has_rows(con, "truth")
    if has_truth and _has_rows(con, "final_labels"):
        df = _store.frame(con, """SELECT f.primary_label AS "primary", f.secondary_label AS secondary,
            t.true_primary, t.true_secondary FROM final_labels f JOIN truth t USING (segment_id)""")
        q = evaluate_frame(df)
    elif _has_rows(con, "final_labels") and _has_rows(con, "labels"):
        rows = con.execute("""
            WITH held AS (SELECT segment_id, label, source FROM labels
                          WHERE split = 'validate' AND source IN ('reason', 'stand-in')
                          QUALIFY row_number() OVER (PARTITION BY segment_id ORDER BY round DESC) = 1)
            SELECT f.primary_label, h.label, h.source FROM held h JOIN final_labels f USING (segment_id)
            ORDER BY segment_id""").fetchall()
        sources = {r[2] for r in rows}
        basis = REASONING if sources == {"reason"} else STAND_IN if sources == {"stand-in"} else \
            f"{REASONING} and {STAND_IN}" if sources else REASONING
        q = agreement([(a, b) for a, b, _ in rows], basis)
    else:
        q = Quality("none", {})
    _store.set_result(con, "quality.kind", None, kind=q.kind, unmapped=q.unmapped, basis=q.basis)
    for name, value in q.figures.items():
        _store.set_result(con, f"quality.{name}", None if _nan(value) else value)
    return q


def _nan(x: float) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _has_rows(con, table: str) -> bool:
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                         [table]).fetchall()[0][0]
    return bool(exists) and con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] > 0
