"""`%%auto`: local first, escalate to reasoning only where the local answer is unsure.

A cascade in two passes of the one dispatcher (cache, budget, ledger as usual):

1. every prompt runs on ``local`` with a confidence — with ``choices``, the
   probability the local model gives its label (``Response.confidence``); for
   free text, the agreement of two local samples (greedy and one at temperature
   0.7: identical answers → 1.0, otherwise their similarity ratio);
2. prompts whose confidence is under ``threshold`` (or whose local call failed)
   go to ``reason``.

Ledger rows of both passes carry ``via="auto"``; pass-2 rows are
``escalated`` and keep the local confidence that sent them.  The threshold is
the argument, else the one :func:`hybridnb.calibrate` found in this session,
else :data:`DEFAULT_THRESHOLD`.
"""

from __future__ import annotations

import difflib
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .calls import route_overrides, template_hash
from .context import cell_tags
from .dispatcher import get_dispatcher
from .loop import run_sync
from .response import Response, money
from ..errors import HybridnbError
from ..types import Request

#: escalate answers less confident than this when nothing was calibrated
DEFAULT_THRESHOLD = 0.8
#: the second free-text sample's temperature (agreement = confidence)
SAMPLE_TEMPERATURE = 0.7

_calibrated: dict[str, float] = {}


def set_threshold(value: float | None) -> None:
    """Make ``value`` this session's default threshold (``None`` forgets it)."""
    if value is None:
        _calibrated.pop("threshold", None)
    else:
        _calibrated["threshold"] = float(value)


def current_threshold(threshold: float | None = None) -> float:
    """The threshold in force: the argument, else the calibrated one, else the default."""
    if threshold is None:
        return _calibrated.get("threshold", DEFAULT_THRESHOLD)
    t = float(threshold)
    if not 0.0 <= t <= 1.0 + 1e-9:
        raise HybridnbError(f"the auto threshold is a confidence between 0 and 1, not {threshold!r}")
    return t


def agreement(a: str, b: str) -> float:
    """How far two free-text samples agree: 1.0 when equal (case/space-insensitive)."""
    x, y = " ".join(a.lower().split()), " ".join(b.lower().split())
    if x == y:
        return 1.0
    return difflib.SequenceMatcher(None, x, y).ratio()


@dataclass
class AutoStats:
    """What a cascade did and what it saved against sending everything to reason."""

    rows: int
    threshold: float
    escalated: int = 0
    unscored: int = 0  # local answers without a confidence (escalated as unsure)
    failed: int = 0
    local_usd: float = 0.0
    reason_usd: float = 0.0
    all_reason_usd: float = 0.0  # what reason would have cost for every row (escalated rows: actual)
    reason_usd_value: float = 0.0  # escalated rows at list price (cache hits count what they saved)
    elapsed_s: float = 0.0

    @property
    def spent_usd(self) -> float:
        return self.local_usd + self.reason_usd

    @property
    def escalation_rate(self) -> float:
        return self.escalated / self.rows if self.rows else 0.0

    @property
    def saved_usd(self) -> float:
        return self.all_reason_usd - self.spent_usd

    def line(self) -> str:
        """The cell footer: escalation rate, spend by route, saving vs all-reason."""
        share = f" (spent {self.spent_usd / self.all_reason_usd:.0%} of it)" if self.all_reason_usd > 0 else ""
        parts = [f"%%auto: {self.rows:,} rows",
                 f"{self.escalated:,} escalated to %%reason ({self.escalation_rate:.1%}) under confidence "
                 f"{self.threshold:.2f}",
                 f"spent {money(self.spent_usd)} (local {money(self.local_usd)} + reason "
                 f"{money(self.reason_usd)})",
                 f"all-reason ~{money(self.all_reason_usd)}, saved ~{money(self.saved_usd)}{share}"]
        if self.unscored:
            parts.append(f"{self.unscored:,} local answers had no confidence")
        if self.failed:
            parts.append(f"{self.failed:,} failed")
        return " · ".join(parts)


@dataclass
class Cascade:
    """Per-row outcome of a cascade (lists aligned with the prompts)."""

    answers: list[str | None]
    confidence: list[float | None]
    route: list[str]
    escalated: list[bool]
    cost_usd: list[float]
    cached: list[bool]
    error: list[str | None]
    local: list[Response | None]
    final: list[Response | None]
    stats: AutoStats
    extra: dict[str, Any] = field(default_factory=dict)


def _confidence(resp: Response | None, second: Response | None, choices) -> float | None:
    if resp is None or not resp.ok:
        return 0.0
    if choices:
        return resp.confidence
    if second is None or not second.ok:
        return 0.0
    return agreement(resp.text, second.text)


def _value(resp: Response | None) -> float:
    """What a call is worth at list price: its cost, or what a cache hit saved."""
    return 0.0 if resp is None else resp.cost_usd + resp.saved_usd


def run_cascade(prompts: Sequence[str], *, choices: Sequence[str] | None = None, threshold: float | None = None,
                system: str | None = None, max_tokens: int | None = None, cache: bool | None = None,
                force: bool = False, tags: Mapping[str, Any] | None = None, progress: bool = True,
                local: Mapping[str, Any] | None = None, reason: Mapping[str, Any] | None = None,
                escalate_all: bool = False) -> Cascade:
    """Run ``prompts`` local first and escalate the unsure ones; see the module docstring.

    ``local`` / ``reason``: per-route options (``model``, ``backend``, ``base_url``);
    ``escalate_all`` sends every row to reason too (calibration).
    """
    t0 = time.monotonic()
    t = current_threshold(threshold)
    d = get_dispatcher()
    lt = d.resolve("local", route_overrides("local", max_tokens=max_tokens, **dict(local or {})))
    rt = d.resolve("reason", route_overrides("reason", max_tokens=max_tokens, **dict(reason or {})))
    base = {**cell_tags(), "via": "auto", **dict(tags or {})}
    ch = tuple(choices) if choices else None
    n = len(prompts)
    bar = _bar(n, progress)
    reqs = [Request(p, lt.model, system, max_tokens or lt.rs.max_tokens, 0.0, ch, None, base) for p in prompts]
    if not ch:  # free text: a second sample; agreement is the confidence
        reqs += [Request(p, lt.model, system, max_tokens or lt.rs.max_tokens, SAMPLE_TEMPERATURE, None, None, base)
                 for p in prompts]
    first = _run(d, reqs, lt, cache, force, bar, count_upto=n)
    local_resp, second = first[:n], (first[n:] if not ch else [None] * n)
    conf = [_confidence(a, b, ch) for a, b in zip(local_resp, second)]
    stats = AutoStats(rows=n, threshold=t)
    stats.unscored = sum(1 for c in conf if c is None)
    if stats.unscored:
        print(f"hybridnb: %%auto — {stats.unscored:,} local answers came without probabilities "
              f"(backend {lt.backend_name}); they escalate as unsure", file=sys.stderr)
    up = [i for i, c in enumerate(conf) if escalate_all or c is None or c < t]
    ereqs = [Request(prompts[i], rt.model, system, max_tokens or rt.rs.max_tokens, 0.0, ch, None,
                     {**base, "escalated": True, "confidence": conf[i]}) for i in up]
    if bar is not None and bar.bar is not None:
        bar.bar.total = n + len(up)
    escalated = _run(d, ereqs, rt, cache, force, bar) if ereqs else []
    if bar is not None:
        bar.close()
    out = _assemble(prompts, local_resp, second, conf, up, escalated, stats)
    out.extra["second"] = second
    stats.all_reason_usd = stats.reason_usd_value + _reason_estimate(d, rt, reqs[:n], up, escalated)
    stats.elapsed_s = time.monotonic() - t0
    return out


def _bar(n: int, progress: bool):
    if not progress or not n:
        return None
    from ..batch.progress import Progress

    p = Progress(n, desc="%%auto")
    return p.bar and p


def _run(d, reqs: list[Request], target, cache, force, bar, count_upto: int | None = None) -> list[Response]:
    use_cache = target.settings["cache"] if cache is None else cache

    def tick(i: int, resp: Response) -> None:
        if bar is not None:
            bar.update(resp.cost_usd, failed=not resp.ok, n=1 if count_upto is None or i < count_upto else 0)

    return run_sync(d.arun(reqs, target, cache=use_cache, force=force, on_result=tick))


def _assemble(prompts, local_resp, second, conf, up, escalated, stats: AutoStats) -> Cascade:
    n = len(prompts)
    final: list[Response | None] = list(local_resp)
    esc = [False] * n
    for i, resp in zip(up, escalated):
        final[i], esc[i] = resp, True
    cost = [(a.cost_usd if a else 0.0) + (b.cost_usd if b else 0.0) for a, b in zip(local_resp, second)]
    stats.local_usd = sum(cost)
    for i, resp in zip(up, escalated):
        cost[i] += resp.cost_usd
        stats.reason_usd += resp.cost_usd
        stats.reason_usd_value += _value(resp)
    stats.escalated = len(up)
    answers = [r.text if r is not None and r.ok else None for r in final]
    errors = [None if r is not None and r.ok else f"{type(r.error).__name__}: {r.error}" if r else "not sent"
              for r in final]
    stats.failed = sum(e is not None for e in errors)
    return Cascade(answers=answers, confidence=conf, route=[r.route if r else "local" for r in final],
                   escalated=esc, cost_usd=cost, cached=[bool(r and r.cached) for r in final], error=errors,
                   local=list(local_resp), final=final, stats=stats)


def _reason_estimate(d, rt, local_reqs: list[Request], up: list[int], escalated: list[Response]) -> float:
    """Reason's price for the rows that stayed local: the token estimate, scaled by how far the
    estimate was off on the escalated rows (their actual price is known)."""
    up_set = set(up)
    stay = [Request(r.prompt, rt.model, r.system, r.max_tokens, r.temperature, r.choices, None)
            for i, r in enumerate(local_reqs) if i not in up_set]
    if not stay:
        return 0.0
    est = d.estimate(stay, rt)
    seen = [Request(local_reqs[i].prompt, rt.model, local_reqs[i].system, local_reqs[i].max_tokens, 0.0,
                    local_reqs[i].choices, None) for i in up]
    seen_est = d.estimate(seen, rt) if seen else 0.0
    actual = sum(_value(r) for r in escalated if r.ok)
    if seen_est > 0 and actual > 0:
        est *= actual / seen_est
    return est


# ---- the public API ----------------------------------------------------------
class AutoResponse(Response):
    """A Response from :func:`auto`, with the cascade's decision on it."""

    escalated: bool = False
    local_confidence: float | None = None
    threshold: float = DEFAULT_THRESHOLD
    stats: AutoStats | None = None

    def footer(self) -> str:
        why = (f"escalated: local confidence {self._conf()} < {self.threshold:.2f}" if self.escalated
               else f"kept local: confidence {self._conf()} ≥ {self.threshold:.2f}")
        return f"%%auto ({why}) · " + super().footer()

    def _conf(self) -> str:
        return "unknown" if self.local_confidence is None else f"{self.local_confidence:.2f}"


def auto(prompt: str, *, choices: Sequence[str] | None = None, threshold: float | None = None,
         system: str | None = None, max_tokens: int | None = None, cache: bool | None = None,
         force: bool = False, template: str | None = None, raise_errors: bool = True,
         local: Mapping[str, Any] | None = None, reason: Mapping[str, Any] | None = None) -> AutoResponse:
    """One prompt through the cascade: local first, reason when the local answer is unsure."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise HybridnbError("the prompt is empty")
    tags = {"template": template_hash(template or prompt)}
    c = run_cascade([prompt], choices=choices, threshold=threshold, system=system, max_tokens=max_tokens,
                    cache=cache, force=force, tags=tags, progress=False, local=local, reason=reason)
    resp = c.final[0]
    out = AutoResponse(**{k: getattr(resp, k) for k in Response.__dataclass_fields__})
    out.escalated, out.local_confidence, out.threshold, out.stats = (
        c.escalated[0], c.confidence[0], c.stats.threshold, c.stats)
    if raise_errors and out.error is not None:
        raise out.error
    return out


def auto_map(data: Any, template: str, *, choices: Sequence[str] | None = None, threshold: float | None = None,
             system: str | None = None, max_tokens: int | None = None, cache: bool | None = None,
             force: bool = False, progress: bool = True, output_prefix: str = "", columns=None,
             variables: Mapping[str, Any] | None = None, con: Any = None, name: str | None = None,
             verbose: bool = True, local: Mapping[str, Any] | None = None,
             reason: Mapping[str, Any] | None = None):
    """``hybridnb.map(data, template, route="auto")``: the cascade over rows.

    Returns ``data`` plus ``answer, confidence, route, escalated, cost_usd,
    cached, error``; the summary line is printed and kept on ``.attrs``-free
    frames as :func:`last_stats`.
    """
    from ..batch import frames
    from ..batch.runner import prepare_template, render_row
    from .constraints import check_choices

    choices = check_choices(choices)
    frame = frames.load(data, con, name)
    tmpl, used, consts = prepare_template(template, frame.columns, columns, variables)
    prompts, rows, bad = [], [], {}
    for i, row in enumerate(frame.rows(used)):
        try:
            prompts.append(render_row(tmpl, row, consts))
            rows.append(i)
        except HybridnbError as e:
            bad[i] = f"{type(e).__name__}: {e}"
    tags = {"template": template_hash(template), "batch": uuid.uuid4().hex[:12]}
    c = run_cascade(prompts, choices=choices, threshold=threshold, system=system, max_tokens=max_tokens,
                    cache=cache, force=force, tags=tags, progress=progress, local=local, reason=reason)
    _last["stats"] = c.stats
    if verbose:
        print(c.stats.line(), flush=True)
    n = len(frame)
    cols: dict[str, list] = {k: [None] * n for k in ("answer", "confidence", "route", "escalated", "cost_usd",
                                                     "cached", "error")}
    for j, i in enumerate(rows):
        for k, src in (("answer", c.answers), ("confidence", c.confidence), ("route", c.route),
                       ("escalated", c.escalated), ("cost_usd", c.cost_usd), ("cached", c.cached),
                       ("error", c.error)):
            cols[k][i] = src[j]
    for i, msg in bad.items():
        cols["error"][i], cols["escalated"][i], cols["cost_usd"][i], cols["cached"][i] = msg, False, 0.0, False
    return frame.with_columns({f"{output_prefix}{k}": v for k, v in cols.items()})


_last: dict[str, AutoStats] = {}


def last_stats() -> AutoStats | None:
    """The stats of this session's last ``%%auto`` batch (escalation rate, saving)."""
    return _last.get("stats")


def _register() -> None:
    from ..batch import runner

    runner.ROUTES["auto"] = auto_map  # hybridnb.map(..., route="auto")


_register()
