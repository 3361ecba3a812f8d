"""Operator advice derived from the ledger and live metrics.

Four rules, each returning :class:`Advice` with the numbers that triggered it:

* ``add_capacity``  — queue wait sustained above a threshold, or the backend's
  own saturation (vLLM ``num_requests_waiting`` / ``kv_cache_usage_perc``);
* ``idle_capacity`` — compute-priced time held mostly idle (busy/held low);
* ``move_the_work`` — one prompt template run on ``reason`` many times with
  stable answers, and moving it to local pays off (break-even shown);
* ``dont_reason_twice`` — identical prompts billed more than once.

All thresholds live in :class:`Thresholds` so callers (and tests) can tune them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from .render import money, utilisation


@dataclass
class Thresholds:
    """Tunable limits for every advice rule."""

    #: add capacity: median queue wait (s) over the recent window
    wait_s: float = 2.0
    #: add capacity: at least this many calls started before a wait counts as sustained
    min_wait_samples: int = 10
    #: add capacity: vLLM requests waiting
    waiting_requests: float = 8
    #: add capacity: vLLM KV-cache usage (fraction, 0..1)
    kv_cache_usage: float = 0.9
    #: idle capacity: busy / held below this fraction ...
    min_utilisation: float = 0.3
    #: ... over at least this much held time (s)
    min_held_s: float = 60.0
    #: move the work: billed calls of one template on route "reason"
    min_template_calls: int = 20
    #: move the work: share of answers that repeat within the template
    min_answer_repeat: float = 0.8
    #: move the work: one-off cost of standing up local (GPU time, distillation)
    setup_usd: float = 2.0
    #: move the work: local $ per row when the ledger has no local rows yet
    local_usd_per_row: float = 0.00002
    #: move the work: rows still to run when the caller does not say
    remaining_rows: int = 10_000
    #: don't reason twice: billed repeats of identical prompts
    min_repeat_calls: int = 2
    #: the routes that bill tokens / run locally
    reason_route: str = "reason"
    local_route: str = "local"


@dataclass
class Advice:
    """One piece of advice, with the numbers behind it."""

    kind: str
    title: str
    message: str
    numbers: dict[str, Any] = field(default_factory=dict)
    route: str = ""
    backend: str = ""
    severity: str = "warn"  # "info" | "warn" | "critical"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- live rules


def _first(d: dict, *keys: str):
    return next((d[k] for k in keys if d.get(k) is not None), None)


def _saturation(bm: dict) -> tuple[float | None, float | None]:
    """(requests waiting, KV-cache usage 0..1) from a backend's metrics, either naming."""
    waiting = _first(bm, "requests_waiting", "num_requests_waiting")
    kv = _first(bm, "kv_cache_usage", "kv_cache_usage_perc", "gpu_cache_usage_perc")
    if kv is not None and kv > 1:  # reported in percent
        kv = kv / 100
    return waiting, kv


def add_capacity(lanes: Iterable[dict], t: Thresholds) -> list[Advice]:
    """Queue wait or backend saturation above the thresholds."""
    out = []
    for lane in lanes:
        started = (lane.get("finished") or 0) + (lane.get("in_flight") or 0)
        wait = lane.get("wait_p50_s")
        waiting, kv = _saturation(lane.get("backend_metrics") or {})
        reasons = []
        if wait is not None and started >= t.min_wait_samples and wait >= t.wait_s:
            reasons.append(f"median queue wait {wait:.2f} s ≥ {t.wait_s:g} s")
        if waiting is not None and waiting >= t.waiting_requests:
            reasons.append(f"{waiting:g} requests waiting on the server ≥ {t.waiting_requests:g}")
        if kv is not None and kv >= t.kv_cache_usage:
            reasons.append(f"KV cache {kv:.0%} full ≥ {t.kv_cache_usage:.0%}")
        if not reasons:
            continue
        numbers = {
            "wait_p50_s": wait,
            "wait_p95_s": lane.get("wait_p95_s"),
            "queue_depth": lane.get("queue_depth"),
            "in_flight": lane.get("in_flight"),
            "max_concurrency": lane.get("max_concurrency"),
            "started": started,
            "requests_waiting": waiting,
            "kv_cache_usage": kv,
        }
        out.append(
            Advice(
                kind="add_capacity",
                title="Add capacity now",
                message=f"{lane['route']}/{lane['backend']}: " + "; ".join(reasons) + ".",
                numbers=numbers,
                route=lane["route"],
                backend=lane["backend"],
                severity="critical",
            )
        )
    return out


# -------------------------------------------------------------- ledger rules

IDLE_SQL = """
SELECT route, backend, model,
       sum(held_s) AS held_s, sum(busy_s) AS busy_s,
       sum(cost_usd) AS cost_usd, sum(held_s * gpus) / 3600.0 AS gpu_hours
FROM ledger WHERE pricing = 'compute' AND status <> 'cached'
GROUP BY ALL HAVING sum(held_s) > 0
ORDER BY route, backend, model
"""


def idle_capacity(con, t: Thresholds) -> list[Advice]:
    """Compute-priced lanes whose held time is mostly idle."""
    out = []
    for route, backend, model, held, busy, cost, gpuh in con.sql(IDLE_SQL).fetchall():
        util = utilisation(busy, held)
        if held < t.min_held_s or util >= t.min_utilisation:
            continue
        idle_usd = cost * (1 - util)
        out.append(
            Advice(
                kind="idle_capacity",
                title="Idle capacity",
                message=(
                    f"{route}/{backend} {model}: busy {busy:.0f} s of {held:.0f} s held "
                    f"({util:.0%} < {t.min_utilisation:.0%}); ~{money(idle_usd)} paid for idle time."
                ),
                numbers={
                    "held_s": held,
                    "busy_s": busy,
                    "utilisation": util,
                    "cost_usd": cost,
                    "idle_usd": idle_usd,
                    "gpu_hours": gpuh,
                },
                route=route,
                backend=backend,
            )
        )
    return out


TEMPLATE_SQL = """
WITH billed AS (
  SELECT template, answer_hash, prompt_hash, cost_usd FROM ledger
  WHERE route = $route AND status = 'ok' AND template <> ''
), per_answer AS (
  SELECT template, answer_hash, count(*) AS n FROM billed GROUP BY ALL
), answers AS (
  SELECT template, count(*) AS distinct_answers,
         coalesce(sum(n) FILTER (WHERE n > 1 AND answer_hash <> ''), 0) AS repeated
  FROM per_answer GROUP BY template
)
SELECT template, count(*) AS calls, sum(cost_usd) AS cost_usd,
       count(DISTINCT prompt_hash) AS prompts,
       any_value(distinct_answers) AS distinct_answers, any_value(repeated) AS repeated
FROM billed JOIN answers USING (template)
GROUP BY template ORDER BY cost_usd DESC
"""

LOCAL_ROW_SQL = """
SELECT coalesce(sum(coalesce(rows, 1)), 0), coalesce(sum(cost_usd), 0) FROM ledger
WHERE route = $route AND status <> 'cached'
"""


def breakeven_rows(tokens_per_row: float, local_per_row: float, setup_usd: float) -> float:
    """Rows after which local (setup + per-row) is cheaper than tokens; inf if never."""
    gain = tokens_per_row - local_per_row
    if gain <= 0:
        return math.inf
    return setup_usd / gain


def local_usd_per_row(con, t: Thresholds) -> tuple[float, str]:
    """Measured local $/row from the ledger, else the configured estimate."""
    rows, cost = con.execute(LOCAL_ROW_SQL, {"route": t.local_route}).fetchone()
    if rows and cost > 0:
        return cost / rows, "ledger"
    return t.local_usd_per_row, "estimate"


def move_the_work(con, t: Thresholds, remaining_rows: int | None = None) -> list[Advice]:
    """Templates repeated on the reasoning route with stable answers, where local pays."""
    remaining = t.remaining_rows if remaining_rows is None else remaining_rows
    local_row, local_src = local_usd_per_row(con, t)
    out = []
    rows = con.execute(TEMPLATE_SQL, {"route": t.reason_route}).fetchall()
    for template, calls, cost, prompts, distinct, repeated in rows:
        repeat_share = repeated / calls if calls else 0.0
        if calls < t.min_template_calls or repeat_share < t.min_answer_repeat:
            continue
        if prompts < 2:  # one prompt asked again and again: that is "don't reason twice"
            continue
        token_row = cost / calls
        be = breakeven_rows(token_row, local_row, t.setup_usd)
        if be > remaining:
            continue
        proj_tokens = token_row * remaining
        proj_local = t.setup_usd + local_row * remaining
        out.append(
            Advice(
                kind="move_the_work",
                title="Move the work to local",
                message=(
                    f"template {template[:12]} ran {calls}× on {t.reason_route} with stable answers "
                    f"({repeat_share:.0%} repeat, {distinct} distinct); so far {money(cost)}. "
                    f"For {remaining:,} more rows: tokens {money(proj_tokens)} vs local "
                    f"{money(proj_local)} (incl. {money(t.setup_usd)} set-up); "
                    f"break-even at {math.ceil(be):,} rows."
                ),
                numbers={
                    "template": template,
                    "calls": calls,
                    "distinct_prompts": prompts,
                    "cost_so_far_usd": cost,
                    "distinct_answers": distinct,
                    "answer_repeat_share": repeat_share,
                    "tokens_usd_per_row": token_row,
                    "local_usd_per_row": local_row,
                    "local_usd_per_row_source": local_src,
                    "setup_usd": t.setup_usd,
                    "remaining_rows": remaining,
                    "projected_tokens_usd": proj_tokens,
                    "projected_local_usd": proj_local,
                    "projected_saving_usd": proj_tokens - proj_local,
                    "breakeven_rows": math.ceil(be),
                },
                route=t.reason_route,
                severity="info",
            )
        )
    return out


REPEAT_SQL = """
SELECT route, count(DISTINCT prompt_hash) AS prompts,
       sum(n - 1) AS repeats, sum(wasted) AS wasted_usd
FROM (
  SELECT route, prompt_hash, count(*) AS n,
         sum(cost_usd) - arg_min(cost_usd, ts) AS wasted
  FROM ledger
  WHERE status = 'ok' AND prompt_hash <> ''
  GROUP BY ALL HAVING count(*) > 1
) GROUP BY route ORDER BY route
"""


def dont_reason_twice(con, t: Thresholds) -> list[Advice]:
    """Identical prompts that were billed again instead of served from cache."""
    out = []
    for route, prompts, repeats, wasted in con.sql(REPEAT_SQL).fetchall():
        if repeats < t.min_repeat_calls:
            continue
        out.append(
            Advice(
                kind="dont_reason_twice",
                title="Don't reason twice",
                message=(
                    f"{route}: {repeats} repeated calls of {prompts} identical prompt(s) were "
                    f"billed again ({money(wasted)}); turn the cache on."
                ),
                numbers={"prompts": prompts, "repeat_calls": int(repeats), "wasted_usd": wasted},
                route=route,
            )
        )
    return out


AUTO_SQL = """
SELECT count(DISTINCT batch || prompt_hash) FILTER (route = 'local')                     AS rows_,
       count(*) FILTER (route = 'reason' AND escalated)                                  AS escalated,
       coalesce(sum(cost_usd), 0)                                                        AS spent,
       coalesce(sum(cost_usd + saved_usd) FILTER (route = 'reason' AND escalated AND status = 'ok'), 0) AS value,
       count(*) FILTER (route = 'reason' AND escalated AND status = 'ok')                 AS reason_ok
FROM ledger WHERE via = 'auto' AND status <> 'unsettled'
"""


def auto_escalation(con, t: Thresholds) -> list[Advice]:
    """What `%%auto` did (core/auto.py): rows, escalation rate, spend, and the saving against sending every
    row to reason, priced at what the escalated rows cost per row."""
    rows, esc, spent, value, ok = con.sql(AUTO_SQL).fetchall()[0]
    if not rows:
        return []
    msg = f"{rows:,} rows, {esc:,} escalated to %%reason ({esc / rows:.0%}), spent ${spent:.4f}"
    numbers = {"rows": rows, "escalated": esc, "escalation_rate": esc / rows, "spent_usd": spent}
    if ok:
        all_reason = value / ok * rows
        msg += f"; all-reason ~${all_reason:.4f}, saved ~${all_reason - spent:.4f}"
        numbers.update(all_reason_usd=all_reason, saved_usd=all_reason - spent)
    return [Advice(kind="auto", title="%%auto", message=msg, numbers=numbers, route=t.local_route,
                   severity="info")]


def compute_advice(
    con=None,
    lanes: Iterable[dict] = (),
    thresholds: Thresholds | None = None,
    remaining_rows: int | None = None,
) -> list[Advice]:
    """Every rule over one ledger connection (may be None) and live lanes."""
    t = thresholds or Thresholds()
    out = add_capacity(lanes, t)
    if con is not None:
        out += idle_capacity(con, t)
        out += move_the_work(con, t, remaining_rows)
        out += dont_reason_twice(con, t)
        out += auto_escalation(con, t)
    return out
