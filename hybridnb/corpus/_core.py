"""The corpus workflow's one adapter onto the core's internals.

Everything the corpus package needs from the dispatcher beyond the package root (request
building, target resolution, and ledgering the offline stand-in's token economics without
running the stand-in) goes through here, so a reorganisation of the core touches this file only.

The stand-in's records go into the ledger through ``Dispatcher.record`` (appended, counted in the
session's spend, shown to listeners), the public way in for records made outside a call.
"""

from __future__ import annotations

import dataclasses

from .. import get_dispatcher
from ..core.calls import build_request, template_hash
from ..core.extras import install_hint
from ..errors import MissingExtra
from ..core.pricing import estimate_tokens, token_cost
from ..core.records import make_record
from ..types import Usage

STAND_IN_BACKEND = "corpus-stand-in"
STAND_IN_MODEL = "deterministic stand-in (c-TF-IDF keywords, centroid similarity)"

__all__ = ["STAND_IN_BACKEND", "STAND_IN_MODEL", "build_request", "ledger_simulated", "reasoning_target", "require_extra",
           "template_hash"]


ANALYSIS_MODULES = ("numpy", "scipy", "sklearn", "threadpoolctl")


def require_extra() -> None:
    """One clear error naming the pip command when the analysis's own dependencies are missing.

    (core.extras' "corpus" entry also lists bertopic, which the analysis no longer imports, and
    ``tokenlearn_static_model``, whose importable module is ``static_model``; hence this narrower check.)
    """
    import importlib.util

    absent = [m for m in ANALYSIS_MODULES if importlib.util.find_spec(m) is None]
    if absent:
        raise MissingExtra(f"the corpus workflow needs the [corpus] extra (missing: {', '.join(absent)}): "
                           f"{install_hint('corpus')}")


def reasoning_target():
    """The resolved ``reason`` route (raises a HybridnbError when it cannot be resolved)."""
    return get_dispatcher().resolve("reason")


def ledger_simulated(requests, answers: list[str], target) -> list[tuple[int, float]]:
    """Ledger ``requests`` as answered by the deterministic stand-in: tokens counted, priced at the
    reference model, marked simulated; the stand-in model is never run. Returns (tokens, usd) per call."""
    d = get_dispatcher()
    overrides = target.settings.price_overrides()
    records, out = [], []
    for req, answer in zip(requests, answers):
        usage = Usage(input_tokens=estimate_tokens((req.system or "") + req.prompt),
                      output_tokens=estimate_tokens(answer))
        cost, unpriced = token_cost(target.price_model, usage, overrides)
        rec = make_record(req, target, d.session, status="ok", usage=usage, cost=cost, latency=0.0, held=0.0,
                          busy=0.0, unpriced=unpriced, error=None, answer=answer)
        records.append(dataclasses.replace(rec, backend=STAND_IN_BACKEND, model=STAND_IN_MODEL, simulated=True,
                                           reference_model=target.price_model))
        out.append((usage.total_tokens, cost))
    if records:
        d.record(records, target.settings.home)
    return out
