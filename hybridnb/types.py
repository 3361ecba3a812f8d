"""The value types every part of hybridnb shares: Request, Usage, Completion."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

Route = Literal["reason", "local"]


@dataclass(frozen=True)
class Request:
    """One prompt to send to a backend.

    ``tags`` (notebook, cell, template, batch) travel to the ledger but are not
    part of the cache key; everything else is.
    """

    prompt: str
    model: str
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = 0.0
    choices: tuple[str, ...] | None = None
    json_schema: Mapping[str, Any] | None = None
    tags: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def params(self) -> dict[str, Any]:
        """The generation parameters (everything but prompt, model and tags)."""
        return {
            "system": self.system,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "choices": list(self.choices) if self.choices else None,
            "json_schema": self.json_schema,
        }

    def fingerprint(self) -> str:
        """A stable hash of prompt, model and parameters."""
        payload = json.dumps(
            {"prompt": self.prompt, "model": self.model, "params": self.params()},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class Usage:
    """Tokens a call consumed."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass
class Completion:
    """What a backend returns for one Request.

    ``started``/``ended`` are ``time.time()`` stamps of when the backend held
    the call.  A failed call carries ``error``; ``billed`` says whether the
    provider charged for it (tokens in ``usage`` are then counted).
    """

    text: str
    usage: Usage
    started: float
    ended: float
    error: Exception | None = None
    billed: bool = True
    model: str | None = None
    busy_s: float | None = None
    choice_probs: dict[str, float] | None = None  # with choices: a probability per label, when known
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def latency_s(self) -> float:
        return max(0.0, self.ended - self.started)
