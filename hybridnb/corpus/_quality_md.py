"""Markdown for :class:`hybridnb.corpus._quality.Quality`: says which kind of quality it is."""

from __future__ import annotations

import math

import polars as pl


def _pct(x) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"


def _num(x, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _table(df: pl.DataFrame, pct: set[str]) -> list[str]:
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    for row in df.iter_rows():
        cells = [(_pct(v) if c in pct else _num(v) if isinstance(v, float) else ("–" if v is None else str(v)))
                 for c, v in zip(df.columns, row)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render(q) -> str:
    f = q.figures
    if q.kind == "agreement":
        return "\n".join([
            f"**Quality: agreement with {q.basis}** (the input has no truth column).", "",
            f"The local labels agree with {_pct(f['agreement'])} of {int(f['agreement_n'])} {q.basis} "
            f"(95 % Wilson interval {_pct(f['agreement_low'])} – {_pct(f['agreement_high'])}).",
            "", *_table(q.per_category, {"agreement"})])
    if q.kind != "truth":
        return "**Quality:** not measured (no truth column and no held-out reasoning labels)."
    yes = {1.0: "yes", 0.0: "no"}
    lines = [
        "**Quality: against the input's truth column**, discovered categories mapped one-to-one to true "
        "ones (Hungarian assignment, noise as one class); unmapped or mostly-noise categories count as errors.",
        "",
        f"- macro-F1 {_num(f['macro_f1'])}, accuracy {_pct(f['accuracy'])} over {int(f['n_segments']):,} segments",
        f"- primary ranking: Spearman {_num(f['spearman_primary'])}, top-2 correct "
        f"{yes.get(f['top2_correct'], '–')}, top-3 correct {yes.get(f['top3_correct'], '–')}, "
        f"share error max {_pct(f['primary_share_max_error'])}",
        f"- noise: {_pct(f['noise_seen_share'])} labelled off-topic vs {_pct(f['noise_true_share'])} true; "
        f"{_pct(f['noise_recovered'])} of true noise recovered",
        (f"- secondary share error: mean {_pct(f['secondary_share_mae'])}, max {_pct(f['secondary_share_max_error'])}"
         if f.get("secondary_scored", 1.0) else "- no secondary truth column: secondary shares not scored"),
        f"- {int(f['n_discovered'])} discovered categories; unmapped: {', '.join(q.unmapped) or 'none'}; "
        f"mostly noise: {int(f['n_mostly_noise'])}; true categories missed: {int(f['n_missed'])}",
        "", "Ranking as a reader sees it, next to the truth:", "",
        *_table(q.ranking_check, {"seen_share", "true_share", "share_error"}),
        "", "Per category:", "",
        *_table(q.per_category, {"precision", "recall", "f1", "seen_secondary_share", "true_secondary_share",
                                 "secondary_error"}),
    ]
    return "\n".join(lines)
