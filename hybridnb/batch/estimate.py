"""The estimate a batch prints before it sends: both routes, cache hits, and the batch-job price."""

from __future__ import annotations

from typing import Any, Mapping

from ..spend.render import money
from ..store.cache import cache_key
from ..types import Request


def estimate(d, reqs: list[Request], target, use_cache: bool, overrides_other: Mapping[str, Any],
              default_out: int, batch: tuple[Any, str] | None = None) -> tuple[str, float, list[str]]:
    """(one-line estimate for both routes, $ for this route's uncached prompts, their prompts).

    ``batch`` = (the target priced at the batch rate, a note on the rate): the line shows the online and
    the batch-job price, and the $ returned is the batch-job price.
    """
    first: dict[str, Request] = {}
    for r in reqs:
        first.setdefault(r.prompt, r)
    uniques = list(first.values())
    todo = uniques
    n_cached = 0
    if use_cache and uniques:
        keys = [cache_key(target.route, target.backend_name, target.endpoint, r) for r in uniques]
        hits = d.cache(target.settings.home).get_many(keys)
        todo = [r for r, k in zip(uniques, keys) if k not in hits]
        n_cached = len(uniques) - len(todo)
    here = d.estimate(todo, target)
    tokens = [target.backend.estimate_tokens(r, default_out, target.price_model) for r in todo]  # template too
    tin, tout = sum(t for t, _ in tokens), sum(t for _, t in tokens)
    other = "local" if target.route == "reason" else "reason"
    try:
        ot = d.resolve(other, overrides_other)
        oreqs = [Request(r.prompt, ot.model, r.system, ot.rs.max_tokens or r.max_tokens, r.temperature,
                         r.choices, r.json_schema) for r in uniques]
        other_txt = f"on %%{other} ({_where(ot)}) all {len(uniques):,} would cost ~{money(d.estimate(oreqs, ot))}"
    except Exception as e:  # an unconfigured route, a backend not installed
        other_txt = f"%%{other} is not configured ({type(e).__name__}: {str(e)[:100]})"
    head = (f"estimate: {len(reqs):,} prompts, {len(uniques):,} distinct, {n_cached:,} already cached → "
            f"on %%{target.route} ({_where(target)}) this batch would cost ~{money(here)} "
            f"(~{tin:,} input + ~{tout:,} output tokens for {len(todo):,} calls); {other_txt}")
    if batch is not None:
        here = d.estimate(todo, batch[0])
        head += f"\n  as a provider batch job (--batch-api): ~{money(here)} ({batch[1]}); results within 24 h"
    return head, here, [r.prompt for r in todo]


def _where(t) -> str:
    extra = f" as {t.reference_model}" if t.simulated else ""
    return f"{t.backend_name} · {t.model}{extra} · priced by {t.pricing}"


