"""Turning a call's outcome into what the user gets (Response) and what the ledger keeps (Record)."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Mapping

from .response import Response
from ..types import Request, Usage
from ..config import RouteSettings, Settings
from ..store.ledger import Record
from ..store.cache import normalise


@dataclass
class Target:
    """Where a route's calls go, resolved from settings."""

    route: str
    backend_name: str
    backend: Any
    model: str
    pricing: str
    simulated: bool
    reference_model: str
    endpoint: str
    rate_per_hour: float
    gpus: float
    settings: Settings
    rs: RouteSettings

    @property
    def price_model(self) -> str:
        return self.reference_model if self.simulated else self.model


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def settle_record(rec: Record, sent: Record, extra: Mapping[str, Any]) -> Record:
    """Make ``rec`` the final row of the write-ahead row ``sent`` (same id), with the attempt facts."""
    rec.id, rec.forced, rec.reserved_usd = sent.id, sent.forced, sent.reserved_usd
    rec.attempts = int(extra.get("attempts", 1))
    rec.maybe_billed = int(extra.get("maybe_billed", 0))
    rec.usage_estimated = bool(extra.get("usage_estimated", False))
    return rec



def confidence_of(answer: str, probs: dict[str, float] | None) -> float | None:
    """The probability of ``answer`` among scored choices (None when unscored)."""
    if not probs:
        return None
    return float(probs.get(answer, max(probs.values())))


def make_record(r: Request, target: Target, session: str | None, *, status, usage, cost, latency, held, busy,
                unpriced, error, answer, saved=0.0, probs=None) -> Record:
    """The ledger row for one request's outcome."""
    tags = r.tags or {}
    return Record(
        ts=time.time(), route=target.route, backend=target.backend_name, model=target.model,
        status=status, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
        cached_tokens=usage.cached_input_tokens, cost_usd=cost, saved_usd=saved, latency_s=latency,
        held_s=held, busy_s=busy, gpus=target.gpus if target.pricing == "compute" else 0.0,
        pricing=target.pricing, cached=status == "cached", unpriced=unpriced, simulated=target.simulated,
        reference_model=target.reference_model,
        error_class=type(error).__name__ if error is not None else "",
        error=str(error)[:300] if error is not None else "",
        notebook=str(tags.get("notebook", "")), cell=str(tags.get("cell", "")),
        batch=str(tags.get("batch", "")), template=str(tags.get("template", "")),
        prompt_hash=short_hash(r.prompt), prompt_norm=short_hash(normalise(r.prompt)), answer_hash=short_hash(answer.strip().lower()) if answer else "",
        session=session or "", via=str(tags.get("via", "")), escalated=bool(tags.get("escalated", False)),
        confidence=tags.get("confidence") if "confidence" in tags else (
            confidence_of(answer, probs) if error is None else None),
        choice_probs=json.dumps(probs, separators=(",", ":")) if probs and error is None else "",
    )


def make_response(target: Target, text, usage, cost, latency, held, unpriced, error, rec,
                  cached=False, saved=0.0, json_value=None, probs=None) -> Response:
    """The user's Response for one request's outcome."""
    return Response(
        text=text, route=target.route, backend=target.backend_name, model=target.model, usage=usage,
        cost_usd=cost, cached=cached, saved_usd=saved, latency_s=latency, held_s=held,
        pricing=target.pricing, simulated=target.simulated, unpriced=unpriced,
        reference_model=target.reference_model, error=error, json=json_value, record=rec,
        choice_probs=dict(probs) if probs else None,
    )


def cached_outcome(r: Request, target: Target, session: str | None, hit) -> tuple[Response, Record]:
    """A cache hit: $0, marked cached, with the dollars it saved."""
    rec = make_record(r, target, session, status="cached", usage=Usage(), cost=0.0, latency=0.0, held=0.0,
                      busy=0.0, unpriced=False, error=None, answer=hit.text, saved=hit.cost_usd,
                      probs=hit.probs)
    json_value = None
    if r.json_schema:
        try:
            json_value = json.loads(hit.text)
        except ValueError:
            json_value = None
    resp = make_response(target, hit.text, hit.usage, 0.0, 0.0, 0.0, False, None, rec,
                         cached=True, saved=hit.cost_usd, json_value=json_value, probs=hit.probs)
    return resp, rec


def duplicate_outcome(resp: Response) -> tuple[Response, Record]:
    """An identical prompt in the same run: served from the first one's answer, like a cache hit."""
    rec = replace(resp.record, id=uuid.uuid4().hex, status="cached", cached=True,
                  cost_usd=0.0, saved_usd=resp.cost_usd if resp.ok else 0.0, input_tokens=0,
                  output_tokens=0, cached_tokens=0, held_s=0.0, busy_s=0.0, latency_s=0.0)
    dresp = replace(resp, cached=resp.ok, cost_usd=0.0, saved_usd=rec.saved_usd, latency_s=0.0,
                    held_s=0.0, record=rec)
    return dresp, rec
