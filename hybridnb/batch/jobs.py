"""Provider batch jobs' bookkeeping: the ledger rows that keep a job's id, and its files on disk.

A job is kept in the ledger as ``kind="batch-job"`` rows (existing columns, no
schema of its own): ``batch`` = the provider's batch id, ``prompt_hash`` = the
job key (a hash of endpoint, model and the cache keys of its rows, so the same
cell finds its job again), ``status`` = ``submitted`` when sent and then the
provider's final status (``completed``, ``expired``, ``cancelled``, ``failed``)
once the results are collected, ``rows`` = requests in the job, cost 0 (the
rows carry the cost).  Next to it, ``<home>/batches/<id>.json`` keeps what is
needed to collect the job from any kernel: route, endpoint, model, choices,
schema, tags, and the uploaded JSON-lines file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..errors import HybridnbError
from ..store.ledger import Record

KIND = "batch-job"
SUBMITTED = "submitted"
TERMINAL = ("completed", "failed", "expired", "cancelled")


def folder(home: Path) -> Path:
    d = Path(home) / "batches"
    d.mkdir(parents=True, exist_ok=True)
    return d


def save_meta(home: Path, batch_id: str, meta: dict[str, Any]) -> Path:
    path = folder(home) / f"{batch_id}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=1, default=str), encoding="utf-8")
    tmp.replace(path)
    return path


def load_meta(home: Path, batch_id: str) -> dict[str, Any]:
    path = Path(home) / "batches" / f"{batch_id}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise HybridnbError(f"no batch job {batch_id!r} was submitted from this home ({Path(home)}); "
                            "`%hybridnb batches` lists the known ones") from None


def job_record(target, session: str | None, batch_id: str, job_key: str, status: str, rows: int,
               tags: dict[str, Any] | None = None, note: str = "") -> Record:
    """The ledger row that marks a job's state change."""
    tags = tags or {}
    return Record(ts=time.time(), route=target.route, backend=target.backend_name, model=target.model,
                  status=status, pricing="tokens", kind=KIND, batch=batch_id, prompt_hash=job_key, rows=rows,
                  notebook=str(tags.get("notebook", "")), cell=str(tags.get("cell", "")),
                  template=str(tags.get("template", "")), error=note[:300], session=session or "")


def job_rows(home: Path):
    """One row per job (latest state first): batch, status, rows, model, route, submitted ts, job key."""
    from ..store.ledger import connect

    con = connect(home)
    try:
        return con.sql(f"""
            SELECT batch, arg_max(status, ts) AS status, max(rows) AS rows, any_value(model) AS model,
                   any_value(route) AS route, min(ts) AS submitted, max(ts) AS updated,
                   any_value(prompt_hash) AS job_key, arg_max(error, ts) AS note
            FROM ledger WHERE kind = '{KIND}' GROUP BY batch ORDER BY submitted DESC""").pl()
    finally:
        con.close()


def open_job(home: Path, job_key: str) -> str | None:
    """The provider id of a submitted, not yet collected job with this key, else None."""
    jobs = job_rows(home)
    if not jobs.height:
        return None
    mine = jobs.filter((jobs["job_key"] == job_key) & (jobs["status"] == SUBMITTED))
    return mine["batch"][0] if mine.height else None


def job_key_of(by_key: dict[str, Any], target) -> str:
    """Endpoint, model and the rows' cache keys: the same cell over the same rows finds its job again."""
    import hashlib

    h = hashlib.sha256(f"{target.endpoint}\n{target.model}\n".encode())
    for k in sorted(by_key):
        h.update(k.encode())
    return h.hexdigest()[:32]
