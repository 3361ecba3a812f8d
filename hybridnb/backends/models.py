"""`%hybridnb models [route]`: the models each route can use, and what they cost.

For a route with an endpoint: the endpoint's ``/v1/models`` (vLLM, OpenAI, any compatible server),
each priced the way its calls would be.  Without one: the embedded model.  For a token-priced
provider (OpenAI by default): the models genai-prices knows, with $ per 1M tokens.
An endpoint that cannot be reached is one line, not a traceback.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from .. import config
from ..core import pricing
from ..spend.render import money

#: seconds to wait for an endpoint's model list
TIMEOUT_S = 5.0


@dataclass
class ModelRow:
    route: str
    model: str
    source: str  # "endpoint" | "embedded" | "genai-prices" | "engine"
    price: str  # "$0.15 / $0.60 per 1M in/out", "$0.05/h compute", "unpriced"
    in_effect: bool = False


@dataclass
class ModelList:
    """Rows of (route, model, where it comes from, price), plus one note per route."""

    rows: list[ModelRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        lines = list(self.notes)
        if self.rows:
            w = max(len(r.model) for r in self.rows) + 2
            for r in self.rows:
                mark = "*" if r.in_effect else " "
                lines.append(f"{mark} %%{r.route:<7} {r.model:<{w}} {r.source:<13} {r.price}")
            lines.append("(* = in effect now; choose another with -m MODEL or `%hybridnb config ROUTE.model=NAME`)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.to_text())

    def _repr_markdown_(self) -> str:
        out = [f"- {n}" for n in self.notes]
        if self.rows:
            out += ["", "| route | model | from | price |", "|---|---|---|---|"]
            for r in self.rows:
                name = f"**{r.model}** (in effect)" if r.in_effect else r.model
                out.append(f"| %%{r.route} | {name} | {r.source} | `{r.price}` |")
        return "\n".join(out)


def token_price_text(model: str, overrides=None) -> str:
    p = pricing.token_prices(model, overrides)
    if p is None:
        return "unpriced (set prices.<model>.input/output)"
    return f"{money(p.input)} / {money(p.output)} per 1M in/out"


def endpoint_models(base_url: str | None, api_key: str | None) -> list[str]:
    """Model ids the endpoint lists; OSError-like failures become BackendUnavailable."""
    import openai

    from ..errors import BackendUnavailable

    client = openai.OpenAI(base_url=base_url, api_key=api_key or "EMPTY", timeout=TIMEOUT_S, max_retries=0)
    try:
        return sorted(m.id for m in client.models.list())
    except openai.APIError as e:
        where = base_url or "the OpenAI API"
        raise BackendUnavailable(f"cannot list models at {where}: {type(e).__name__}: {e}") from e
    finally:
        client.close()


def provider_models(base_url: str | None) -> tuple[str, list[tuple[str, float, float]]]:
    """(provider name, [(model, $ in/1M, $ out/1M)]) that genai-prices knows for this endpoint."""
    from genai_prices import data_snapshot

    snap = data_snapshot.get_snapshot()
    try:
        provider = snap.find_provider(None, None if base_url else "openai", base_url)
    except LookupError:
        return "", []
    now = _dt.datetime.now(_dt.timezone.utc)
    out = []
    for m in provider.models:
        if m.deprecated:
            continue
        try:
            p = m.get_prices(now)
        except Exception:  # noqa: BLE001 - a model genai-prices cannot price now is skipped
            continue
        pin, pout = _base(getattr(p, "input_mtok", None)), _base(getattr(p, "output_mtok", None))
        if pin is not None and pout is not None:
            out.append((m.id, pin, pout))
    return provider.name, sorted(out)


def _base(price: Any) -> float | None:
    """$ per 1M tokens at the base tier (tiered prices start there)."""
    if price is None:
        return None
    return float(getattr(price, "base", price))


def _in_effect(route: str) -> tuple[str, str, Any]:
    """(backend name, model, target) the route resolves to now; ("", error, None) when it cannot."""
    from ..core.dispatcher import get_dispatcher
    from ..errors import HybridnbError

    try:
        t = get_dispatcher().resolve(route)
        return t.backend_name, t.model, t
    except HybridnbError as e:
        return "", str(e), None


def route_models(route: str, out: ModelList) -> None:
    """Append ``route``'s models and note to ``out``."""
    from ..errors import BackendUnavailable

    s = config.get_settings()
    rs = s.route(route)
    backend, current, target = _in_effect(route)
    if target is None:
        out.notes.append(f"%%{route}: not ready — {current}")
        return
    overrides = s.price_overrides()
    compute = rs.pricing == "compute"
    rate = target.rate_per_hour

    def price(model: str) -> str:
        return f"{money(rate)}/h compute" if compute else token_price_text(model, overrides)

    if backend == "embedded":
        cpu = f"{money(rs.cpu_hour_usd)}/h compute"
        stand_in = route == "reason"
        note = (f"%%{route}: no key, so the embedded CPU model answers as an offline stand-in, priced as "
                f"{rs.model}" if stand_in else f"%%{route}: the embedded CPU model (set {route}.base_url for vLLM)")
        out.notes.append(note)
        out.rows.append(ModelRow(route, config.EMBEDDED_MODEL, "embedded",
                                 token_price_text(rs.model, overrides) + " (simulated)" if stand_in else cpu,
                                 in_effect=True))
        if stand_in:
            _add_provider(route, None, out, current=None,
                          why="with HYBRIDNB_REASON_API_KEY set, these are priced by genai-prices")
        return
    if backend == "vllm-engine":
        out.notes.append(f"%%{route}: in-process vLLM engine")
        out.rows.append(ModelRow(route, current or str(rs.model), "engine", price(current), True))
        return
    try:
        ids = endpoint_models(rs.base_url, rs.api_key)
    except BackendUnavailable as e:
        out.notes.append(f"%%{route}: {e}")
        if not compute:
            _add_provider(route, rs.base_url, out, current=current, why="genai-prices knows these")
        return
    where = rs.base_url or "the OpenAI API"
    out.notes.append(f"%%{route}: {len(ids)} models at {where} ({'compute' if compute else 'token'}-priced)")
    for m in ids:
        out.rows.append(ModelRow(route, m, "endpoint", price(m), in_effect=m == current))


def _add_provider(route: str, base_url: str | None, out: ModelList, *, current: str | None, why: str) -> None:
    name, models = provider_models(base_url)
    if not models:
        return
    out.notes.append(f"%%{route}: {len(models)} {name} models ({why})")
    for m, pin, pout in models:
        out.rows.append(ModelRow(route, m, "genai-prices", f"{money(pin)} / {money(pout)} per 1M in/out",
                                 in_effect=m == current))


def list_models(route: str | None = None) -> ModelList:
    """The models ``route`` (or every route) can use, with prices."""
    out = ModelList()
    for r in ([route] if route else config.ROUTES):
        route_models(r, out)
    return out
