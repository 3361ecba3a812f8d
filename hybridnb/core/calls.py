"""The Python API for scripts: reason(), local(), ledger(), summary()."""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Mapping

from .context import cell_tags
from .response import Response
from ..types import Request
from .dispatcher import get_dispatcher
from ..errors import HybridnbError


def template_hash(template: str) -> str:
    """Identifies a prompt template across calls (for 'move the work' advice)."""
    return hashlib.sha256(template.strip().encode()).hexdigest()[:16]


def route_overrides(route: str, *, model=None, backend=None, base_url=None, max_tokens=None,
                    settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Call options → the strongest settings layer."""
    out: dict[str, Any] = dict(settings or {})
    for key, value in (("model", model), ("backend", backend), ("base_url", base_url),
                       ("max_tokens", max_tokens)):
        if value is not None:
            out[f"{route}.{key}"] = value
    return out


def build_request(prompt: str, target_model: str, *, system=None, max_tokens=None, temperature=0.0,
                  choices: Iterable[str] | None = None, json_schema=None, tags=None) -> Request:
    return Request(
        prompt=prompt, model=target_model, system=system, max_tokens=max_tokens, temperature=temperature,
        choices=tuple(choices) if choices else None, json_schema=json_schema, tags=dict(tags or {}),
    )


def call(route: str, prompt: str, *, model=None, system=None, max_tokens=None, temperature=0.0,
         choices=None, json_schema=None, cache=None, force=False, backend=None, base_url=None,
         template: str | None = None, tags=None, settings=None, raise_errors=True) -> Response:
    """Send one prompt on ``route``; raise its error unless ``raise_errors=False``."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise HybridnbError("the prompt is empty")
    d = get_dispatcher()
    overrides = route_overrides(route, model=model, backend=backend, base_url=base_url,
                                max_tokens=max_tokens, settings=settings)
    target = d.resolve(route, overrides)
    all_tags = {**cell_tags(), "template": template_hash(template or prompt), **dict(tags or {})}
    req = build_request(prompt, target.model, system=system,
                        max_tokens=max_tokens or target.rs.max_tokens, temperature=temperature,
                        choices=choices, json_schema=json_schema, tags=all_tags)
    use_cache = target.settings["cache"] if cache is None else cache
    from .loop import run_sync

    resp = run_sync(d.arun([req], target, cache=use_cache, force=force))[0]
    if raise_errors and resp.error is not None:
        raise resp.error
    return resp


def reason(prompt: str, **opts: Any) -> Response:
    """Send ``prompt`` to the reasoning route (token-priced API, or its offline stand-in)."""
    return call("reason", prompt, **opts)


def local(prompt: str, **opts: Any) -> Response:
    """Send ``prompt`` to local compute (vLLM server/engine, or the embedded CPU model)."""
    return call("local", prompt, **opts)


def summary(per: str | None = None):
    """This kernel's SpendReport: spend by route/backend/model, cache savings, compute, and the
    budget with its basis.  ``per``: notebook (default in a notebook), session, day or total."""
    from ..spend.kernel import kernel_report

    return kernel_report(per)
