"""Checks made before anything is sent: settings where they are set, rows that cannot go.

A setting shared by the whole call or batch (temperature, ``max_tokens``, the
JSON schema) that is invalid raises one :class:`~hybridnb.errors.ConfigError`
and nothing is sent.  A single row that cannot be sent (text that cannot be
encoded, a prompt over the model's context window) becomes that row's error;
the other rows go ahead.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

from . import pricing
from ..errors import ConfigError, InvalidRequest
from ..types import Request

#: max_tokens of the offline stand-in for %%reason when none is set (the embedded model's own cap)
SIMULATED_MAX_TOKENS = 256
#: the sampling temperature range providers accept
TEMPERATURE_RANGE = (0.0, 2.0)


def check_params(r: Request) -> None:
    """ConfigError for a temperature or max_tokens no provider accepts."""
    t = r.temperature
    if t is not None:
        lo, hi = TEMPERATURE_RANGE
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not lo <= t <= hi:
            raise ConfigError(f"temperature must be a number from {lo:g} to {hi:g}, got {t!r}")
    m = r.max_tokens
    if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
        raise ConfigError(f"max_tokens must be a whole number ≥ 1, got {m!r}")


def check_schema(schema) -> None:
    """ConfigError unless ``schema`` is a valid JSON schema (meta-validated)."""
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - a hard dependency
        return
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as e:
        raise ConfigError(f"the JSON schema is not a valid schema: {e.message}") from None
    except Exception as e:  # not a mapping at all
        raise ConfigError(f"the JSON schema is not a valid schema: {type(e).__name__}: {e}") from None


def screen(requests: Sequence[Request], target) -> tuple[list[Request], dict[int, Exception]]:
    """(requests with ``max_tokens`` filled in, {index: error} for rows that must not be sent)."""
    default_max = target.rs.max_tokens
    if target.simulated:
        default_max = min(default_max or SIMULATED_MAX_TOKENS, SIMULATED_MAX_TOKENS)
    window = None if target.simulated or target.pricing != "tokens" else pricing.context_window(target.model)
    out: list[Request] = []
    bad: dict[int, Exception] = {}
    seen_params: set = set()
    seen_schema: set[int] = set()
    for i, r in enumerate(requests):
        if r.max_tokens is None and default_max:
            r = dataclasses.replace(r, max_tokens=default_max)
        key = (r.temperature, r.max_tokens)
        if key not in seen_params:
            check_params(r)
            seen_params.add(key)
        if r.json_schema is not None and id(r.json_schema) not in seen_schema:
            check_schema(r.json_schema)
            seen_schema.add(id(r.json_schema))
        out.append(r)
        err = _row_problem(r, window)
        if err is not None:
            bad[i] = err
    return out, bad


def _row_problem(r: Request, window: int | None) -> Exception | None:
    try:
        (r.system or "").encode("utf-8")
        r.prompt.encode("utf-8")
    except UnicodeEncodeError as e:
        return InvalidRequest(f"the prompt cannot be sent: it holds text that is not valid Unicode "
                              f"({e.reason} at position {e.start}); nothing was sent for this row")
    if window:
        n = pricing.estimate_tokens((r.system or "") + r.prompt, r.model)
        if n > window:
            return InvalidRequest(f"the prompt is ~{n:,} tokens; {r.model} reads at most {window:,} — "
                                  f"nothing was sent for this row")
    return None
