"""The dispatcher: the one place that knows cache, budget, ledger and signals.

Flow of a run (one call or a batch)::

    requests ─► screen (settings checked, rows that cannot be sent get their error)
             ─► cache lookup ─hit─► Response(cached, $0, saved $)
             ─► dedup identical prompts (sent once, the rest are cache-like hits)
             ─► ledger writable? batch estimate fits the budget? (else nothing is sent)
             ─► workers (≤ concurrency): reserve the chunk's worst case ─► write-ahead row
                 ─► backend.complete(chunk) ─► price ─► Response ─► ledger ─► cache ─► listeners
             ─► settle the reservation with what it really cost
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .. import backends as _backends
from . import pricing
from .clock import HeldClock
from .budget import Guard, make_scope
from .context import cell_tags, kernel_session
from .target import choose_backend
from .records import Target, cached_outcome, make_record, make_response, short_hash
from .screen import screen
from .sending import Sender
from .loop import run_sync
from .response import Response
from ..spend.render import money
from ..types import Request, Usage
from ..store.cache import Cache, cache_key
from ..config import EMBEDDED_MODEL, Settings, get_settings
from ..errors import ConfigError
from ..store.ledger import LedgerWriter, Record

Listener = Callable[[Record], None]
ResultCallback = Callable[[int, Response], None]

#: compute seconds assumed per call before a lane has history (for estimates)
DEFAULT_CALL_SECONDS = 0.5


class Dispatcher(Sender):
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
        self._guards: dict[tuple, Guard] = {}
        self._last_cost: dict[int, float] = {}  # a chunk's settled cost, for its reservation
        self.session = kernel_session()
        self.spent_usd = 0.0
        self._warned_at: float | None = None

    # ---- plumbing -------------------------------------------------------
    def writer(self, home: Path, name: str | None = None) -> LedgerWriter:
        """This process's ledger writer under ``home`` (its file named ``name``, default the session)."""
        with self._lock:
            w = self._writers.get(home)
            if w is None:
                w = self._writers[home] = LedgerWriter(home, name or self.session)
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

    def record(self, records: Sequence[Record], home: Path) -> None:
        """Ledger records made outside a call (compute stretches, the corpus stand-in): appended,
        counted in this session's spend, shown to listeners."""
        self.spent_usd += sum(r.cost_usd for r in records)
        self.writer(home).extend(records)
        self.publish(records)

    def publish(self, records: Iterable[Record]) -> None:
        """Show records already in the ledger (e.g. written by Ray actors) to the listeners."""
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
        name, simulated = choose_backend(route, rs)
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
        if not model and backend.discovers_model:
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
                # chat template, stated options and label included (the backend declares them)
                tin, tout = target.backend.estimate_tokens(r, default_out, target.price_model)
                total += tin * p.input + tout * p.output
            return total / 1_000_000
        n, secs = self._lane_seconds.get((target.route, target.backend_name, target.model), (0, 0.0))
        per_call = secs / n if n else DEFAULT_CALL_SECONDS
        return len(requests) * per_call * target.rate_per_hour / 3600.0

    def guard(self, settings: Settings, notebook: str | None = None) -> Guard:
        """The budget guard of the configured scope (``budget_per``), spend read from the ledger."""
        home = settings.home
        if notebook is None:
            notebook = cell_tags().get("notebook", "")
        scope = make_scope(settings["budget_per"], self.writer(home).session, notebook)
        with self._lock:
            g = self._guards.get((home, scope))
            if g is None:
                g = self._guards[(home, scope)] = Guard(home, scope)
        return g

    def check_budget(self, estimate: float, settings: Settings, notebook: str | None = None) -> None:
        """Raise BudgetExceeded when ``estimate`` does not fit next to what is spent and reserved."""
        budget = settings.budget_usd
        if budget is None:
            return
        g = self.guard(settings, notebook)
        g.refresh()
        if not g.fits(estimate, budget):
            raise g.refusal(budget, estimate, "this")

    def _maybe_warn(self, settings: Settings, g: Guard | None) -> None:
        budget = settings.budget_usd
        if not budget or g is None:
            return
        spent = g.spent
        frac = spent / budget
        if frac >= settings["budget_warn_fraction"] and self._warned_at != budget:
            self._warned_at = budget
            print(f"hybridnb: {frac:.0%} of the {money(budget)} budget spent {g.scope.label} "
                  f"({money(spent)})", file=sys.stderr)

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
        """Cache, screen, budget, then send; every request gets a Response (errors included)."""
        home = target.settings.home
        results: list[Response | None] = [None] * len(requests)

        def deliver(i: int, resp: Response) -> None:
            results[i] = resp
            if on_result is not None:
                on_result(i, resp)

        requests, bad = screen(requests, target)
        for i, err in bad.items():
            deliver(i, make_response(target, "", Usage(), 0.0, 0.0, 0.0, False, err, None))
        store = self.cache(home) if cache else None
        if cache == "semantic":  # opt-in near-duplicate hits after the exact ones (store/semantic.py)
            from ..store.semantic import SemanticCache

            store = SemanticCache(store, target)
        keys = [cache_key(target.route, target.backend_name, target.endpoint, r) for r in requests]
        todo = self.serve_cached(requests, keys, target, store, deliver, skip=bad)
        if cache == "semantic" and todo:
            todo = store.serve_similar(self, requests, todo, keys, deliver)
        if not todo:
            return results  # type: ignore[return-value]
        self.writer(home).check_writable()  # an unwritable home fails here, before anything is paid
        owner, ttl = f"{self.writer(home).session}-{os.getpid()}", self._lease_ttl(target, todo)
        waiting: list[list[int]] = []
        leased: set[str] = set()
        if store is not None:  # pay once across kernels: another process sending the same prompt is waited for
            leased, others = store.acquire([keys[grp[0]] for grp in todo], owner, ttl)
            waiting = [grp for grp in todo if keys[grp[0]] in others]
            todo = [grp for grp in todo if keys[grp[0]] not in others]
            todo = self._serve_hits(requests, todo, keys, target, store, deliver)  # answered just now?
        if not todo and not waiting:
            store.release(list(leased), owner)
            return results  # type: ignore[return-value]
        try:
            g = self._budget_gate(requests, todo or waiting, target, force)
            setup = await self._prepare(target, requests[(todo or waiting)[0][0]])
            if todo:
                await self._send(requests, todo, keys, target, store, deliver, force, g)
            if waiting:
                await self._await_others(requests, waiting, keys, target, store, deliver, force, g, owner, ttl)
        finally:
            if store is not None and leased:
                store.release(list(leased), owner)
        first = results[(todo or waiting)[0][0]]
        if setup is not None and first is not None:
            first.setup_s, first.setup_usd = setup.held_s, setup.cost_usd
        self._maybe_warn(target.settings, g)
        return results  # type: ignore[return-value]

    def _budget_gate(self, requests, todo, target: Target, force: bool) -> Guard | None:
        """The scope's guard (spend re-read from the ledger); a batch whose expected cost does not fit is
        refused before anything is sent."""
        if target.settings.budget_usd is None:
            return None
        budget = target.settings.budget_usd
        g = self.guard(target.settings, str((requests[todo[0][0]].tags or {}).get("notebook", "")))
        g.refresh()
        if not force and len(todo) > 1:
            est = self.estimate([requests[grp[0]] for grp in todo], target)
            if not g.fits(est, budget):
                raise g.refusal(budget, est, f"this batch of {len(todo)} calls (expected)")
        return g

    @staticmethod
    def _lease_ttl(target: Target, todo) -> float:
        """How long a lease may be held: every wave of the batch timing out with all retries."""
        s = target.settings
        waves = -(-len(todo) // max(1, int(s["concurrency"] or 1)))
        return float(s["timeout_s"]) * (1 + int(s["max_retries"] or 0)) * waves + 30.0

    async def _await_others(self, requests, waiting, keys, target, store, deliver, force, g, owner, ttl):
        """Serve prompts another process is paying for from its answers; send those it gave up on."""
        deadline = time.monotonic() + ttl
        while waiting:
            await asyncio.sleep(0.05)
            waiting = self._serve_hits(requests, waiting, keys, target, store, deliver)
            if not waiting:
                return
            mine, _ = store.acquire([keys[grp[0]] for grp in waiting], owner, ttl)
            if time.monotonic() > deadline:
                mine = {keys[grp[0]] for grp in waiting}
            ours = [grp for grp in waiting if keys[grp[0]] in mine]
            waiting = [grp for grp in waiting if keys[grp[0]] not in mine]
            ours = self._serve_hits(requests, ours, keys, target, store, deliver)  # answered meanwhile?
            try:
                if ours:
                    await self._send(requests, ours, keys, target, store, deliver, force, g)
            finally:
                store.release([keys[grp[0]] for grp in ours], owner)

    def _serve_hits(self, requests, groups, keys, target: Target, store, deliver) -> list[list[int]]:
        """Deliver the groups the cache now answers; return the others."""
        hits = store.get_many([keys[grp[0]] for grp in groups]) if groups else {}
        left, recs = [], []
        for grp in groups:
            hit = hits.get(keys[grp[0]])
            if hit is None:
                left.append(grp)
                continue
            for i in grp:
                resp, rec = cached_outcome(requests[i], target, self.session, hit)
                recs.append(rec)
                deliver(i, resp)
        if recs:
            self._write(target, recs)
            self.publish(recs)
        return left

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
        self._write(target, [rec])
        self.publish([rec])
        return rec

    def serve_cached(self, requests, keys, target: Target, store, deliver, skip=()) -> list[list[int]]:
        """Deliver what the cache knows (ledgered as hits); return the rest grouped by
        key, so identical prompts are sent once: ``[[first, duplicate, ...], ...]``."""
        hits = store.get_many(list(set(keys))) if store is not None else {}
        groups: dict[str, list[int]] = {}
        hit_records = []
        for i, k in enumerate(keys):
            if i in skip:
                continue
            if k in hits:
                resp, rec = cached_outcome(requests[i], target, self.session, hits[k])
                hit_records.append(rec)
                deliver(i, resp)
            else:
                groups.setdefault(k, []).append(i)
        if hit_records:
            self._write(target, hit_records)
            self.publish(hit_records)
        return list(groups.values())

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
        self.record([rec], settings.home)
        return rec


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
    """Forget backends, writers and session spend (tests, `%hybridnb reset`); close the old clients."""
    global _dispatcher
    with _dlock:
        old, _dispatcher = _dispatcher, None
    if old is not None and old._backends:  # an unclosed client's sockets would be closed by GC at any moment
        run_sync(_backends.close_all(list(old._backends.values())))
