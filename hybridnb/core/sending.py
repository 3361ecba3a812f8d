"""Sending chunks: reserve against the budget, write ahead, call the backend, settle.

Mixed into :class:`~hybridnb.core.dispatcher.Dispatcher`; split out to keep modules small.
Order on every chunk: reservation (or a budget stop for that chunk) → write-ahead
``unsettled`` rows → ``backend.complete`` → answers delivered → ledger → cache →
listeners.  Nothing after delivery may lose a paid answer: a failed ledger or cache
write is shouted on stderr and as a RuntimeWarning.

Ledger before cache, deliberately: the ledger is the bill and feeds every budget, so a paid call's
cost is written first.  A kill -9 in the milliseconds between the two writes loses that answer's
text (the ledger keeps its cost; the rerun pays once more, and that is in the ledger too); the other
order would keep the text but leave the call ``unsettled`` at $0, so budgets would undercount it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time

from . import pricing
from .budget import Guard, worst_case
from .clock import HeldClock
from .records import Target, duplicate_outcome, make_record, make_response, settle_record
from .response import money
from ..backends._poll import poll_metrics
from ..errors import BackendError, HybridnbError, LedgerError
from ..spend.signals import tracker
from ..store.ledger import Record
from ..types import Completion, Usage


class Sender:
    """The sending half of the dispatcher (needs ``writer``, ``publish``, ``_clocks``, ``_lane_seconds``)."""

    async def _send(self, requests, todo, keys, target: Target, store, deliver, force, g: Guard | None) -> None:
        lane = (target.route, target.backend_name)
        clock = self._clocks.get(lane) or self._clocks.setdefault(lane, HeldClock())
        backend = target.backend
        chunk_size = max(1, int(backend.batch_size))  # declared by the Backend contract
        workers = max(1, min(int(target.settings["concurrency"] or 1), backend.max_concurrency or 1))
        chunks = [todo[i:i + chunk_size] for i in range(0, len(todo), chunk_size)]
        workers = min(workers, len(chunks))
        tracker.enqueued(*lane, len(todo), workers * chunk_size)
        it = iter(chunks)
        t_queued = time.monotonic()
        budget = target.settings.budget_usd

        async def worker() -> None:
            for whole in it:
                pending = whole
                while pending:  # a chunk that does not fit whole is sent in the parts that do
                    chunk, amount = pending, 0.0
                    if g is not None:
                        chunk, amount = await self._reserve_part(g, pending, requests, target, budget, force)
                    if not chunk:
                        self._refuse(pending, requests, target, g, budget, deliver)
                        tracker.dropped(*lane, len(pending))
                        break
                    pending = pending[len(chunk):]
                    reqs = [requests[grp[0]] for grp in chunk]
                    box = [0.0]  # what the chunk really cost, to settle its reservation
                    try:
                        await self._call(reqs, chunk, target, amount, force, keys, store, deliver, clock,
                                         t_queued, box)
                    finally:
                        if g is not None:
                            g.settle(amount, box[0])

        if workers == 1 and len(chunks) == 1:  # one call: no tasks to spawn (Ctrl-C still cancels it)
            await worker()
            return
        tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
        watch = len(chunks) > 1 and backend.has_metrics
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

    @staticmethod
    async def _reserve_part(g: Guard, chunk, requests, target: Target, budget, force) -> tuple[list, float]:
        """Reserve the worst case of ``chunk`` (or, with nothing else in flight, of its longest head that
        fits); while it does not fit but calls are in flight, wait for them to settle. ([] , 0) = refused."""
        reqs = [requests[grp[0]] for grp in chunk]
        amount = worst_case(reqs, target)
        while not g.reserve(amount, budget, force):
            if g.in_flight:
                await asyncio.sleep(0.01)
                continue
            g.refresh()  # another process may have moved on; nothing of ours is pending
            if g.reserve(amount, budget, force):
                return chunk, amount
            if target.pricing != "tokens":
                return [], 0.0  # compute is reserved per chunk: it cannot be split
            n, part = 0, 0.0
            for r in reqs:
                w = worst_case([r], target)
                if not g.fits(part + w, budget):
                    break
                n, part = n + 1, part + w
            if n == 0 or not g.reserve(part, budget, force):
                return [], 0.0
            return chunk[:n], part
        return chunk, amount

    @staticmethod
    def _refuse(chunk, requests, target: Target, g: Guard, budget, deliver) -> None:
        """Each row of ``chunk`` gets the budget error; nothing is sent for them."""
        need = worst_case([requests[chunk[0][0]]], target)
        err = g.refusal(budget, need, "the next call")
        err.args = (f"not sent: {err}",)
        for group in chunk:
            for i in group:
                deliver(i, make_response(target, "", Usage(), 0.0, 0.0, 0.0, False, err, None))

    async def _call(self, reqs, chunk, target: Target, amount, force, keys, store, deliver, clock, t_queued, box):
        """Write-ahead, send one chunk, settle it."""
        lane = (target.route, target.backend_name)
        share_each = amount / len(reqs)
        sent = [make_record(r, target, self.session, status="unsettled", usage=Usage(), cost=0.0, latency=0.0,
                            held=0.0, busy=0.0, unpriced=False, error=None, answer="") for r in reqs]
        for rec in sent:
            rec.forced, rec.reserved_usd = force, share_each
        try:
            self.writer(target.settings.home).extend(sent)  # the write-ahead row: a kill -9 leaves it visible
        except LedgerError as e:
            for group in chunk:
                for i in group:
                    deliver(i, make_response(target, "", Usage(), 0.0, 0.0, 0.0, False, e, None))
            return
        tracker.started(*lane, len(reqs), time.monotonic() - t_queued)
        token = clock.start()
        try:
            comps = await target.backend.complete(reqs)
            if len(comps) != len(reqs):
                raise BackendError(f"backend {target.backend_name} returned {len(comps)} "
                                   f"answers for {len(reqs)} requests")
        except asyncio.CancelledError as e:
            share = clock.finish(token)
            box[0] = self._settle_cancelled(reqs, chunk, getattr(e, "partial", None), share, keys, target,
                                            store, deliver, sent)
            raise
        except Exception as e:
            err = e if isinstance(e, HybridnbError) else BackendError(f"{type(e).__name__}: {e}")
            now = time.time()
            comps = [Completion("", Usage(), now, now, error=err, billed=False) for _ in reqs]
        share = clock.finish(token)
        box[0] = self._settle(reqs, chunk, comps, share, keys, target, store, deliver, sent)

    # ---- turning completions into responses + records -------------------
    def _settle(self, reqs, chunk, comps, share, keys, target: Target, store, deliver, sent) -> float:
        each = share / len(reqs)
        records, responses, cache_items = [], [], []
        overrides = target.settings.price_overrides()
        total = 0.0
        for r, group, c, pre in zip(reqs, chunk, comps, sent):
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
            settle_record(rec, pre, c.extra)
            resp = make_response(target, c.text, usage, cost, c.latency_s, each, unpriced, c.error, rec,
                                  json_value=c.extra.get("json"), probs=c.choice_probs)
            records.append(rec)
            responses.append((group, resp))
            if c.error is None and store is not None:
                cache_items.append((keys[group[0]], c.text, usage, cost, target.model, c.choice_probs))
            tracker.finished(target.route, target.backend_name, c.latency_s, c.error is not None)
            self.spent_usd += cost
            total += cost
        lane_key = (target.route, target.backend_name, target.model)
        n, secs = self._lane_seconds.get(lane_key, (0, 0.0))
        self._lane_seconds[lane_key] = (n + len(reqs), secs + share)
        dup_records = []
        for group, resp in responses:  # answers first: nothing below may lose a paid answer
            deliver(group[0], resp)
            for i in group[1:]:
                dresp, drec = duplicate_outcome(resp)
                dup_records.append(drec)
                deliver(i, dresp)
        self._write(target, records + dup_records)
        if store is not None and cache_items:
            try:
                store.put_many(cache_items)
            except Exception as e:  # a damaged cache must not lose the paid answers
                loud(f"answers could not be cached ({type(e).__name__}: {e}); they were returned "
                      f"and ledgered — `%hybridnb cache clear` starts a fresh cache")
        self.publish(records + dup_records)
        return total

    def _write(self, target: Target, records: list[Record]) -> None:
        """Ledger ``records``; a failure is shouted, never allowed to lose the answers already returned."""
        try:
            self.writer(target.settings.home).extend(records)
        except LedgerError as e:
            cost = sum(r.cost_usd for r in records)
            loud(f"{len(records)} call(s) costing {money(cost)} were answered and returned, but the "
                  f"ledger write failed: {e}. Their spend is missing from the ledger.")

    def _settle_cancelled(self, reqs, chunk, partial, share, keys, target: Target, store, deliver, sent) -> float:
        """Ctrl-C mid-chunk: rows that had finished (``partial[k]``, from a bulk backend) are settled like
        any answer (ledger, cache); the rest are recorded as interrupted."""
        done = [k for k, c in enumerate(partial or ()) if c is not None]
        part = share * len(done) / len(reqs)
        cost = 0.0
        if done:
            cost += self._settle([reqs[k] for k in done], [chunk[k] for k in done], [partial[k] for k in done],
                                 part, keys, target, store, deliver, [sent[k] for k in done])
        rest = sorted(set(range(len(reqs))) - set(done))
        if rest:
            cost += self._settle_interrupted([reqs[k] for k in rest], [sent[k] for k in rest], target, share - part)
        return cost

    def _settle_interrupted(self, reqs, sent, target: Target, share: float) -> float:
        """Record calls cut off by Ctrl-C: their held time was spent; tokens may have been billed."""
        each = share / len(reqs)
        err = KeyboardInterrupt()
        recs, total = [], 0.0
        for r, pre in zip(reqs, sent):
            cost = pricing.compute_cost(each, target.rate_per_hour) if target.pricing == "compute" else 0.0
            rec = make_record(r, target, self.session, status="error", usage=Usage(), cost=cost, latency=each,
                              held=each, busy=each, unpriced=False, error=err, answer="")
            settle_record(rec, pre, {"maybe_billed": 1 if target.pricing == "tokens" else 0})
            recs.append(rec)
            tracker.finished(target.route, target.backend_name, each, True)
            self.spent_usd += cost
            total += cost
        self._write(target, recs)
        self.publish(recs)
        return total


def loud(msg: str) -> None:
    """A warning that must not be missed (stderr and the warnings machinery)."""
    import warnings

    print(f"hybridnb: WARNING: {msg}", file=sys.stderr)
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


@contextlib.asynccontextmanager
async def _nothing():
    yield
