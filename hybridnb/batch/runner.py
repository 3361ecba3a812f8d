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

import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import frames as _batch_data
from ..core.calls import route_overrides, template_hash
from ..core.context import cell_tags
from ..core.loop import run_sync
from . import provider
from .bulk import bulk_target
from .estimate import estimate
from .progress import Progress
from .results import Results, assemble, schema_checker
from ..spend.render import money
from ..core.template import field_names, render
from ..types import Request
from ..core.dispatcher import get_dispatcher
from ..errors import BudgetExceeded, HybridnbError, TemplateError
from ..core.constraints import check_choices, load_schema

OUTPUT_COLUMNS = ("answer", "input_tokens", "output_tokens", "cost_usd", "cached", "error")
ENGINES = ("local", "ray", "vllm")
TRANSPORTS = ("bulk", "sdk")
MODES = ("online", "batch-api")


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
    estimate_usd: float = 0.0  # before sending
    projected_usd: float | None = None  # revised from the actual cost per row as rows finish
    projected_at_5pct: float | None = None  # the projection once 5 % of the rows to send were done

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


#: batch handlers of other routes, registered by their modules (so this module imports none of them)
ROUTES: dict[str, Any] = {}


# ---- the batch ----------------------------------------------------------------
def run_batch(data: Any, template: str, route: str = "local", *, choices: Sequence[str] | None = None,
              json_schema: Mapping[str, Any] | str | Path | None = None, model: str | None = None,
              system: str | None = None, max_tokens: int | None = None, temperature: float | None = 0.0,
              concurrency: int | None = None, cache: bool | None = None, force: bool = False,
              engine: str = "local", progress: bool = True, output_prefix: str = "",
              columns: Sequence[str] | None = None, variables: Mapping[str, Any] | None = None,
              con: Any = None, backend: str | None = None, base_url: str | None = None,
              verbose: bool = True, name: str | None = None, transport: str = "bulk",
              mode: str = "online") -> BatchResult:
    """Like :func:`map`, but returns the frame together with :class:`BatchStats`.

    ``mode``: ``"online"`` (default) sends calls; ``"batch-api"`` one provider batch job at the batch price.
    ``transport``: ``"bulk"`` (default: hybridnb's keep-alive client, the SDK's retries and errors) or ``"sdk"``.
    """
    backend = _check_options(route, engine, mode, transport, concurrency, backend)
    choices, schema = check_choices(choices), load_schema(json_schema)
    frame = _batch_data.load(data, con, name)
    tmpl, used, consts = prepare_template(template, frame.columns, columns, variables)
    n = len(frame)
    stats = BatchStats(rows=n, route=route)
    say = (lambda msg: print(msg, file=sys.stdout, flush=True)) if verbose else (lambda msg: None)
    d, extra, overrides, target = _resolve(route, model, backend, base_url, max_tokens, concurrency)
    use_cache = target.settings["cache"] if cache is None else cache
    res = Results(n, stats, None, choices, schema_checker(schema))
    if n == 0:
        say(f"{frame.name} has no rows: nothing sent")
        return BatchResult(assemble(frame, res, output_prefix, choices, schema, None, say), stats)

    tags = {**cell_tags(), "template": template_hash(template), "batch": uuid.uuid4().hex[:12]}
    stats.batch_id = tags["batch"]
    mt, ch = max_tokens or target.rs.max_tokens, tuple(choices) if choices else None
    reqs, failed_rows = _requests(frame.rows(used), tmpl, consts, res,
                                  lambda prompt: Request(prompt, target.model, system, mt, temperature, ch, schema, tags))
    stats.unique = len({r.prompt for r in reqs})

    job = provider.batch_target(d, route, overrides, target) if mode == "batch-api" else None
    _estimate_or_refuse(d, reqs, target, use_cache, route, extra, job, force, stats, say)

    res.bar = bar = Progress(n, enabled=progress and job is None, desc=f"%%{route}")
    for i, e in failed_rows:
        res.fail(i, e)
    t0 = time.monotonic()
    try:
        if job is not None and reqs:
            stats.batch_id = _send_job(d, reqs, target, job, overrides, choices, schema, use_cache, tags, res,
                                       progress, say) or stats.batch_id
        else:
            _send_online(d, reqs, target, engine, transport, concurrency, use_cache, force, res.on_response)
    except KeyboardInterrupt as e:
        stats.interrupted = True
        detached = str(e) if isinstance(e, provider.JobDetached) else ""
    finally:
        bar.close()
        stats.elapsed_s = time.monotonic() - t0
    if stats.interrupted:
        keep = list(res.done)
        partial = assemble(frame, res, output_prefix, choices, schema, keep, say)
        raise BatchInterrupted(detached or _interrupted_message(sum(keep), n), partial, stats)
    return BatchResult(assemble(frame, res, output_prefix, choices, schema, None, say), stats)


def _estimate_or_refuse(d, reqs, target, use_cache, route, extra, job, force, stats, say) -> None:
    """Print the estimate on both routes (and the batch price); refuse a batch over the budget, nothing sent."""
    line, here, todo = estimate(d, reqs, target, use_cache, route_overrides(
        "local" if route == "reason" else "reason", settings=extra), target.settings["estimate_output_tokens"],
        job)
    stats.estimate, stats.to_send, stats.estimate_usd = line, len(todo), here
    say(line)
    if not force and todo:
        try:
            d.check_budget(here, target.settings)
        except BudgetExceeded as e:
            raise BudgetExceeded(f"batch refused, nothing sent — {e}\n{line}") from None


def _interrupted_message(finished: int, n: int) -> str:
    return (f"interrupted: {finished:,} of {n:,} rows finished — they are cached and in the "
            f"ledger; run the same batch again to continue from the cache without paying for them twice")


def _check_options(route: str, engine: str, mode: str, transport: str, concurrency: int | None,
                   backend: str | None) -> str | None:
    """One clear error for an unknown engine/mode/transport; the backend an engine implies."""
    if engine not in ENGINES:
        raise HybridnbError(f"unknown engine {engine!r}; engines are: {', '.join(ENGINES)}")
    if engine == "vllm":  # the in-process vLLM engine, in big chunks, priced by GPU time
        if route != "local":
            raise HybridnbError("engine='vllm' runs an in-process vLLM engine on your GPU: use route='local'")
        backend = backend or "vllm-engine"
    if mode not in MODES:
        raise HybridnbError(f"unknown mode {mode!r}; modes are: {', '.join(MODES)}")
    if transport not in TRANSPORTS:
        raise HybridnbError(f"unknown transport {transport!r}; transports are: {', '.join(TRANSPORTS)}")
    if concurrency is not None and concurrency < 1:
        raise HybridnbError("concurrency must be at least 1")
    return backend


def _requests(rows, tmpl, consts, res, make) -> tuple[list[Request], list[tuple[int, TemplateError]]]:
    """One Request per row whose template fills (``make(prompt)``); the rows that do not, with their error."""
    reqs: list[Request] = []
    failed_rows: list[tuple[int, TemplateError]] = []
    for i, row in enumerate(rows):
        try:
            prompt = render_row(tmpl, row, consts)
        except TemplateError as e:
            failed_rows.append((i, e))
            continue
        reqs.append(make(prompt))
        res.rows.append(i)
    return reqs, failed_rows


def _resolve(route, model, backend, base_url, max_tokens, concurrency):
    """(dispatcher, concurrency override, route overrides, target) for a batch's options."""
    d = get_dispatcher()
    extra = {"concurrency": concurrency} if concurrency else None
    overrides = route_overrides(route, model=model, backend=backend, base_url=base_url,
                                max_tokens=max_tokens, settings=extra)
    return d, extra, overrides, d.resolve(route, overrides)


def _send_job(d, reqs, target, job, overrides, choices, schema, use_cache, tags, res, progress, say) -> str | None:
    """The rows as one provider batch job (re-attached when it exists); returns the job's batch id."""
    meta = {"route": target.route, "endpoint": target.endpoint, "model": target.model, "overrides": overrides,
            "choices": list(choices or []), "json_schema": schema, "cache": use_cache,
            "tags": {k: v for k, v in tags.items() if k != "batch"}}
    return provider.run_job(d, reqs, target, job[0], cache=use_cache, on_result=res.on_response,
                            progress=progress, say=say, tags=tags, meta=meta)


def _send_online(d, reqs, target, engine: str, transport: str, concurrency, use_cache, force, on_result) -> None:
    """The rows as calls: on Ray Data, or through the dispatcher (bulk keep-alive transport or the SDK)."""
    if engine == "ray":
        from . import ray as _ray_engine

        _ray_engine.run(d, reqs, target, cache=use_cache, force=force, on_result=on_result)
    elif reqs:
        send_to = bulk_target(target, concurrency) if transport == "bulk" else target
        run_sync(d.arun(reqs, send_to, cache=use_cache, force=force, on_result=on_result))


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
    error in that row).  ``engine="ray"`` runs the calls on Ray Data, ``engine="vllm"`` on an in-process
    ``vllm.LLM`` (route local, big chunks, structured choices, GPU time); ``mode="batch-api"``
    submits the rows as one provider batch job at the batch price (re-running re-attaches).
    Other options: ``temperature``, ``columns``, ``variables``, ``con``,
    ``backend``, ``base_url``, ``verbose``.  Ctrl-C raises
    :class:`BatchInterrupted` carrying the finished rows in ``.partial``.
    ``route="auto"``: local first, unsure rows escalate to reason (``threshold=``; see core/auto.py).
    """
    if route in ROUTES:  # another route's batch, e.g. the %%auto cascade (core/auto.py registers it)
        return ROUTES[route](data, template, choices=choices, system=system, max_tokens=max_tokens, cache=cache,
                        force=force, progress=progress, output_prefix=output_prefix, **options)
    return run_batch(data, template, route, choices=choices, json_schema=json_schema, model=model,
                     system=system, max_tokens=max_tokens, concurrency=concurrency, cache=cache, force=force,
                     engine=engine, progress=progress, output_prefix=output_prefix, **options).frame


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
            mode="batch-api" if getattr(args, "batch_api", False) else "online",
        )
    except BatchInterrupted as e:
        where = args.output or "_hybridnb_partial"
        ns[where] = e.partial
        print(e.stats.line(where))
        raise BatchInterrupted(f"{e} (finished rows are in `{where}`)", e.partial, e.stats) from None
    except HybridnbError as e:
        raise UsageError(f"%%{route}: {e}") from None
    if args.output:  # the paid answers first: nothing below (ledger read, display) may lose them
        ns[args.output] = result.frame
    print(result.stats.line(args.output))
    if not args.quiet and result.stats.batch_id:
        try:
            _show_bill(result.stats.batch_id)
        except Exception as e:  # the bill is a view; the rows are already in the frame
            print(f"hybridnb: could not display the batch's bill ({type(e).__name__}: {e})", file=sys.stderr)
    return None if args.output else result.frame


def _show_bill(batch_id: str) -> None:
    """Display the batch's bill; its output metadata keeps usage and cost with the saved notebook."""
    from IPython.display import display

    from ..config import get_settings
    from ..store.ledger import read
    from ..spend.cell import CellUsage

    rows = read(get_settings().home, where=f"batch = '{batch_id}' AND kind <> 'batch-job'")
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
