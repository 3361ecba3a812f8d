"""A batch's per-row results: answers as the dispatcher delivers them, checks, and the output columns."""

from __future__ import annotations

import json as _json
from typing import Any, Mapping

from ..errors import InvalidAnswer
from .progress import Progress


# ---- results ----------------------------------------------------------------
class Results:
    """Per-row answers as the dispatcher delivers them (from its loop thread)."""

    def __init__(self, n: int, stats, bar: Progress | None, choices, schema_check):
        self.answer: list[Any] = [None] * n
        self.tin = [0] * n
        self.tout = [0] * n
        self.cost = [0.0] * n
        self.cached = [False] * n
        self.error: list[str | None] = [None] * n
        self.json: list[Any] = [None] * n
        self.confidence: list[float | None] = [None] * n  # choices: probability of the answer
        self.sent_done, self.sent_cost = 0, 0.0  # rows answered by the backend (not the cache)
        self.done = [False] * n
        self.rows: list[int] = []  # request index → row index
        self.stats = stats
        self.bar = bar
        self.choices = choices
        self.schema_check = schema_check

    def fail(self, i: int, err: BaseException) -> None:
        self.error[i] = f"{type(err).__name__}: {err}"
        self.done[i] = True
        st = self.stats
        st.done += 1
        st.failed += 1
        st.errors[type(err).__name__] += 1
        st.examples.setdefault(type(err).__name__, str(err))
        if self.bar is not None:
            self.bar.update(0.0, failed=True)

    def _project(self, cost: float) -> None:
        """Revise the batch's cost from the actual cost per sent row so far (shown on the bar)."""
        st = self.stats
        self.sent_done += 1
        self.sent_cost += cost
        st.projected_usd = self.sent_cost / self.sent_done * max(st.to_send, self.sent_done)
        if st.projected_at_5pct is None and self.sent_done >= max(1, 0.05 * st.to_send):
            st.projected_at_5pct = st.projected_usd
        if self.bar is not None:
            self.bar.projected_usd = st.projected_usd

    def on_response(self, j: int, resp) -> None:
        """Dispatcher callback: request ``j`` finished."""
        i = self.rows[j]
        cost = resp.cost_usd
        st = self.stats
        self.tin[i] = resp.usage.input_tokens if not resp.cached else 0
        self.tout[i] = resp.usage.output_tokens if not resp.cached else 0
        self.cost[i] = cost
        self.cached[i] = bool(resp.cached)
        st.spent_usd += cost
        if not resp.cached:
            self._project(cost)
        st.saved_usd += resp.saved_usd
        err = resp.error
        text = resp.text
        value = resp.json
        if err is None and self.choices and text not in self.choices:
            from ..backends._openai import match_choice

            label = match_choice(text, self.choices)
            if label is None:
                err = InvalidAnswer(f"answer {text[:60]!r} is not one of choices {', '.join(self.choices)}")
            text = label
        if err is None and self.schema_check is not None:
            value, err = self.schema_check(text, value)
        if err is not None:
            self.fail(i, err)
            if self.bar is not None and cost:
                self.bar.update(cost, n=0)
            return
        self.answer[i] = text
        self.json[i] = value
        self.confidence[i] = resp.confidence
        self.done[i] = True
        st.done += 1
        if resp.cached:
            st.cached += 1
        else:
            st.ok += 1
        if self.bar is not None:
            self.bar.update(cost)


def schema_checker(schema: Mapping[str, Any] | None):
    if not schema:
        return None
    try:
        import jsonschema

        validator = jsonschema.validators.validator_for(schema)(schema)
    except Exception:  # jsonschema missing or the schema is not one it knows: parse only
        validator = None

    def check(text: str, value: Any):
        if value is None:
            try:
                value = _json.loads(text)
            except ValueError:
                return None, InvalidAnswer(f"answer is not valid JSON: {text[:60]!r}")
        if validator is not None:
            problem = next(iter(validator.iter_errors(value)), None)
            if problem is not None:
                return None, InvalidAnswer(f"answer breaks the JSON schema: {problem.message[:120]}")
        return value, None

    return check


def output_columns(res: Results, prefix: str, choices, schema, kind: str) -> dict[str, Any]:
    p = prefix
    answer: Any = res.answer
    if choices:
        if kind == "polars":
            import polars as pl

            answer = pl.Series(f"{p}answer", res.answer, dtype=pl.Enum(list(choices)))
        else:
            import pandas as pd

            answer = pd.Categorical(res.answer, categories=list(choices))
    cols: dict[str, Any] = {f"{p}answer": answer, f"{p}input_tokens": res.tin, f"{p}output_tokens": res.tout,
                            f"{p}cost_usd": res.cost, f"{p}cached": res.cached, f"{p}error": res.error}
    if choices:
        cols[f"{p}confidence"] = res.confidence
        if kind == "polars":
            import polars as pl

            cols[f"{p}confidence"] = pl.Series(f"{p}confidence", res.confidence, dtype=pl.Float64)
    if schema:
        props = list((schema.get("properties") or {}).keys())
        if props:
            for name in props:
                cols[f"{p}{name}"] = column([v.get(name) if isinstance(v, dict) else None for v in res.json],
                                             kind, f"{p}{name}")
        else:
            cols[f"{p}json"] = [None if v is None else _json.dumps(v) for v in res.json]
    return cols


def column(values: list, kind: str, name: str):
    if kind != "polars":
        return values
    import polars as pl

    try:
        return pl.Series(name, values, strict=False)
    except Exception:  # mixed nested values: keep them as JSON text
        return pl.Series(name, [None if v is None else _json.dumps(v) for v in values])


def assemble(frame, res: Results, prefix, choices, schema, keep, say):
    cols = output_columns(res, prefix, choices, schema, frame.kind)
    clash = [c for c in cols if c in frame.columns]
    if clash:
        say(f"note: the result replaces the input's {', '.join(clash)} column(s) "
            f"(pass output_prefix= to keep both)")
    return frame.with_columns(cols, keep)


