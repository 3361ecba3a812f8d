"""Structured questions to the reasoning route, each with the deterministic stand-in's own answer.

Every question (:class:`Ask`) carries a JSON schema (or a closed set of choices) and the answer the
offline stand-in derives from the evidence. Who decided is recorded per call in ``reason_calls``:

* ``reason``   — a real reasoning model's valid answer was used;
* ``stand-in`` — no reasoning API is configured: the deterministic stand-in answered. The model is
  *not* run; the call's tokens are counted and priced at the reference model and ledgered as
  simulated (so the economics stay visible without the waste);
* ``evidence`` — the model's answer was invalid or the call failed (or ``trust="evidence"``).

Answers are stored as they arrive, so an interrupted run resumes without asking (or paying) twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import polars as pl

from ..errors import HybridnbError
from . import _core

SYSTEM = ("You are helping an analyst find and code the themes of a corpus of transcript segments. "
          "Answer in the requested JSON format only.")
TRUST = ("auto", "evidence")


@dataclass
class Ask:
    """One question: the prompt, its JSON schema or choices, and the stand-in's answer."""

    key: str
    prompt: str
    evidence: Any  # the stand-in's answer: a dict for a schema, a string for choices
    schema: dict | None = None
    choices: list[str] | None = None
    max_tokens: int = 400


@dataclass
class Answer:
    value: Any
    decided_by: str


def ask(con, step: str, asks: list[Ask], trust: str = "auto") -> dict[str, Answer]:
    """Answer every question (stored answers first); returns key -> :class:`Answer`."""
    if trust not in TRUST:
        raise HybridnbError(f"trust must be one of {TRUST}, got {trust!r}")
    todo = [a for a in asks if a.key not in _stored(con, step)]
    if todo and trust == "evidence":
        for a in todo:
            _store(con, step, a, None, "evidence")
    elif todo:
        _ask(con, step, todo)
    done = _stored(con, step)
    return {a.key: done[a.key] for a in asks}


def _stored(con, step: str) -> dict[str, Answer]:
    rows = con.execute("SELECT key, decided, decided_by FROM reason_calls WHERE step = ?", [step]).fetchall()
    return {k: Answer(json.loads(v), by) for k, v, by in rows}


def _requests(con, step: str, todo: list[Ask], model: str):
    row = con.execute("SELECT value FROM schema_info WHERE key = 'run_id'").fetchall()
    tags = {"batch": f"corpus:{row[0][0] if row else '-'}:{step}", "notebook": "corpus",
            "template": _core.template_hash(step)}
    return [_core.build_request(a.prompt, model, system=SYSTEM, choices=a.choices,
                                json_schema=a.schema, max_tokens=a.max_tokens, tags=tags)
            for a in todo]


def _ask(con, step: str, todo: list[Ask]) -> None:
    try:
        target = _core.reasoning_target()
    except HybridnbError as exc:  # nothing configured at all: evidence decides, visibly
        for a in todo:
            _store(con, step, a, None, "evidence", error=f"{type(exc).__name__}: {exc}")
        return
    requests = _requests(con, step, todo, target.model)
    if target.simulated:  # the offline stand-in: count and price the tokens, never run the model
        answers = [json.dumps(a.evidence) if a.schema else str(a.evidence) for a in todo]
        for a, (tokens, usd) in zip(todo, _core.ledger_simulated(requests, answers, target)):
            _store(con, step, a, None, "stand-in", tokens=tokens, cost=usd, simulated=True,
                   model=target.price_model)
        return
    failed: list[BaseException] = []

    def on_result(i, resp):
        try:
            _store(con, step, todo[i], resp, "reason")
        except BaseException as exc:  # the dispatcher's loop must not swallow it
            failed.append(exc)
    try:
        from .. import get_dispatcher

        get_dispatcher().run(requests, "reason", on_result=on_result)
        if failed:
            raise failed[0]
    except HybridnbError as exc:  # e.g. budget exceeded: what is missing falls back to evidence
        left = [a for a in todo if a.key not in _stored(con, step)]
        for a in left:
            _store(con, step, a, None, "evidence", error=f"{type(exc).__name__}: {exc}")


def parse(a: Ask, resp) -> tuple[Any, bool]:
    """The model's answer and whether it fits the question (schema keys and enums, or choices)."""
    text = (resp.text or "").strip()
    if a.choices is not None:
        return text, text in a.choices
    value = getattr(resp, "json", None)
    if value is None:
        try:
            value = json.loads(text)
        except ValueError:
            return text, False
    return value, _fits(value, a.schema or {})


def _fits(value, schema: dict) -> bool:
    kind = schema.get("type")
    if "enum" in schema:
        return value in schema["enum"]
    if kind == "object":
        props = schema.get("properties", {})
        return (isinstance(value, dict) and all(k in value for k in schema.get("required", []))
                and all(_fits(value[k], props[k]) for k in props if k in value))
    if kind == "array":
        return isinstance(value, list) and all(_fits(v, schema.get("items", {})) for v in value)
    if kind == "string":
        return isinstance(value, str) and 0 < len(value.strip()) <= schema.get("maxLength", 10_000)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    return True


def _store(con, step: str, a: Ask, resp, who: str, error: str | None = None, tokens: int = 0,
           cost: float = 0.0, simulated: bool = False, model: str | None = None) -> None:
    answer, valid, cached = None, None, False
    if resp is not None:
        answer, valid = parse(a, resp)
        tokens = resp.usage.input_tokens + resp.usage.output_tokens
        cost, cached, simulated, model = resp.cost_usd, resp.cached, resp.simulated, resp.model
        if resp.error is not None:
            error, valid = f"{type(resp.error).__name__}: {resp.error}", False
        if not valid:
            who = "evidence"
    decided = answer if who == "reason" else a.evidence
    con.execute(
        "INSERT INTO reason_calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [step, a.key, hashlib.sha256(a.prompt.encode()).hexdigest()[:16],
         json.dumps(a.choices if a.choices is not None else a.schema), None if answer is None else json.dumps(answer),
         valid, json.dumps(decided), who, tokens, cost, cached, simulated, model, error])


def calls(con, step: str | None = None) -> pl.DataFrame:
    """The stored reasoning decisions (one row per call), optionally for one step."""
    where = "true" if step is None else f"step = '{step}'"
    return con.sql(f"SELECT * FROM reason_calls WHERE {where}").pl()
