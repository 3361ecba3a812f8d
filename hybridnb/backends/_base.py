"""The Backend contract: complete a batch of requests, report usage and timing."""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Literal, Sequence

from ..types import Completion, Request


class Backend(abc.ABC):
    """A place where prompts run.

    Subclasses implement :meth:`complete`.  It must return one
    :class:`Completion` per request, in order, and must not raise for a
    per-request failure: the failure goes into ``Completion.error`` (with
    ``billed`` telling whether the provider charged).  It may raise
    :class:`~hybridnb.errors.BackendUnavailable` when nothing can be sent.

    ``max_concurrency`` is the bound the backend is driven with; the
    dispatcher never has more than that many requests in flight.

    Capabilities are declared, never probed: ``scored_choices`` (choice
    answers carry ``Completion.choice_probs``), ``has_metrics`` (``metrics()``
    can return saturation figures), ``discovers_model`` (``discover_model()``
    names the served model), ``batch_size`` (requests per ``complete`` call
    the dispatcher hands over).  Instances may refine them (an OpenAI-compatible
    server that offers no logprobs has no scored choices).
    """

    #: registry name, e.g. ``"openai"``
    name: ClassVar[str] = "base"
    #: how calls are priced by default: per token or per compute second
    pricing: ClassVar[Literal["tokens", "compute"]] = "tokens"

    max_concurrency: int = 8
    #: requests handed to one ``complete`` call
    batch_size: int = 1
    #: ``--choices`` answers come with a probability per label
    scored_choices: bool = False
    #: ``metrics()`` may return saturation figures (else the dispatcher never polls it)
    has_metrics: bool = False
    #: ``discover_model()`` names the model the backend serves
    discovers_model: bool = False
    #: what ``metrics()`` last found: "none" (declares none), "unknown" (not read yet),
    #: "yes", "absent" (the server has none), "unreachable"
    metrics_state: str = "none"

    #: tokens a chat template adds to each call (role markers, a default system prompt)
    chat_overhead_tokens: int = 7

    def estimate_tokens(self, r: Request, default_out: int, model: str | None = None) -> tuple[int, int]:
        """(input, output) tokens ``r`` is expected to use, chat template and stated options included
        (output: the label with its end of turn, else ``max_tokens`` capped at ``default_out``)."""
        from ..core.constraints import option_orders, with_options
        from ..core.pricing import estimate_tokens

        text = (r.system or "") + with_options(r.prompt, r.choices)
        tin = estimate_tokens(text, model or r.model) + self.chat_overhead_tokens
        if r.choices:  # the label and the end of the turn; scored once per option order
            orders = len(option_orders(r.choices, r.prompt)) if self.scored_choices else 1
            return tin * orders, max(estimate_tokens(c, model or r.model) for c in r.choices) + 1
        return tin, min(r.max_tokens or default_out, default_out)

    def capabilities(self) -> dict[str, Any]:
        """The declared capabilities, as a dict (also part of :meth:`describe` for status output)."""
        return {"scored_choices": self.scored_choices, "has_metrics": self.has_metrics,
                "discovers_model": self.discovers_model, "batch_size": self.batch_size,
                "max_concurrency": self.max_concurrency}

    @classmethod
    def from_route(cls, route_settings: Any, settings: Any) -> "Backend":
        """Build the backend for a route (override to read base_url, model, …)."""
        return cls()

    @abc.abstractmethod
    async def complete(self, requests: Sequence[Request]) -> list[Completion]:
        """Run ``requests`` and return one Completion each, in order."""

    async def prepare(self) -> float | None:
        """Get ready for the first call (e.g. load a model); the seconds it took, or None if already ready.

        The dispatcher calls it before a call's held time starts and ledgers the seconds as set-up."""
        return None

    def describe(self) -> dict[str, Any]:
        """Public, secret-free facts about this backend (for status output)."""
        return {"backend": self.name}

    def discover_model(self) -> str | None:
        """The model this backend serves, when it can tell (``discovers_model``)."""
        return None

    async def metrics(self) -> dict[str, Any] | None:
        """Saturation metrics the backend exposes, or None when it has none."""
        return None

    async def aclose(self) -> None:
        """Release clients, threads or models."""



async def close_all(backends: list[Backend], timeout_s: float = 5.0) -> None:
    """Close every backend's clients (a failing or slow one does not stop the others)."""
    import asyncio

    if backends:
        await asyncio.wait([asyncio.ensure_future(b.aclose()) for b in backends], timeout=timeout_s)
