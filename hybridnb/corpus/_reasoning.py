"""Constrained decisions on the reasoning route, checked against deterministic evidence.

Each decision asks the reasoning model to *choose* among candidates (``choices=``) that
deterministic evidence (keywords, centroids, a classifier) ranked. Who decides is recorded:

* ``reason``   — the reasoning model's valid answer was used (a real reasoning API);
* ``evidence`` — the evidence's choice was used: the route is the offline stand-in (which
  cannot reason), the answer was invalid, or the call failed.

Answers are stored in the ``reason_calls`` table as they arrive, so an interrupted run
resumes without asking (or paying) twice; the core cache is a second line of defence.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import polars as pl

from ..core.calls import template_hash
from ..core.dispatcher import get_dispatcher
from ..errors import HybridnbError

SYSTEM = ("You are helping an analyst code tech-conference transcripts by the priorities of CTOs. "
          "Answer with exactly one of the allowed options.")
TRUST = ("auto", "reason", "evidence")
EMBEDDED_CHUNK = 2


@dataclass
class Decision:
    """One question: the prompt, allowed answers, and the evidence's own answer."""

    key: str
    prompt: str
    choices: list[str]
    evidence: str


def decide(con, step: str, decisions: list[Decision], trust: str = "auto",
           template: str = "") -> dict[str, str]:
    """Answer every decision (stored answers first); returns key -> decided choice."""
    if trust not in TRUST:
        raise HybridnbError(f"trust must be one of {TRUST}, got {trust!r}")
    done = _stored(con, step)
    todo = [d for d in decisions if d.key not in done]
    if todo and trust != "evidence":
        _ask(con, step, todo, trust, template)
    elif todo:
        for d in todo:
            _store(con, step, d, None, trust="evidence")
    done = _stored(con, step)
    return {d.key: done[d.key] for d in decisions}


def _stored(con, step: str) -> dict[str, str]:
    rows = con.execute("SELECT key, decided FROM reason_calls WHERE step = ?", [step]).fetchall()
    return dict(rows)


def _ask(con, step: str, todo: list[Decision], trust: str, template: str) -> None:
    d = get_dispatcher()
    try:
        target = d.resolve("reason")
    except HybridnbError as exc:  # no key and no offline stand-in: evidence decides, visibly
        for dec in todo:
            _store(con, step, dec, None, trust="evidence", error=f"{type(exc).__name__}: {exc}")
        return
    from ..core.calls import build_request

    row = con.execute("SELECT value FROM schema_info WHERE key = 'run_id'").fetchall()
    tags = {"batch": f"corpus:{row[0][0] if row else '-'}:{step}", "notebook": "corpus",
            "template": template_hash(template or step)}
    requests = [build_request(dec.prompt, target.model, system=SYSTEM, choices=dec.choices,
                              max_tokens=16, tags=tags) for dec in todo]

    failed: list[BaseException] = []

    def on_result(i, resp):
        try:
            _store(con, step, todo[i], resp, trust=trust)
        except BaseException as exc:  # the dispatcher's loop must not swallow it
            failed.append(exc)

    # the embedded stand-in scores every choice of a batch at once: small chunks bound its memory
    chunk = EMBEDDED_CHUNK if target.backend_name == "embedded" else len(requests)
    try:
        for start in range(0, len(requests), chunk):
            d.run(requests[start:start + chunk], "reason",
                  on_result=lambda i, resp, s=start: on_result(s + i, resp))
        if failed:
            raise failed[0]
    except HybridnbError as exc:  # e.g. budget exceeded: what is missing falls back to evidence
        left = [dec for dec in todo if dec.key not in _stored(con, step)]
        for dec in left:
            _store(con, step, dec, None, trust="evidence", error=f"{type(exc).__name__}: {exc}")


def _store(con, step: str, dec: Decision, resp, trust: str, error: str | None = None) -> None:
    answer = valid = None
    tokens, cost, cached, simulated, model = 0, 0.0, False, False, None
    if resp is not None:
        answer = (resp.text or "").strip()
        valid = resp.error is None and answer in dec.choices
        tokens = resp.usage.input_tokens + resp.usage.output_tokens
        cost, cached, simulated, model = resp.cost_usd, resp.cached, resp.simulated, resp.model
        if resp.error is not None:
            error = f"{type(resp.error).__name__}: {resp.error}"
    use_reason = bool(valid) and (trust == "reason" or (trust == "auto" and not simulated))
    decided = answer if use_reason else dec.evidence
    con.execute(
        "INSERT INTO reason_calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [step, dec.key, hashlib.sha256(dec.prompt.encode()).hexdigest()[:16], json.dumps(dec.choices),
         answer, valid, decided, "reason" if use_reason else "evidence", tokens, cost, cached,
         simulated, model, error])


def calls(con, step: str | None = None) -> pl.DataFrame:
    """The stored reasoning decisions (one row per call), optionally for one step."""
    where = "true" if step is None else f"step = '{step}'"
    return con.sql(f"SELECT * FROM reason_calls WHERE {where}").pl()
