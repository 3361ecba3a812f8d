"""``engine="ray"``: the batch's calls as a Ray Data pipeline.

The driver (the notebook) does what needs the whole batch: cache lookups,
in-batch dedup and the budget check.  Only distinct, uncached prompts go into
the dataset.  Its map stage is a pool of actors; each runs this package's own
dispatcher on its rows (the same backend contract, bounded workers, pricing,
held-time sharing), writes the ledger records into the same HYBRIDNB_HOME (one
live file per process) and the answers into the shared cache, and returns
answers plus records.  The driver turns those into Responses, fans them out to
duplicate rows and emits the records to its listeners — it does not write them
again, so nothing is counted twice.  Duplicate rows get their own ``cached``
records, written by the driver, as in the in-process engine.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

from .. import errors as _errors
from ..core.records import duplicate_outcome
from ..core.response import Response
from ..types import Request, Usage
from ..store.cache import cache_key
from ..errors import BackendUnavailable
from ..store.ledger import Record

#: rows per actor call, as a multiple of the actor's concurrency
WAVES_PER_BATCH = 8


def import_ray():
    """``ray`` and ``ray.data``, or a clear error naming the extra."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise BackendUnavailable("the Ray engine needs Ray Data: pip install 'hybridnb[ray]'") from None
    return ray


def ensure_ray(ray) -> None:
    """Start a local Ray instance unless one is connected; workers can import hybridnb."""
    if ray.is_initialized():
        return
    root = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
             runtime_env={"env_vars": {"PYTHONPATH": path}})


class CallStage:
    """Ray Data map stage: one dispatcher per actor, same route settings as the driver."""

    def __init__(self, route: str, values: dict, base: dict, cache: bool, force: bool, session: str):
        from ..core.dispatcher import get_dispatcher

        self.d = get_dispatcher()
        self.target = self.d.resolve(route, values)
        # records carry the notebook's session; each actor still appends to its own file
        self.d.session = session
        self.d.writer(self.target.settings.home, name=f"{session}-ray{os.getpid()}")  # this actor's own file
        self.base = Request(**base)
        self.cache = cache
        self.force = force

    def __call__(self, batch: dict) -> dict:
        from ..core.loop import run_sync

        reqs = [replace(self.base, prompt=str(p)) for p in batch["prompt"]]
        resps = run_sync(self.d.arun(reqs, self.target, cache=self.cache, force=self.force))
        out: dict[str, list] = {k: [] for k in ("text", "tin", "tout", "cost", "latency", "held", "unpriced",
                                                 "err_class", "err", "json", "record")}
        for r in resps:
            out["text"].append(r.text)
            out["tin"].append(r.usage.input_tokens)
            out["tout"].append(r.usage.output_tokens)
            out["cost"].append(r.cost_usd)
            out["latency"].append(r.latency_s)
            out["held"].append(r.held_s)
            out["unpriced"].append(bool(r.unpriced))
            out["err_class"].append(type(r.error).__name__ if r.error is not None else "")
            out["err"].append(str(r.error) if r.error is not None else "")
            out["json"].append(json.dumps(r.json) if r.json is not None else "")
            out["record"].append(json.dumps(asdict(r.record)) if r.record is not None else "")
        return {"g": list(batch["g"]), **out}


def run(d, requests: list[Request], target, *, cache: bool, force: bool,
        on_result: Callable[[int, Response], None], actors: int | None = None) -> None:
    """Send ``requests`` through Ray Data; ``on_result(i, response)`` per request, as it lands."""
    ray = import_ray()
    ensure_ray(ray)
    home = target.settings.home
    store = d.cache(home) if cache else None
    keys = [cache_key(target.route, target.backend_name, target.endpoint, r) for r in requests]
    todo = d.serve_cached(requests, keys, target, store, on_result)
    if not todo:
        return
    if not force:
        d.check_budget(d.estimate([requests[g[0]] for g in todo], target), target.settings)

    cpus = int(ray.cluster_resources().get("CPU", 1) or 1)
    n_actors = max(1, min(actors or cpus, len(todo)))
    per_actor = max(1, math.ceil(int(target.settings["concurrency"] or 1) / n_actors))
    batch_size = per_actor * WAVES_PER_BATCH
    values = {k: v for k, v in target.settings.explicit().items() if v is not None}
    values.update({"home": str(home), "concurrency": per_actor, f"{target.route}.model": target.model,
                   f"{target.route}.backend": target.backend_name})
    first = requests[todo[0][0]]
    base = {"prompt": "", "model": first.model, "system": first.system, "max_tokens": first.max_tokens,
            "temperature": first.temperature, "choices": first.choices, "json_schema": first.json_schema,
            "tags": dict(first.tags)}

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    items = [{"g": n, "prompt": requests[g[0]].prompt} for n, g in enumerate(todo)]
    ds = ray.data.from_items(items, override_num_blocks=max(1, math.ceil(len(items) / batch_size)))
    writer = d.writer(home)
    out = ds.map_batches(CallStage, batch_size=batch_size, batch_format="numpy",
                         compute=ray.data.ActorPoolStrategy(size=n_actors),
                         num_cpus=min(1.0, cpus / n_actors / 2),
                         fn_constructor_kwargs={"route": target.route, "values": values, "base": base,
                                                "cache": cache, "force": force,
                                                "session": d.session or writer.session})
    quiet = logging.getLogger("ray.data")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        _collect(d, out, todo, requests, target, writer, on_result)
    finally:
        quiet.setLevel(level)


def _collect(d, out, todo, requests, target, writer, on_result) -> None:
    for batch in out.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
        dup_records = []
        for j, g in enumerate(batch["g"]):
            group = todo[int(g)]
            resp, rec = _response(batch, j, requests[group[0]], target, d)
            if rec is not None:
                d.publish([rec])  # the actor wrote it to the ledger already
            on_result(group[0], resp)
            for i in group[1:]:
                dresp, drec = duplicate_outcome(resp)
                dup_records.append(drec)
                on_result(i, dresp)
        if dup_records:
            writer.extend(dup_records)
            d.publish(dup_records)


def _response(batch: dict, j: int, req: Request, target, d) -> tuple[Response, Record | None]:
    rec = Record(**json.loads(batch["record"][j])) if batch["record"][j] else None
    cost = float(batch["cost"][j])
    d.spent_usd += cost
    err = None
    if batch["err_class"][j]:
        cls = getattr(_errors, str(batch["err_class"][j]), None)
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            cls = _errors.BackendError
        err = cls(str(batch["err"][j]))
    value = json.loads(batch["json"][j]) if batch["json"][j] else None
    resp = Response(
        text=str(batch["text"][j]), route=target.route, backend=target.backend_name, model=target.model,
        usage=Usage(int(batch["tin"][j]), int(batch["tout"][j])), cost_usd=cost,
        latency_s=float(batch["latency"][j]), held_s=float(batch["held"][j]), pricing=target.pricing,
        simulated=target.simulated, unpriced=bool(batch["unpriced"][j]), reference_model=target.reference_model,
        error=err, json=value, record=rec,
    )
    return resp, rec

