"""Find the cheapest `%%auto` threshold that reaches a target accuracy on a labelled sample.

``hybridnb.calibrate(df, "Ticket {text}", truth="label", choices=[...], target_accuracy=0.95)``
runs every row on both routes (local with its confidence, reason), then for each
threshold — between consecutive local confidences — computes what the cascade
would have answered and cost: rows under the threshold take reason's answer and
add reason's price.  The chosen threshold becomes this session's `%%auto` default.
Costs are list prices (a cache hit counts what it saved), so re-running is free
and gives the same curve.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .auto import run_cascade, set_threshold
from .calls import template_hash
from .response import money
from ..errors import HybridnbError


@dataclass
class Calibration:
    """The chosen threshold, its accuracy and cost, and the whole accuracy/cost curve."""

    threshold: float
    accuracy: float
    cost_usd: float
    escalation_rate: float
    target_accuracy: float
    reached: bool
    local_accuracy: float
    reason_accuracy: float
    all_reason_usd: float
    curve: Any  # polars: threshold, escalated, escalation_rate, accuracy, cost_usd, cost_share

    @property
    def cost_share(self) -> float:
        return self.cost_usd / self.all_reason_usd if self.all_reason_usd else 0.0

    def line(self) -> str:
        verdict = "reaches" if self.reached else "cannot reach"
        return (f"calibrated %%auto threshold {self.threshold:.3f} {verdict} {self.target_accuracy:.1%}: "
                f"accuracy {self.accuracy:.1%} at {money(self.cost_usd)} = {self.cost_share:.0%} of all-reason "
                f"({money(self.all_reason_usd)}, accuracy {self.reason_accuracy:.1%}); escalates "
                f"{self.escalation_rate:.1%}; local alone {self.local_accuracy:.1%}")

    def __repr__(self) -> str:
        return self.line()

    def chart(self):
        """Altair: accuracy against cost for every threshold, the target and the choice marked."""
        import altair as alt
        import polars as pl

        data = self.curve.to_pandas()
        base = alt.Chart(data).encode(
            x=alt.X("cost_share:Q", title="cost (share of all-reason)", axis=alt.Axis(format="%")),
            y=alt.Y("accuracy:Q", title="accuracy", scale=alt.Scale(zero=False), axis=alt.Axis(format="%")),
            tooltip=["threshold:Q", "escalation_rate:Q", "accuracy:Q", "cost_usd:Q"])
        line = base.mark_line(point=False)
        chosen = pl.DataFrame({"cost_share": [self.cost_share], "accuracy": [self.accuracy],
                               "threshold": [self.threshold]}).to_pandas()
        dot = alt.Chart(chosen).mark_point(size=120, filled=True, color="crimson").encode(
            x="cost_share:Q", y="accuracy:Q", tooltip=["threshold:Q"])
        rule = alt.Chart(pl.DataFrame({"target": [self.target_accuracy]}).to_pandas()).mark_rule(
            strokeDash=[4, 4], color="gray").encode(y="target:Q")
        return (line + rule + dot).properties(
            title=f"%%auto: accuracy vs cost (threshold {self.threshold:.3f})", width=420, height=260)


def curve(conf: Sequence[float | None], local_ok: Sequence[bool], reason_ok: Sequence[bool],
          local_usd: Sequence[float], reason_usd: Sequence[float]):
    """Accuracy and cost of the cascade at every distinct threshold (polars, cheapest first)."""
    import numpy as np
    import polars as pl

    n = len(conf)
    if n == 0:
        raise HybridnbError("calibration needs at least one labelled row")
    c = np.array([-1.0 if x is None else float(x) for x in conf])
    order = np.argsort(c, kind="stable")
    c = c[order]
    lo = np.asarray(local_ok, dtype=float)[order]
    ro = np.asarray(reason_ok, dtype=float)[order]
    rc = np.asarray(reason_usd, dtype=float)[order]
    # escalate the k least confident rows, k = 0..n, at tie boundaries only
    esc_right = np.concatenate([[0.0], np.cumsum(ro)])
    kept_right = np.concatenate([[lo.sum()], lo.sum() - np.cumsum(lo)])
    esc_cost = np.concatenate([[0.0], np.cumsum(rc)])
    ks = [0] + [k for k in range(1, n) if c[k] > c[k - 1]] + [n]
    # thresholds sit halfway between confidences, so a row's confidence is never on the edge
    thr = [0.0 if k == 0 else float(c[-1]) + 1e-9 if k == n else float(c[k - 1] + c[k]) / 2 for k in ks]
    ks_a = np.array(ks)
    local_total = float(np.sum(local_usd))
    return pl.DataFrame({
        "threshold": thr, "escalated": ks_a, "escalation_rate": ks_a / n,
        "accuracy": (esc_right[ks_a] + kept_right[ks_a]) / n,
        "cost_usd": local_total + esc_cost[ks_a],
    })


def choose(cv, target_accuracy: float) -> tuple[dict, bool]:
    """The cheapest row of ``cv`` at or above the target (else the most accurate), and whether it reached."""
    import polars as pl

    ok = cv.filter(pl.col("accuracy") >= target_accuracy - 1e-12)
    if ok.height:
        return ok.sort(["cost_usd", "threshold"]).row(0, named=True), True
    return cv.sort(["accuracy", "cost_usd"], descending=[True, False]).row(0, named=True), False


def _norm(r) -> str | None:
    return r.text.strip().lower() if r is not None and r.ok else None


def _value(r) -> float:
    return 0.0 if r is None else r.cost_usd + r.saved_usd


def calibrate(data: Any, template: str, *, truth: str, choices: Sequence[str] | None = None,
              target_accuracy: float = 0.95, system: str | None = None, cache: bool | None = None,
              progress: bool = True, apply: bool = True, con: Any = None,
              local: Mapping[str, Any] | None = None, reason: Mapping[str, Any] | None = None) -> Calibration:
    """Run ``template`` over the labelled ``data`` on both routes; pick the cheapest threshold
    whose accuracy against column ``truth`` reaches ``target_accuracy`` (made the session's
    `%%auto` default unless ``apply=False``)."""
    from ..batch import frames
    from ..batch.runner import prepare_template, render_row
    from .constraints import check_choices

    if not 0 < target_accuracy <= 1:
        raise HybridnbError(f"target_accuracy is a fraction in (0, 1], not {target_accuracy!r}")
    choices = check_choices(choices)
    frame = frames.load(data, con)
    if truth not in frame.columns:
        raise HybridnbError(f"truth={truth!r} is not a column; columns are: {', '.join(frame.columns)}")
    tmpl, used, consts = prepare_template(template, frame.columns)
    rows = list(frame.rows(list(dict.fromkeys(used + [truth]))))
    prompts = [render_row(tmpl, {k: r[k] for k in used}, consts) for r in rows]
    labels = [str(r[truth]).strip().lower() for r in rows]
    c = run_cascade(prompts, choices=choices, system=system, cache=cache, progress=progress,
                    tags={"template": template_hash(template), "via": "calibrate"}, escalate_all=True,
                    local=local, reason=reason)
    local_ok = [_norm(r) == t for r, t in zip(c.local, labels)]
    reason_ok = [_norm(r) == t for r, t in zip(c.final, labels)]
    local_usd = [_value(r) + _value(s) for r, s in zip(c.local, c.extra.get("second", [None] * len(rows)))]
    cv = curve(c.confidence, local_ok, reason_ok, local_usd, [_value(r) for r in c.final])
    best, reached = choose(cv, target_accuracy)
    all_reason = sum(_value(r) for r in c.final)
    cv = cv.with_columns((cv["cost_usd"] / all_reason if all_reason else cv["cost_usd"] * 0).alias("cost_share"))
    cal = Calibration(threshold=best["threshold"], accuracy=best["accuracy"], cost_usd=best["cost_usd"],
                      escalation_rate=best["escalation_rate"], target_accuracy=target_accuracy, reached=reached,
                      local_accuracy=sum(local_ok) / len(rows), reason_accuracy=sum(reason_ok) / len(rows),
                      all_reason_usd=all_reason, curve=cv)
    if not reached:
        print(f"hybridnb: no threshold reaches {target_accuracy:.1%} on this sample "
              f"(all-reason gets {cal.reason_accuracy:.1%}); using the most accurate one", file=sys.stderr)
    if apply:
        set_threshold(cal.threshold)
    return cal
