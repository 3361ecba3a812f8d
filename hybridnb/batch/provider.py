"""Provider batch jobs: a batch's rows as one ``/v1/batches`` job at the provider's batch price.

``hybridnb.map(df, tmpl, route="reason", mode="batch-api")`` (or ``%%reason --over df --batch-api``):

1. rows the cache knows are served from it; identical prompts go once;
2. the rest are written as JSON lines (``custom_id`` = the row's cache key), uploaded
   (``files.create(purpose="batch")``) and submitted (``batches.create``) through the ``openai`` SDK;
   the job id goes to the ledger at once (:mod:`.jobs`);
3. a progress bar of completed / failed requests while it runs (polling every ``batch_poll_s``);
4. the output and error files are downloaded and joined back by ``custom_id``; every row is
   priced at the batch rate, ledgered and cached exactly like an online row.

Ctrl-C detaches: the job keeps running at the provider; running the same cell again
re-attaches to it (same job key) instead of submitting again; ``%hybridnb batches``
lists, re-attaches and cancels.  Batch rates come from genai-prices (``processing: batch``)
where it knows them, else the ``batch_discount`` setting (default 0.5, OpenAI's 50 %).
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any, Callable, Mapping, Sequence

from .. import errors
from ..backends._openai import OpenAIBackend, public_endpoint, redact
from ..core import pricing
from ..core.records import duplicate_outcome, make_record, make_response
from ..store.cache import cache_key
from ..types import Completion, Request, Usage
from . import jobs
from .bulk import parse_chat
from .progress import Progress

ENDPOINT = "/v1/chat/completions"


class JobDetached(KeyboardInterrupt):
    """Ctrl-C while waiting: the job runs on at the provider; the message says how to re-attach or cancel."""

    def __init__(self, batch_id: str):
        super().__init__(f"detached from batch job {batch_id}; it keeps running at the provider. Run the same "
                         f"cell again (or `%hybridnb batches attach {batch_id}`) to collect its rows, "
                         f"`%hybridnb batches cancel {batch_id}` to cancel it")
        self.batch_id = batch_id


# ---- the batch price ---------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def library_batch_prices(model: str) -> pricing.TokenPrices | None:
    """genai-prices' batch rate for ``model`` ($/1M), or None when it knows none (or the same as online)."""
    try:
        from genai_prices import Usage as GUsage, calc_price
    except ImportError:  # pragma: no cover - a dependency
        return None
    ctx = {"processing": "batch"}

    def per_million(batch: bool, **usage: int) -> float:
        kw = {"price_context": ctx} if batch else {}
        return float(calc_price(GUsage(**usage), model_ref=model, **kw).total_price) * 1000

    try:
        inp, out = per_million(True, input_tokens=1000), per_million(True, output_tokens=1000)
        if (inp, out) == (per_million(False, input_tokens=1000), per_million(False, output_tokens=1000)):
            return None
        try:
            cached = per_million(True, input_tokens=1000, cache_read_tokens=1000)
        except Exception:
            cached = inp
    except Exception:  # LookupError for an unknown model, or a price shape it cannot compute
        return None
    return pricing.TokenPrices(inp, out, cached, "genai-prices batch")


def batch_prices(target) -> tuple[dict[str, float], str]:
    """(price-override settings that price ``target``'s model at the batch rate, where the rate comes from)."""
    model = target.price_model
    overrides = target.settings.price_overrides()
    online = pricing.token_prices(model, overrides)
    if online is None:
        return {}, f"{model} is unpriced"
    lib = None if model in overrides else library_batch_prices(model)
    if lib is not None:
        p, note = lib, "batch rate from genai-prices"
    else:
        f = float(target.settings["batch_discount"])
        p = pricing.TokenPrices(online.input * f, online.output * f, online.cached_input * f, "discount")
        note = f"batch_discount {f:g} × the online price"
    return {f"prices.{model}.input": p.input, f"prices.{model}.output": p.output,
            f"prices.{model}.cached_input": p.cached_input}, note


def batch_target(d, route: str, overrides: Mapping[str, Any] | None, target):
    """(the target priced at the batch rate, a note on the rate); HybridnbError where no batch API can be."""
    if target.pricing != "tokens" or target.simulated or not isinstance(target.backend, OpenAIBackend):
        why = "the offline stand-in" if target.simulated else f"{target.backend_name} priced by {target.pricing}"
        raise errors.ConfigError(f"--batch-api submits the rows as one provider batch job: it needs a "
                                 f"token-priced OpenAI-compatible endpoint with an API key, not {why}")
    keys, note = batch_prices(target)
    return d.resolve(route, {**(overrides or {}), **keys}), note


# ---- talking to the provider ------------------------------------------------------
def client_for(target):
    """A sync ``openai.OpenAI`` client for the target's endpoint and key."""
    import openai

    b = target.backend
    return openai.OpenAI(base_url=b.base_url, api_key=b._api_key or "EMPTY", timeout=b.timeout_s,
                         max_retries=b.max_retries)


def _api(target, fn: Callable, *args, **kw):
    """Call the SDK; its errors become hybridnb's (translated and redacted by the backend)."""
    import openai

    try:
        return fn(*args, **kw)
    except openai.APIError as e:
        raise target.backend._translate(e) from e


def request_body(backend: OpenAIBackend, r: Request) -> dict[str, Any]:
    """The chat-completions body the online path would send (``extra_body`` merged in)."""
    body = backend._body(r)
    body.update(body.pop("extra_body", None) or {})
    return body


def submit(d, target, by_key: dict[str, list], job_key: str, tags: Mapping[str, Any],
           meta: dict[str, Any]) -> str:
    """Upload the rows as JSON lines, create the job, ledger its id; the provider's batch id."""
    home = target.settings.home
    path = jobs.folder(home) / f"{job_key}.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for key, group in by_key.items():
            line = {"custom_id": key, "method": "POST", "url": ENDPOINT,
                    "body": request_body(target.backend, group[0][1])}
            fh.write(json.dumps(line, separators=(",", ":")) + "\n")
    client = client_for(target)
    with open(path, "rb") as fh:
        f = _api(target, client.files.create, file=(path.name, fh), purpose="batch")
    b = _api(target, client.batches.create, input_file_id=f.id, endpoint=ENDPOINT, completion_window="24h",
             metadata={"hybridnb_job": job_key})
    jobs.save_meta(home, b.id, {**meta, "id": b.id, "job_key": job_key, "input": str(path),
                                "input_file_id": f.id, "rows": len(by_key), "submitted": time.time()})
    rec = jobs.job_record(target, d.session, b.id, job_key, jobs.SUBMITTED, len(by_key), dict(tags))
    d.writer(home).append(rec)
    d.publish([rec])
    return b.id


def wait(target, batch_id: str, total: int, progress: bool, poll_s: float):
    """Poll until the job ends, with a bar of completed / failed requests; the final Batch object."""
    client = client_for(target)
    bar = Progress(total, enabled=progress, desc=f"batch job {batch_id[-8:]}", interval_s=0.0)
    seen_ok = seen_failed = 0
    try:
        while True:
            b = _api(target, client.batches.retrieve, batch_id)
            rc = b.request_counts
            ok, failed = (rc.completed or 0, rc.failed or 0) if rc else (0, 0)
            if ok > seen_ok:
                bar.update(0.0, n=ok - seen_ok)
            for _ in range(max(0, failed - seen_failed)):
                bar.update(0.0, failed=True)
            seen_ok, seen_failed = max(ok, seen_ok), max(failed, seen_failed)
            if b.status in jobs.TERMINAL:
                return b
            time.sleep(poll_s)
    except KeyboardInterrupt:
        raise JobDetached(batch_id) from None
    finally:
        bar.close()


def _lines(target, file_id: str | None) -> list[dict]:
    if not file_id:
        return []
    text = _api(target, client_for(target).files.content, file_id).text
    out = []
    for raw in text.splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue  # a torn line: its row is reported missing, not fatal
    return out


# ---- joining results back ------------------------------------------------------------
_STATUS_ERRORS = {401: errors.AuthenticationError, 403: errors.AuthenticationError, 404: errors.NotFoundError,
                  429: errors.RateLimited}


def line_completion(target, line: dict, r: Request, started: float, ended: float) -> Completion:
    """One output/error line → a Completion (errors are not billed: providers charge finished requests)."""
    resp = line.get("response") or {}
    status = resp.get("status_code")
    if status == 200:
        return parse_chat(r, resp.get("body"), started, ended, target.backend.base_url)
    body = resp.get("body") or {}
    err = (body.get("error") if isinstance(body, dict) else None) or line.get("error") or {}
    msg = redact(str(err.get("message") or err or "no detail"), [target.backend._api_key])
    cls = _STATUS_ERRORS.get(status) or (errors.ServerError if (status or 0) >= 500 else errors.BackendError)
    e = cls(f"{public_endpoint(target.backend.base_url)} answered this row of the batch job with "
            f"HTTP {status}: {msg[:200]}" if status else f"the batch job failed this row: {msg[:200]}")
    return Completion("", Usage(), started, ended, error=e, billed=False)


def missing_error(b) -> errors.BackendError:
    """Why a row has no line in the job's files."""
    if b.status == "expired":
        return errors.BackendTimeout(f"batch job {b.id} expired (24 h window) before this row ran; "
                                     "run the batch again to submit the rest")
    if b.status == "cancelled":
        return errors.BackendError(f"batch job {b.id} was cancelled before this row ran")
    if b.status == "failed":
        detail = "; ".join(str(getattr(e, "message", e)) for e in (getattr(b.errors, "data", None) or []))
        return errors.BackendError(f"batch job {b.id} failed: {detail[:200] or 'no detail'}")
    return errors.MalformedResponse(f"batch job {b.id} returned no line for this row")


def collect(d, bt, b, by_key: dict[str, list], store, deliver: Callable, tags: Mapping[str, Any]) -> int:
    """Price, ledger, cache and deliver every row of a finished job; returns how many rows answered."""
    started = float(b.created_at or time.time())
    ended = float(b.completed_at or b.expired_at or b.cancelled_at or b.failed_at or time.time())
    lines = {ln.get("custom_id"): ln for ln in _lines(bt, b.error_file_id) + _lines(bt, b.output_file_id)}
    records, cache_items, answered = [], [], 0
    overrides = bt.settings.price_overrides()
    for key, group in by_key.items():
        r = group[0][1]
        line = lines.get(key)
        c = (line_completion(bt, line, r, started, ended) if line is not None
             else Completion("", Usage(), started, ended, error=missing_error(b), billed=False))
        billed = c.error is None or c.billed
        usage = c.usage if billed else Usage()
        cost, unpriced = pricing.token_cost(bt.price_model, usage, overrides)
        rec = make_record(r, bt, d.session, status="ok" if c.error is None else "error", usage=usage, cost=cost,
                          latency=c.latency_s, held=0.0, busy=0.0, unpriced=unpriced, error=c.error, answer=c.text)
        rec.batch = b.id
        resp = make_response(bt, c.text, usage, cost, c.latency_s, 0.0, unpriced, c.error, rec,
                             json_value=c.extra.get("json"))
        d.spent_usd += cost
        records.append(rec)
        if c.error is None:
            answered += 1
            cache_items.append((key, c.text, usage, cost, bt.model))
        deliver(group[0][0], resp)
        for i, _ in group[1:]:
            dresp, drec = duplicate_outcome(resp)
            records.append(drec)
            deliver(i, dresp)
    note = f"{answered} of {len(by_key)} requests answered"
    records.append(jobs.job_record(bt, d.session, b.id, jobs.job_key_of(by_key, bt), b.status, len(by_key),
                                   dict(tags), note))
    d.writer(bt.settings.home).extend(records)
    if store is not None and cache_items:
        store.put_many(cache_items)
    d.publish(records)
    return answered


# ---- one batch, end to end ----------------------------------------------------------
def run_job(d, reqs: Sequence[Request], target, bt, *, cache: bool, on_result: Callable, progress: bool,
            say: Callable[[str], None], tags: Mapping[str, Any], meta: dict[str, Any]) -> str:
    """Serve cached rows, submit (or re-attach to) the job for the rest, wait, collect; the job id."""
    home = target.settings.home
    store = d.cache(home) if cache else None
    keys = [cache_key(target.route, target.backend_name, target.endpoint, r) for r in reqs]
    groups = d.serve_cached(reqs, keys, target, store, on_result)
    if not groups:
        return ""
    by_key = {keys[g[0]]: [(i, reqs[i]) for i in g] for g in groups}
    job_key = jobs.job_key_of(by_key, target)
    bid = jobs.open_job(home, job_key)
    if bid:
        say(f"re-attaching to batch job {bid} (submitted earlier for these {len(by_key):,} requests)")
    else:
        bid = submit(d, target, by_key, job_key, tags, meta)
        say(f"submitted batch job {bid}: {len(by_key):,} requests to {target.endpoint} "
            f"(Ctrl-C detaches; `%hybridnb batches cancel {bid}` cancels)")
    b = wait(target, bid, len(by_key), progress, float(target.settings["batch_poll_s"]))
    collect(d, bt, b, by_key, store, on_result, tags)
    return bid
