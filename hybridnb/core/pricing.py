"""What a call costs.

Token-priced calls use the maintained ``genai-prices`` library (no price table
is written here); a per-model override in settings (``prices.<model>.input``,
``.output``, ``.cached_input``, $ per 1M tokens) wins over it.  An unknown
model costs $0 and is flagged ``unpriced`` — never an error.

Compute-priced calls (local backends) cost ``rate_per_hour × held seconds``,
where the rate is ``gpu_hour_usd × gpus`` (rented), or the amortised cost of
owned hardware (``hardware_usd / lifetime_hours + power_kw × electricity``),
or ``cpu_hour_usd`` for the embedded CPU backend.

Held time of concurrent calls is shared, not double counted: every instant of
wall-clock time during which k calls were in flight is split evenly, 1/k to
each (see :func:`held_shares`).  The shares of a batch add up to exactly the
wall-clock time the backend was busy with it (the union of the intervals).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Mapping, Sequence

from ..types import Usage
from ..config import RouteSettings


@dataclass(frozen=True)
class TokenPrices:
    """Dollars per 1M tokens."""

    input: float
    output: float
    cached_input: float
    source: str  # "genai-prices" | "override"


@functools.lru_cache(maxsize=512)
def _library_prices(model: str) -> TokenPrices | None:
    try:
        from genai_prices import Usage as GUsage, calc_price
    except ImportError:  # pragma: no cover - a hard dependency
        return None
    n = 1000  # price a small request: the base tier, then scale to 1M

    def per_million(**usage: int) -> float:
        return float(calc_price(GUsage(**usage), model_ref=model).total_price) * (1_000_000 / n)

    try:
        inp = per_million(input_tokens=n)
        out = per_million(output_tokens=n)
        try:
            cached = per_million(input_tokens=n, cache_read_tokens=n)
        except Exception:
            cached = inp
    except LookupError:
        return None
    except Exception:
        return None
    return TokenPrices(inp, out, cached, "genai-prices")


def token_prices(model: str, overrides: Mapping[str, Mapping[str, float]] | None = None) -> TokenPrices | None:
    """$ per 1M tokens for ``model``; None when nobody knows its price."""
    base = _library_prices(model)
    ov = (overrides or {}).get(model)
    if ov:
        inp = ov.get("input", base.input if base else 0.0)
        return TokenPrices(
            input=inp,
            output=ov.get("output", base.output if base else 0.0),
            cached_input=ov.get("cached_input", base.cached_input if base else inp),
            source="override",
        )
    return base


def token_cost(model: str, usage: Usage, overrides=None) -> tuple[float, bool]:
    """(cost in $, unpriced flag) for ``usage`` on ``model``."""
    p = token_prices(model, overrides)
    if p is None:
        return 0.0, True
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    cost = ((usage.input_tokens - cached) * p.input + cached * p.cached_input
            + usage.output_tokens * p.output) / 1_000_000
    return cost, False


def compute_rate_per_hour(rs: RouteSettings, backend_name: str) -> float:
    """$ per hour the route's compute costs while held."""
    if backend_name == "embedded":
        return rs.cpu_hour_usd
    if rs.hardware_usd and rs.lifetime_hours:
        power = (rs.power_kw or 0.0) * rs.electricity_usd_kwh
        return rs.hardware_usd / rs.lifetime_hours + power
    return rs.gpu_hour_usd * max(rs.gpus, 0.0)


def compute_cost(held_s: float, rate_per_hour: float) -> float:
    return rate_per_hour * held_s / 3600.0


def held_shares(intervals: Sequence[tuple[float, float]]) -> list[float]:
    """Each interval's share of wall-clock time, splitting overlaps evenly.

    ``sum(held_shares(iv)) == length of the union of iv`` (up to rounding).
    """
    events = []
    for i, (a, b) in enumerate(intervals):
        if b > a:
            events.append((a, 1, i))
            events.append((b, -1, i))
    events.sort(key=lambda e: (e[0], e[1]))
    shares = [0.0] * len(intervals)
    active: set[int] = set()
    last = None
    for t, kind, i in events:
        if last is not None and active and t > last:
            part = (t - last) / len(active)
            for j in active:
                shares[j] += part
        last = t
        if kind == 1:
            active.add(i)
        else:
            active.discard(i)
    return shares


#: tokens a chat message adds around its text (role markers), counted in worst cases
MESSAGE_OVERHEAD = 8


def estimate_tokens(text: str, model: str | None = None, *, worst: bool = False) -> int:
    """Tokens in ``text`` — the one token count hybridnb uses for estimates and for
    replies that came without usage.

    The model family's tokenizer when it is known and installed (tiktoken for
    OpenAI models), else ~4 characters a token; ``worst=True`` (budget
    reservations) assumes ~3 characters a token plus the message overhead.
    """
    n = _tiktoken_count(text, model) if model else None
    if n is None:
        n = (len(text) + 2) // 3 if worst else (len(text) + 3) // 4
    return max(1, n + (MESSAGE_OVERHEAD if worst else 0))


@functools.lru_cache(maxsize=64)
def _encoding(model: str):
    try:
        import tiktoken
    except ImportError:
        return None
    try:
        return tiktoken.encoding_for_model(model)
    except Exception:  # not an OpenAI model, or its encoding file cannot be loaded offline
        return None


def _tiktoken_count(text: str, model: str) -> int | None:
    enc = _encoding(model)
    if enc is None:
        return None
    try:
        return len(enc.encode(text, disallowed_special=()))
    except Exception:
        return None


@functools.lru_cache(maxsize=512)
def context_window(model: str) -> int | None:
    """The model's context window in tokens, when genai-prices knows it."""
    try:
        from genai_prices.data_snapshot import get_snapshot

        return get_snapshot().find_provider_model(model, None, None, None)[1].context_window
    except Exception:  # unknown model, or a genai-prices without that data
        return None
