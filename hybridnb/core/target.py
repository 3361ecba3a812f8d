"""Route -> backend: which backend serves a route, from its settings (and whether it is the offline stand-in)."""

from __future__ import annotations

from ..config import RouteSettings
from ..errors import ConfigError


def choose_backend(route: str, rs: RouteSettings) -> tuple[str, bool]:
    """(backend name, simulated) for ``route``: ``auto`` picks vllm / openai / the embedded model."""
    name, simulated = rs.backend, False
    if name == "auto":
        if rs.base_url and route == "local":
            name = "vllm"  # OpenAI protocol + /metrics and version-aware structured outputs
        elif rs.base_url or (route == "reason" and rs.api_key):
            name = "openai"
        else:
            name, simulated = "embedded", route == "reason"
    if name == "openai" and not rs.base_url and not rs.api_key:
        var = "HYBRIDNB_REASON_API_KEY (or OPENAI_API_KEY)" if route == "reason" else "HYBRIDNB_LOCAL_BASE_URL"
        raise ConfigError(f"%%{route} has no API key or endpoint: set {var}, "
                          f"or `%hybridnb config {route}.base_url=...`")
    return name, simulated
