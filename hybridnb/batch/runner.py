"""Batch this: one prompt per DataFrame row, with backpressure, resume and labels.

``hybridnb.batch.map(df, "Which concern? {text}", route="local", choices=[...])``
fills the template from each row, sends every distinct prompt once through the
dispatcher (cache, budget, ledger, bounded workers, signals) and returns the
input plus ``answer, input_tokens, output_tokens, cost_usd, cached, error``
(+ one column per JSON-schema property).

* Bad rows (a template that cannot be filled, a null cell, a label outside
  ``choices``, a failed call after retries) get their error in the ``error``
  column; the batch goes on.  A column the template names but the data lacks
  is a :class:`TemplateError` before anything is sent.
* An empty input returns an empty result with the output columns: a filter
  that matched nothing should not break a pipeline (the template is still checked).
* Ctrl-C / a kernel interrupt raises :class:`BatchInterrupted` whose
  ``.partial`` holds every finished row; those rows are already cached and
  ledgered, so running the same batch again continues without paying twice.
"""

from __future__ import annotations

import json as _json
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import frames as _batch_data
from ..core import pricing
from ..core.calls import route_overrides, template_hash
from ..core.context import cell_tags
from ..core.loop import run_sync
from .bulk import bulk_target
from .progress import Progress
from ..core.response import money
from ..core.template import field_names, render
from ..types import Request
from ..store.cache import cache_key
from ..core.dispatcher import get_dispatcher
from ..errors import BudgetExceeded, HybridnbError, InvalidAnswer, TemplateError
from ..core.constraints import check_choices, load_schema

OUTPUT_COLUMNS = ("answer", "input_tokens", "output_tokens", "cost_usd", "cached", "error")
ENGINES = ("local", "ray")
TRANSPORTS = ("bulk", "sdk")


class BatchInterrupted(KeyboardInterrupt):
    """The batch was interrupted; ``.partial`` holds the finished rows, ``.stats`` the counts."""

    def __init__(self, message: str, partial: Any, stats: "BatchStats"):
        super().__init__(message)
        self.partial = partial
        self.stats = stats


@dataclass
class BatchStats:
    """What a batch did: rows, cache hits, failures by error class, dollars, time."""

    rows: int
    route: str = ""
    unique: int = 0
    to_send: int = 0
    done: int = 0
    ok: int = 0
    cached: int = 0
    failed: int = 0
    spent_usd: float = 0.0
    saved_usd: float = 0.0
    elapsed_s: float = 0.0
    interrupted: bool = False
    errors: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    estimate: str = ""
    batch_id: str = ""  # the ``batch`` tag of this run's ledger rows

    @property
    def rate(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def failures(self) -> str:
        """'12 failed: ServerError ×10 (…), InvalidAnswer ×2 (…)', or '' when none failed."""
        if not self.failed:
            return ""
        parts = [f"{cls} ×{n} ({self.examples.get(cls, '')[:90]})" for cls, n in self.errors.most_common()]
        return f"{self.failed:,} failed: " + "; ".join(parts)

    def line(self, name: str | None = None) -> str:
        head = f"{name}: " if name else ""
        verb = "interrupted after" if self.interrupted else "done:"
        parts = [f"{head}%%{self.route} batch {verb} {self.done:,}/{self.rows:,} rows",
                 f"{self.ok:,} answered", f"{self.cached:,} from cache"]
        parts.append(f"{self.failed:,} failed" if self.failed else "0 failed")
        parts.append(f"spent {money(self.spent_usd)}")
        if self.saved_usd:
            parts.append(f"saved {money(self.saved_usd)}")
        parts.append(f"{self.elapsed_s:.1f} s ({self.rate:,.0f} rows/s)")
        out = " · ".join(parts)
        if self.failed:
            out += "\n" + self.failures()
        return out


@dataclass
class BatchResult:
    frame: Any
    stats: BatchStats


# ---- template -------------------------------------------------------------
def prepare_template(template: str, columns: Sequence[str], cols: Sequence[str] | None = None,
                     variables: Mapping[str, Any] | None = None) -> tuple[str, list[str], dict[str, Any]]:
    """(template, columns it uses, constants it uses); TemplateError before anything is sent."""
    if not isinstance(template, str) or not template.strip():
        raise TemplateError("the batch template is empty")
    template = template.strip()
    have = set(columns)
    cols = list(cols or [])
    bad = [c for c in cols if c not in have]
    if bad:
        raise TemplateError(f"--col {bad[0]!r} is not a column; columns are: {_cols(columns)}")
    names = field_names(template)
    if not names:
        if not cols:
            raise TemplateError("the template names no column, so every row would send the same prompt: "
                                "write {column} where a row's value goes (or pass --col NAME)")
        template += "\n\n" + "\n".join("{" + c + "}" for c in cols)
        names = cols
    used = [n for n in names if n in have]
    consts: dict[str, Any] = {}
    for n in names:
        if n in have:
            continue
        if variables is not None and n in variables:
            consts[n] = variables[n]
        else:
            raise TemplateError(f"{{{n}}} is not a column of the data; columns are: {_cols(columns)}")
    return template, used, consts


def _cols(columns: Sequence[str]) -> str:
    shown = ", ".join(str(c) for c in list(columns)[:20])
    return shown + (", …" if len(columns) > 20 else "")


def render_row(template: str, row: dict[str, Any], consts: Mapping[str, Any]) -> str:
    """One row's prompt; TemplateError for a null cell or an unfillable field."""
    for k, v in row.items():
        if _batch_data.is_null(v):
            raise TemplateError(f"column {k!r} is null in this row")
    prompt = render(template, {**consts, **row} if consts else row)
    if not prompt.strip():
        raise TemplateError("the prompt is empty for this row")
    return prompt


# ---- results ----------------------------------------------------------------
class _Results:
    """Per-row answers as the dispatcher delivers them (from its loop thread)."""

    def __init__(self, n: int, stats: BatchStats, bar: Progress | None, choices, schema_check):
        self.answer: list[Any] = [None] * n
        self.tin = [0] * n
        self.tout = [0] * n
        self.cost = [0.0] * n
        self.cached = [False] * n
        self.error: list[str | None] = [None] * n
        self.json: list[Any] = [None] * n
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
        self.done[i] = True
        st.done += 1
        if resp.cached:
            st.cached += 1
        else:
            st.ok += 1
        if self.bar is not None:
            self.bar.update(cost)


def _schema_checker(schema: Mapping[str, Any] | None):
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


def _output_columns(res: _Results, prefix: str, choices, schema, kind: str) -> dict[str, Any]:
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
    if schema:
        props = list((schema.get("properties") or {}).keys())
        if props:
            for name in props:
                cols[f"{p}{name}"] = _column([v.get(name) if isinstance(v, dict) else None for v in res.json],
                                             kind, f"{p}{name}")
        else:
            cols[f"{p}json"] = [None if v is None else _json.dumps(v) for v in res.json]
    return cols


def _column(values: list, kind: str, name: str):
    if kind != "polars":
        return values
    import polars as pl

    try:
        return pl.Series(name, values, strict=False)
    except Exception:  # mixed nested values: keep them as JSON text
        return pl.Series(name, [None if v is None else _json.dumps(v) for v in values])


# ---- estimate ---------------------------------------------------------------
def _estimate(d, reqs: list[Request], target, use_cache: bool, overrides_other: Mapping[str, Any],
              default_out: int) -> tuple[str, float, list[str]]:
    """(one-line estimate for both routes, $ for this route's uncached prompts, lines)."""
    first: dict[str, Request] = {}
    for r in reqs:
        first.setdefault(r.prompt, r)
    uniques = list(first.values())
    todo = uniques
    n_cached = 0
    if use_cache and uniques:
        keys = [cache_key(target.route, target.backend_name, target.endpoint, r) for r in uniques]
        hits = d.cache(target.settings.home).get_many(keys)
        todo = [r for r, k in zip(uniques, keys) if k not in hits]
        n_cached = len(uniques) - len(todo)
    here = d.estimate(todo, target)
    tin = sum(pricing.estimate_tokens((r.system or "") + r.prompt) for r in todo)
    tout = sum(8 if r.choices else (r.max_tokens or default_out) for r in todo)
    other = "local" if target.route == "reason" else "reason"
    try:
        ot = d.resolve(other, overrides_other)
        oreqs = [Request(r.prompt, ot.model, r.system, ot.rs.max_tokens or r.max_tokens, r.temperature,
                         r.choices, r.json_schema) for r in uniques]
        other_txt = f"on %%{other} ({_where(ot)}) all {len(uniques):,} would cost ~{money(d.estimate(oreqs, ot))}"
    except Exception as e:  # an unconfigured route, a backend not installed
        other_txt = f"%%{other} is not configured ({type(e).__name__}: {str(e)[:100]})"
    head = (f"estimate: {len(reqs):,} prompts, {len(uniques):,} distinct, {n_cached:,} already cached → "
            f"on %%{target.route} ({_where(target)}) this batch would cost ~{money(here)} "
            f"(~{tin:,} input + ~{tout:,} output tokens for {len(todo):,} calls); {other_txt}")
    return head, here, [r.prompt for r in todo]


def _where(t) -> str:
    extra = f" as {t.reference_model}" if t.simulated else ""
    return f"{t.backend_name} · {t.model}{extra} · priced by {t.pricing}"


# ---- the batch ----------------------------------------------------------------
def run_batch(data: Any, template: str, route: str = "local", *, choices: Sequence[str] | None = None,
              json_schema: Mapping[str, Any] | str | Path | None = None, model: str | None = None,
              system: str | None = None, max_tokens: int | None = None, temperature: float | None = 0.0,
              concurrency: int | None = None, cache: bool | None = None, force: bool = False,
              engine: str = "local", progress: bool = True, output_prefix: str = "",
              columns: Sequence[str] | None = None, variables: Mapping[str, Any] | None = None,
              con: Any = None, backend: str | None = None, base_url: str | None = None,
              verbose: bool = True, name: str | None = None, transport: str = "bulk") -> BatchResult:
    """Like :func:`map`, but returns the frame together with :class:`BatchStats`.

    ``transport``: ``"bulk"`` (default) sends OpenAI-protocol rows over hybridnb's keep-alive
    client (same retries and errors as the SDK, several times its rate); ``"sdk"`` uses the SDK.
    """
    if engine not in ENGINES:
        raise HybridnbError(f"unknown engine {engine!r}; engines are: {', '.join(ENGINES)}")
    if transport not in TRANSPORTS:
        raise HybridnbError(f"unknown transport {transport!r}; transports are: {', '.join(TRANSPORTS)}")
    if concurrency is not None and concurrency < 1:
        raise HybridnbError("concurrency must be at least 1")
    choices = check_choices(choices)
    schema = load_schema(json_schema)
    frame = _batch_data.load(data, con, name)
    tmpl, used, consts = prepare_template(template, frame.columns, columns, variables)
    n = len(frame)
    stats = BatchStats(rows=n, route=route)
    say = (lambda msg: print(msg, file=sys.stdout, flush=True)) if verbose else (lambda msg: None)
    d = get_dispatcher()
    extra = {"concurrency": concurrency} if concurrency else None
    overrides = route_overrides(route, model=model, backend=backend, base_url=base_url,
                                max_tokens=max_tokens, settings=extra)
    target = d.resolve(route, overrides)
    use_cache = target.settings["cache"] if cache is None else cache
    res = _Results(n, stats, None, choices, _schema_checker(schema))
    if n == 0:
        say(f"{frame.name} has no rows: nothing sent")
        return BatchResult(_assemble(frame, res, output_prefix, choices, schema, None, say), stats)

    tags = {**cell_tags(), "template": template_hash(template), "batch": uuid.uuid4().hex[:12]}
    stats.batch_id = tags["batch"]
    mt = max_tokens or target.rs.max_tokens
    ch = tuple(choices) if choices else None
    reqs: list[Request] = []
    failed_rows: list[tuple[int, TemplateError]] = []
    for i, row in enumerate(frame.rows(used)):
        try:
            prompt = render_row(tmpl, row, consts)
        except TemplateError as e:
            failed_rows.append((i, e))
            continue
        reqs.append(Request(prompt, target.model, system, mt, temperature, ch, schema, tags))
        res.rows.append(i)
    stats.unique = len({r.prompt for r in reqs})

    line, here, todo = _estimate(d, reqs, target, use_cache, route_overrides(
        "local" if route == "reason" else "reason", settings=extra), target.settings["estimate_output_tokens"])
    stats.estimate, stats.to_send = line, len(todo)
    say(line)
    if not force and todo:
        try:
            d.check_budget(here, target.settings)
        except BudgetExceeded as e:
            raise BudgetExceeded(f"batch refused, nothing sent — {e}\n{line}") from None

    bar = Progress(n, enabled=progress, desc=f"%%{route}")
    res.bar = bar
    for i, e in failed_rows:
        res.fail(i, e)
    t0 = time.monotonic()
    try:
        if engine == "ray":
            from . import ray as _ray_engine

            _ray_engine.run(d, reqs, target, cache=use_cache, force=force, on_result=res.on_response)
        elif reqs:
            send_to = bulk_target(target, concurrency) if transport == "bulk" else target
            run_sync(d.arun(reqs, send_to, cache=use_cache, force=force, on_result=res.on_response))
    except KeyboardInterrupt:
        stats.interrupted = True
    finally:
        bar.close()
        stats.elapsed_s = time.monotonic() - t0
    if stats.interrupted:
        keep = list(res.done)
        partial = _assemble(frame, res, output_prefix, choices, schema, keep, say)
        msg = (f"interrupted: {sum(keep):,} of {n:,} rows finished — they are cached and in the ledger; "
               f"run the same batch again to continue from the cache without paying for them twice")
        raise BatchInterrupted(msg, partial, stats)
    return BatchResult(_assemble(frame, res, output_prefix, choices, schema, None, say), stats)


def map(data: Any, template: str, route: str = "local", *, choices: Sequence[str] | None = None,  # noqa: A001
        json_schema: Mapping[str, Any] | str | Path | None = None, model: str | None = None,
        system: str | None = None, max_tokens: int | None = None, concurrency: int | None = None,
        cache: bool | None = None, force: bool = False, engine: str = "local", progress: bool = True,
        output_prefix: str = "", **options: Any):
    """Send ``template`` filled from each row of ``data``; return ``data`` plus answer columns.

    ``data``: polars or pandas DataFrame (same kind comes back), a DuckDB
    relation, or a DuckDB table name (with ``con=`` a connection or database
    path; polars comes back).  Added columns: ``answer``, ``input_tokens``,
    ``output_tokens``, ``cost_usd``, ``cached``, ``error`` (+ one per
    ``json_schema`` property), each prefixed with ``output_prefix``.
    ``choices`` is a closed label set (answer is always one of them, else an
    error in that row).  ``engine="ray"`` runs the calls on Ray Data.
    Other options: ``temperature``, ``columns``, ``variables``, ``con``,
    ``backend``, ``base_url``, ``verbose``.  Ctrl-C raises
    :class:`BatchInterrupted` carrying the finished rows in ``.partial``.
    """
    return run_batch(data, template, route, choices=choices, json_schema=json_schema, model=model,
                     system=system, max_tokens=max_tokens, concurrency=concurrency, cache=cache, force=force,
                     engine=engine, progress=progress, output_prefix=output_prefix, **options).frame


def _assemble(frame, res: _Results, prefix, choices, schema, keep, say):
    cols = _output_columns(res, prefix, choices, schema, frame.kind)
    clash = [c for c in cols if c in frame.columns]
    if clash:
        say(f"note: the result replaces the input's {', '.join(clash)} column(s) "
            f"(pass output_prefix= to keep both)")
    return frame.with_columns(cols, keep)


# ---- the magic ----------------------------------------------------------------
def magic_batch(shell, route: str, args, cell: str):
    """``%%local --over DATA [--col C] [-o NAME] …``: one call per row of DATA."""
    from IPython.core.error import UsageError

    ns = shell.user_ns
    data, con = _resolve_over(args.over, ns)
    try:
        choices = check_choices(args.choices) if args.choices else None
        schema = load_schema(args.json_schema) if args.json_schema else None
        result = run_batch(
            data, cell, route, choices=choices, json_schema=schema, model=args.model, system=args.system,
            max_tokens=args.max_tokens, temperature=args.temperature, concurrency=args.concurrency,
            cache=False if args.no_cache else None, force=args.force, engine=args.engine,
            progress=not args.quiet, columns=args.col, variables=ns, con=con, backend=args.backend,
            base_url=args.base_url, verbose=not args.quiet, name=args.over,
        )
    except BatchInterrupted as e:
        where = args.output or "_hybridnb_partial"
        ns[where] = e.partial
        print(e.stats.line(where))
        raise BatchInterrupted(f"{e} (finished rows are in `{where}`)", e.partial, e.stats) from None
    except HybridnbError as e:
        raise UsageError(f"%%{route}: {e}") from None
    print(result.stats.line(args.output))
    if not args.quiet and result.stats.batch_id:
        _show_bill(result.stats.batch_id)
    if args.output:
        ns[args.output] = result.frame
        return None
    return result.frame


def _show_bill(batch_id: str) -> None:
    """Display the batch's bill; its output metadata keeps usage and cost with the saved notebook."""
    from IPython.display import display

    from ..config import get_settings
    from ..store.ledger import read
    from ..spend.report import CellUsage

    rows = read(get_settings().home, where=f"batch = '{batch_id}'")
    if rows.height:
        display(CellUsage(rows.to_dicts()))


def _resolve_over(over: str, ns: Mapping[str, Any]):
    """(data, duckdb connection or None) for ``--over NAME``."""
    from IPython.core.error import UsageError

    if over in ns:
        return ns[over], None
    con = _batch_data.find_table(over, dict(ns))
    if con is None:
        raise UsageError(f"--over {over}: no DataFrame variable or DuckDB table of that name "
                         "(DuckDB tables are looked up in the connections in your namespace)")
    return over, con
