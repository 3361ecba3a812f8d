"""`%hybridnb batches`: list, re-attach to and cancel provider batch jobs (from any kernel).

``list_jobs()`` reads the jobs from the ledger and asks the provider how the open ones are
doing; ``attach(id)`` waits for a job and collects its rows into the cache and the ledger
(the cell that submitted it then finds them there); ``cancel(id)`` asks the provider to stop it
(rows it finished are still collected by a later attach).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import get_settings
from ..errors import HybridnbError
from ..types import Request
from . import jobs, provider


def _target_for(meta: dict[str, Any]):
    """(dispatcher, target, batch-priced target) for a job's route, checked against its endpoint."""
    from ..core.dispatcher import get_dispatcher

    d = get_dispatcher()
    overrides = meta.get("overrides") or None
    target = d.resolve(meta["route"], overrides)
    if target.endpoint != meta["endpoint"]:
        raise HybridnbError(f"batch job {meta['id']} was submitted to {meta['endpoint']}, but %%{meta['route']} "
                            f"now points at {target.endpoint}; point it back to collect the job")
    bt, _ = provider.batch_target(d, meta["route"], overrides, target)
    return d, target, bt


def _requests(meta: dict[str, Any]) -> dict[str, list]:
    """custom_id → [(row, Request)] rebuilt from the uploaded JSON lines."""
    out: dict[str, list] = {}
    tags = {**(meta.get("tags") or {}), "batch": meta["id"]}
    choices = tuple(meta["choices"]) if meta.get("choices") else None
    for n, raw in enumerate(Path(meta["input"]).read_text(encoding="utf-8").splitlines()):
        line = json.loads(raw)
        body = line["body"]
        msgs = body.get("messages") or []
        system = next((m["content"] for m in msgs if m.get("role") == "system"), None)
        prompt = next((m["content"] for m in reversed(msgs) if m.get("role") == "user"), "")
        r = Request(prompt, body.get("model"), system, body.get("max_tokens"), body.get("temperature"), choices,
                    meta.get("json_schema"), tags)
        out[line["custom_id"]] = [(n, r)]
    return out


def attach(batch_id: str, progress: bool = True) -> str:
    """Wait for a job and collect its rows into the cache and the ledger; a one-line summary."""
    home = get_settings().home
    meta = jobs.load_meta(home, batch_id)
    rows = jobs.job_rows(home)
    mine = rows.filter(rows["batch"] == batch_id)
    if mine.height and mine["status"][0] != jobs.SUBMITTED:
        return f"batch job {batch_id} was already collected ({mine['status'][0]}: {mine['note'][0]})"
    d, target, bt = _target_for(meta)
    by_key = _requests(meta)
    b = provider.wait(target, batch_id, len(by_key), progress, float(target.settings["batch_poll_s"]))
    store = d.cache(home) if meta.get("cache", True) else None
    answered = provider.collect(d, bt, b, by_key, store, lambda i, resp: None, meta.get("tags") or {})
    return (f"batch job {batch_id} {b.status}: {answered:,} of {len(by_key):,} requests answered and cached; "
            "run its cell again to get the frame")


def cancel(batch_id: str) -> str:
    """Ask the provider to cancel a job."""
    meta = jobs.load_meta(get_settings().home, batch_id)
    _, target, _ = _target_for(meta)
    b = provider._api(target, provider.client_for(target).batches.cancel, batch_id)
    return (f"batch job {batch_id}: {b.status}; rows it finished are still collected by "
            f"`%hybridnb batches attach {batch_id}` or by running its cell again")


def list_jobs(live: bool = True):
    """Jobs from the ledger (polars), with the provider's status and counts for the open ones."""
    import polars as pl

    home = get_settings().home
    rows = jobs.job_rows(home)
    if not live or not rows.height:
        return rows
    live_status, done = [], []
    for bid, status in zip(rows["batch"], rows["status"]):
        if status != jobs.SUBMITTED:
            live_status.append(status)
            done.append(None)
            continue
        try:
            _, target, _ = _target_for(jobs.load_meta(home, bid))
            b = provider._api(target, provider.client_for(target).batches.retrieve, bid)
            rc = b.request_counts
            live_status.append(b.status)
            done.append(f"{rc.completed}+{rc.failed} failed of {rc.total}" if rc else None)
        except HybridnbError as e:
            live_status.append(f"unknown ({type(e).__name__})")
            done.append(None)
    return rows.with_columns(pl.Series("provider_status", live_status), pl.Series("progress", done))


def cmd_batches(rest: list[str]) -> str:
    """`%hybridnb batches [list | attach ID | cancel ID]`."""
    sub = rest[0] if rest else "list"
    if sub in ("attach", "cancel") and len(rest) == 2:
        return attach(rest[1]) if sub == "attach" else cancel(rest[1])
    if sub != "list" or len(rest) > 1:
        raise HybridnbError("usage: %hybridnb batches [list | attach BATCH_ID | cancel BATCH_ID]")
    jobs_df = list_jobs()
    if not jobs_df.height:
        return "no provider batch jobs in this ledger (submit one with `%%reason --over DATA --batch-api`)"
    lines = []
    for j in jobs_df.iter_rows(named=True):
        state = j.get("provider_status") or j["status"]
        extra = f" · {j['progress']}" if j.get("progress") else (f" · {j['note']}" if j.get("note") else "")
        lines.append(f"{j['batch']} · {state} · {j['rows']:,} requests · {j['model']} (%%{j['route']}){extra}")
    return "\n".join(lines)
