"""What a call returns to the user: the answer plus where it ran and what it cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..spend import render
from ..spend.render import money
from ..types import Usage


@dataclass
class Response:
    """One answer: ``.text`` plus backend, model, usage, cost and cache status."""

    text: str
    route: str
    backend: str
    model: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    cached: bool = False
    saved_usd: float = 0.0
    latency_s: float = 0.0
    held_s: float = 0.0
    pricing: str = "tokens"
    simulated: bool = False
    unpriced: bool = False
    reference_model: str = ""
    error: Exception | None = None
    json: Any = None
    record: Any = None
    choice_probs: dict[str, float] | None = None
    #: one-time set-up before this call (e.g. loading the embedded model), ledgered as its own row
    setup_s: float = 0.0
    setup_usd: float = 0.0

    @property
    def confidence(self) -> float | None:
        """The probability of the chosen label (choices only; None when unknown)."""
        if not self.choice_probs:
            return None
        return self.choice_probs.get(self.text, max(self.choice_probs.values()))

    @property
    def ok(self) -> bool:
        return self.error is None

    def __str__(self) -> str:
        return self.text

    def footer(self) -> str:
        """One line: route · backend · model · tokens · cost · latency · cache."""
        parts = [f"%%{self.route}", self.backend, self.model]
        if self.simulated:
            parts.append(f"offline stand-in for {self.reference_model}")
        parts.append(f"{self.usage.input_tokens} in / {self.usage.output_tokens} out tokens")
        cost = money(self.cost_usd)
        if self.simulated:
            cost += " simulated"
        if self.unpriced:
            cost += " (unpriced)"
        if self.pricing == "compute" and not self.cached:
            cost += f" for {self.held_s:.2f} s compute"
        parts.append(cost)
        parts.append(f"{self.latency_s:.2f} s")
        if self.setup_s:
            parts.append(f"+ set-up {self.setup_s:.2f} s (model load, once) {money(self.setup_usd)}")
        parts.append(f"cached (saved {money(self.saved_usd)})" if self.cached else "not cached")
        if self.error is not None:
            parts.append(f"error: {type(self.error).__name__}")
        return " · ".join(parts)

    def _repr_mimebundle_(self, include=None, exclude=None):
        body = self.text if self.error is None else f"**{type(self.error).__name__}**: {self.error}"
        foot = render.md(self.footer())
        md = f"{body}\n\n<sub>{foot}</sub>"
        return {"text/markdown": md, "text/plain": f"{self.text}\n-- {self.footer()}"}

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(f"{self.text}\n-- {self.footer()}")

    def __repr__(self) -> str:
        return f"Response({self.text[:40]!r}, {self.footer()})"
