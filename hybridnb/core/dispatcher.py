"""The dispatcher: the one place that knows cache, budget, ledger and signals.

Flow of a run (one call or a batch)::

    requests ─► cache lookup ─hit─► Response(cached, $0, saved $)
             ─► dedup identical prompts (sent once, the rest are cache-like hits)
             ─► budget check on the estimate (BudgetExceeded: nothing sent)
             ─► workers (≤ concurrency) ─► backend.complete(chunk)
             ─► price ─► ledger ─► cache ─► signals ─► listeners ─► Response
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .. import backends as _backends
from . import pricing
from .clock import HeldClock
from .records import Target, cached_outcome, duplicate_outcome, make_record, make_response, short_hash
from ..backends._base import Backend
from ..backends._vllm_server import poll_metrics
from .loop import run_sync
from .response import Response, money
from ..types import Completion, Request, Usage
from ..store.cache import Cache, cache_key
from ..config import EMBEDDED_MODEL, Settings, get_settings
from ..errors import BackendError, BudgetExceeded, ConfigError, HybridnbError
from ..store.ledger import LedgerWriter, Record
from ..spend.signals import tracker

Listener = Callable[[Record], None]
ResultCallback = Callable[[int, Response], None]

#: compute seconds assumed per call before a lane has history (for estimates)
DEFAULT_CALL_SECONDS = 0.5


def kernel_session() -> str | None:
    """``k-<kernel id>`` when running inside a Jupyter kernel."""
    try:
        from ipykernel import get_connection_file

        name = Path(get_connection_file()).stem
    except Exception:
        return None
    return "k-" + name.removeprefix("kernel-")


class Dispatcher:
    """Routes requests to backends with cache, budget, ledger and signals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._backends: dict[tuple, Any] = {}
        self._targets: dict[tuple, Target] = {}
        self._writers: dict[Path, LedgerWriter] = {}
        self._caches: dict[Path, Cache] = {}
        self._clocks: dict[tuple[str, str], HeldClock] = {}
        self._lane_seconds: dict[tuple[str, str, str], tuple[int, float]] = {}
        self._listeners: list[Listener] = []
        self.session = kernel_session()
        self.spent_usd = 0.0
        self._warned_at: float | None = None

    # ---- plumbing -------------------------------------------------------
    def writer(self, home: Path) -> LedgerWriter:
        with self._lock:
            w = self._writers.get(home)
            if w is None:
                w = self._writers[home] = LedgerWriter(home, self.session)
            return w

    def cache(self, home: Path) -> Cache:
        with self._lock:
            c = self._caches.get(home)
            if c is None:
                c = self._caches[home] = Cache(home)
            return c

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(record)`` after every ledger append; returns an unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _emit(self, records: Iterable[Record]) -> None:
        for r in records:
            for fn in list(self._listeners):
                try:
                    fn(r)
                except Exception as e:  # a broken widget must not break a batch
                    print(f"hybridnb: listener failed: {type(e).__name__}: {e}", file=sys.stderr)

    # ---- resolution -----------------------------------------------------
    def resolve(self, route: str, overrides: Mapping[str, Any] | None = None) -> Target:
        """Pick backend, model and pricing for ``route`` from settings."""
        settings = get_settings(overrides)
        memo_key = (route, settings.key) if settings.key is not None else None
        target = self._targets.get(memo_key) if memo_key else None
        if target is not None:
            return target
        target = self._resolve(route, settings)
        if memo_key:
            self._targets[memo_key] = target
        return target

    def _resolve(self, route: str, settings: Settings) -> Target:
        rs = settings.route(route)
        name, simulated = rs.backend, False
        if name == "auto":
            if rs.base_url and route == "local":
                name = "vllm"  # OpenAI protocol + /metrics and version-aware structured outputs
            elif rs.base_url or (route == "reason" and rs.api_key):
                name = "openai"
            else:
                name, simulated = "embedded", route == "reason"
        if name == "openai" and not rs.base_url and not rs.api_key:
            var = "HYBRIDNB_REASON_API_KEY (or OPENAI_API_KEY)" if route == "reason" else "HYBRIDNB_LOCAL_BASE_URL"
            raise ConfigError(f"%%{route} has no API key or endpoint: set {var}, "
                              f"or `%hybridnb config {route}.base_url=...`")
        cls = _backends.load(name)
        if name == "embedded":
            model = EMBEDDED_MODEL
        else:
            model = rs.model
        key = (route, name, rs.base_url, short_hash(rs.api_key or ""), settings["concurrency"],
               settings["timeout_s"], settings["max_retries"])
        with self._lock:
            backend = self._backends.get(key)
            if backend is None:
                backend = self._backends[key] = cls.from_route(rs, settings)
        if not model and hasattr(backend, "discover_model"):
            model = backend.discover_model()  # e.g. the first id a vLLM server lists
        if not model:
            raise ConfigError(f"%%{route} has no model: set HYBRIDNB_{route.upper()}_MODEL "
                              f"or `%hybridnb config {route}.model=NAME`")
        pricing_mode = "tokens" if simulated else rs.pricing
        endpoint = backend.describe().get("endpoint", "") or ""
        return Target(
            route=route, backend_name=name, backend=backend, model=model, pricing=pricing_mode,
            simulated=simulated, reference_model=rs.model if simulated else "",
            endpoint=endpoint, rate_per_hour=pricing.compute_rate_per_hour(rs, name),
            gpus=rs.gpus if name != "embedded" else 0.0, settings=settings, rs=rs,
        )

    # ---- estimates and budget -------------------------------------------
    def estimate(self, requests: Sequence[Request], target: Target) -> float:
        """Expected $ for sending ``requests`` to ``target`` (before any cache)."""
        if not requests:
            return 0.0
        if target.pricing == "tokens":
            p = pricing.token_prices(target.price_model, target.settings.price_overrides())
            if p is None:
                return 0.0
            default_out = target.settings["estimate_output_tokens"]
            total = 0.0
            for r in requests:
                tin = pricing.estimate_tokens((r.system or "") + r.prompt)
                tout = 8 if r.choices else (r.max_tokens or default_out)
                total += tin * p.input + tout * p.output
            return total / 1_000_000
        n, secs = self._lane_seconds.get((target.route, target.backend_name, target.model), (0, 0.0))
        per_call = secs / n if n else DEFAULT_CALL_SECONDS
        return len(requests) * per_call * target.rate_per_hour / 3600.0

    def check_budget(self, estimate: float, settings: Settings) -> None:
        """Raise BudgetExceeded when ``estimate`` does not fit in what is left."""
        budget = settings.budget_usd
        if budget is None:
            return
        if self.spent_usd + estimate > budget:
            raise BudgetExceeded(
                f"budget exceeded: spent {money(self.spent_usd)} of {money(budget)}, this needs "
                f"~{money(estimate)} more. Raise it with `%hybridnb budget <usd>`, "
                f"move the work to %%local, or pass --force.")

    def _maybe_warn(self, settings: Settings) -> None:
        budget = settings.budget_usd
        if not budget:
            return
        frac = self.spent_usd / budget
        if frac >= settings["budget_warn_fraction"] and self._warned_at != budget:
            self._warned_at = budget
            print(f"hybridnb: {frac:.0%} of the {money(budget)} budget spent "
                  f"({money(self.spent_usd)})", file=sys.stderr)

    # ---- running ----------------------------------------------------------
    def run(self, requests: Sequence[Request], route: str, *, overrides=None, cache: bool | None = None,
            force: bool = False, on_result: ResultCallback | None = None) -> list[Response]:
        """Send ``requests`` on ``route``; blocks until every answer is in.

        Ctrl-C cancels what is still running; finished answers were already
        delivered to ``on_result``, written to the ledger and cached.
        """
        target = self.resolve(route, overrides)
        use_cache = target.settings["cache"] if cache is None else cache
        return run_sync(self.arun(list(requests), target, cache=use_cache, force=force, on_result=on_result))

    async def arun(self, requests: list[Request], target: Target, *, cache: bool = True,
                   force: bool = False, on_result: ResultCallback | None = None) -> list[Response]:
        home = target.settings.home
        results: list[Response | None] = [None] * len(requests)
        store = self.cache(home) if cache else None
        keys = [cache_key(target.route, target.backend_name, target.endpoint, r) for r in requests]

        def deliver(i: int, resp: Response) -> None:
            results[i] = resp
            if on_result is not None:
                on_result(i, resp)

        todo = self.serve_cached(requests, keys, target, store, deliver)
        if not todo:
            return results  # type: ignore[return-value]
        if not force and target.settings.budget_usd is not None:
            self.check_budget(self.estimate([requests[g[0]] for g in todo], target), target.settings)
        setup = await self._prepare(target, requests[todo[0][0]])
        await self._send(requests, todo, keys, target, store, deliver, force)
        first = results[todo[0][0]]
        if setup is not None and first is not None:
            first.setup_s, first.setup_usd = setup.held_s, setup.cost_usd
        self._maybe_warn(target.settings)
        return results  # type: ignore[return-value]

    def serve_cached(self, requests, keys, target: Target, store, deliver) -> list[list[int]]:
        """Deliver what the cache knows (ledgered as hits); return the rest grouped by
        key, so identical prompts are sent once: ``[[first, duplicate, ...], ...]``."""
        hits = store.get_many(list(set(keys))) if store is not None else {}
        groups: dict[str, list[int]] = {}
        hit_records = []
        for i, k in enumerate(keys):
            if k in hits:
                resp, rec = cached_outcome(requests[i], target, self.session, hits[k])
                hit_records.append(rec)
                deliver(i, resp)
            else:
                groups.setdefault(k, []).append(i)
        if hit_records:
            self.writer(target.settings.home).extend(hit_records)
            self._emit(hit_records)
        return list(groups.values())

    async def _prepare(self, target: Target, first: Request) -> Record | None:
        """Let the backend load what it needs; ledger that time as a "setup" row, not as a call's compute."""
        seconds = await target.backend.prepare()
        if not seconds:
            return None
        cost = pricing.compute_cost(seconds, target.rate_per_hour) if target.pricing == "compute" else 0.0
        rec = make_record(first, target, self.session, status="ok", usage=Usage(), cost=cost, latency=seconds,
                          held=seconds, busy=seconds, unpriced=False, error=None, answer="")
        rec.kind, rec.prompt_hash, rec.rows = "setup", "", 0
        self.spent_usd += cost
        self.writer(target.settings.home).append(rec)
        self._emit([rec])
        return rec

    async def _send(self, requests, todo, keys, target: Target, store, deliver, force) -> None:
        lane = (target.route, target.backend_name)
        clock = self._clocks.get(lane) or self._clocks.setdefault(lane, HeldClock())
        backend = target.backend
        chunk_size = max(1, int(getattr(backend, "batch_size", 1)))
        workers = max(1, min(int(target.settings["concurrency"] or 1), backend.max_concurrency or 1))
        chunks = [todo[i:i + chunk_size] for i in range(0, len(todo), chunk_size)]
        workers = min(workers, len(chunks))
        tracker.enqueued(*lane, len(todo), workers * chunk_size)
        it = iter(chunks)
        t_queued = time.monotonic()
        budget = target.settings.budget_usd

        async def worker() -> None:
            for chunk in it:
                if budget is not None and not force and self.spent_usd >= budget:
                    tracker.dropped(*lane, len(chunk))
                    err = BudgetExceeded(f"budget of {money(budget)} reached mid-batch; not sent")
                    for group in chunk:
                        for i in group:
                            deliver(i, make_response(target, "", Usage(), 0.0, 0.0, 0.0, False, err, None))
                    continue
                reqs = [requests[g[0]] for g in chunk]
                tracker.started(*lane, len(reqs), time.monotonic() - t_queued)
                token = clock.start()
                try:
                    comps = await backend.complete(reqs)
                    if len(comps) != len(reqs):
                        raise BackendError(f"backend {target.backend_name} returned {len(comps)} "
                                           f"answers for {len(reqs)} requests")
                except asyncio.CancelledError as e:
                    share = clock.finish(token)
                    self._settle_cancelled(reqs, chunk, getattr(e, "partial", None), share, keys, target,
                                           store, deliver)
                    raise
                except Exception as e:
                    err = e if isinstance(e, HybridnbError) else BackendError(f"{type(e).__name__}: {e}")
                    if err is not e:
                        err.__cause__ = e
                    now = time.time()
                    comps = [Completion("", Usage(), now, now, error=err, billed=False) for _ in reqs]
                share = clock.finish(token)
                self._settle(reqs, chunk, comps, share, keys, target, store, deliver)

        if workers == 1 and len(chunks) == 1:  # one call: no tasks to spawn (Ctrl-C still cancels it)
            await worker()
            return
        tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
        watch = len(chunks) > 1 and type(backend).metrics is not Backend.metrics
        try:
            async with poll_metrics(backend, target.route, target.backend_name) if watch else _nothing():
                await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            left = sum(len(c) for c in it)
            tracker.dropped(*lane, left)
            raise

    # ---- turning completions into responses + records -------------------
    def _settle(self, reqs, chunk, comps, share, keys, target: Target, store, deliver) -> None:
        each = share / len(reqs)
        records, responses, cache_items = [], [], []
        overrides = target.settings.price_overrides()
        for r, group, c in zip(reqs, chunk, comps):
            billed = c.error is None or c.billed
            usage = c.usage if billed else Usage()
            if target.pricing == "tokens":
                cost, unpriced = pricing.token_cost(target.price_model, usage, overrides)
            else:
                cost, unpriced = pricing.compute_cost(each, target.rate_per_hour), False
            rec = make_record(r, target, self.session, status="ok" if c.error is None else "error", usage=usage,
                               cost=cost, latency=c.latency_s, held=each,
                               busy=c.busy_s if c.busy_s is not None else each, unpriced=unpriced,
                               error=c.error, answer=c.text, probs=c.choice_probs)
            resp = make_response(target, c.text, usage, cost, c.latency_s, each, unpriced, c.error, rec,
                                  json_value=c.extra.get("json"), probs=c.choice_probs)
            records.append(rec)
            responses.append((group, resp))
            if c.error is None and store is not None:
                cache_items.append((keys[group[0]], c.text, usage, cost, target.model, c.choice_probs))
            tracker.finished(target.route, target.backend_name, c.latency_s, c.error is not None)
            self.spent_usd += cost
        lane_key = (target.route, target.backend_name, target.model)
        n, secs = self._lane_seconds.get(lane_key, (0, 0.0))
        self._lane_seconds[lane_key] = (n + len(reqs), secs + share)
        dup_records = []
        for group, resp in responses:
            deliver(group[0], resp)
            for i in group[1:]:
                dresp, drec = duplicate_outcome(resp)
                dup_records.append(drec)
                deliver(i, dresp)
        self.writer(target.settings.home).extend(records + dup_records)
        if store is not None and cache_items:
            store.put_many(cache_items)
        self._emit(records + dup_records)

    def _settle_cancelled(self, reqs, chunk, partial, share, keys, target: Target, store, deliver) -> None:
        """Ctrl-C mid-chunk: rows that had finished (``partial[k]``, from a bulk backend) are settled like
        any answer (ledger, cache); the rest are recorded as interrupted."""
        done = [k for k, c in enumerate(partial or ()) if c is not None]
        part = share * len(done) / len(reqs)
        if done:
            self._settle([reqs[k] for k in done], [chunk[k] for k in done], [partial[k] for k in done], part,
                         keys, target, store, deliver)
        rest = sorted(set(range(len(reqs))) - set(done))
        if rest:
            self._settle_interrupted([reqs[k] for k in rest], [chunk[k] for k in rest], target, share - part)

    def _settle_interrupted(self, reqs, chunk, target: Target, share: float) -> None:
        """Record calls cut off by Ctrl-C: their held time was spent."""
        each = share / len(reqs)
        err = KeyboardInterrupt()
        recs = []
        for r in reqs:
            cost = pricing.compute_cost(each, target.rate_per_hour) if target.pricing == "compute" else 0.0
            recs.append(make_record(r, target, self.session, status="error", usage=Usage(), cost=cost, latency=each,
                                     held=each, busy=each, unpriced=False, error=err, answer=""))
            tracker.finished(target.route, target.backend_name, each, True)
            self.spent_usd += cost
        self.writer(target.settings.home).extend(recs)
        self._emit(recs)

    # ---- non-LLM local work ----------------------------------------------
    def record_compute(self, route: str, backend: str, model: str, seconds: float, rows: int = 1, *,
                       rate_usd_per_hour: float | None = None, gpus: float | None = None,
                       tags: Mapping[str, Any] | None = None, overrides=None) -> Record:
        """Ledger a stretch of local compute (e.g. a classifier labelling rows), priced by time."""
        settings = get_settings(overrides)
        rs = settings.route(route)
        rate = rate_usd_per_hour if rate_usd_per_hour is not None else pricing.compute_rate_per_hour(rs, backend)
        cost = pricing.compute_cost(seconds, rate)
        tags = dict(tags or {})
        rec = Record(
            ts=time.time(), route=route, backend=backend, model=model, status="ok", cost_usd=cost,
            latency_s=seconds, held_s=seconds, busy_s=seconds,
            gpus=gpus if gpus is not None else (0.0 if backend == "embedded" else rs.gpus),
            pricing="compute", notebook=str(tags.get("notebook", "")), cell=str(tags.get("cell", "")),
            batch=str(tags.get("batch", "")), template=str(tags.get("template", "")),
            session=self.session or "", kind="compute", rows=int(rows),
        )
        self.spent_usd += cost
        self.writer(settings.home).append(rec)
        self._emit([rec])
        return rec


@contextlib.asynccontextmanager
async def _nothing():
    yield


_dispatcher: Dispatcher | None = None
_dlock = threading.Lock()


def get_dispatcher() -> Dispatcher:
    """The process-wide dispatcher."""
    global _dispatcher
    with _dlock:
        if _dispatcher is None:
            _dispatcher = Dispatcher()
        return _dispatcher


def reset_dispatcher() -> None:
    """Forget backends, writers and session spend (tests, `%hybridnb reset`)."""
    global _dispatcher
    with _dlock:
        _dispatcher = None
