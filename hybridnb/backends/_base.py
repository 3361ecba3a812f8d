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
    """

    #: registry name, e.g. ``"openai"``
    name: ClassVar[str] = "base"
    #: how calls are priced by default: per token or per compute second
    pricing: ClassVar[Literal["tokens", "compute"]] = "tokens"

    max_concurrency: int = 8

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

    async def metrics(self) -> dict[str, Any] | None:
        """Saturation metrics the backend exposes, or None when it has none."""
        return None

    async def aclose(self) -> None:
        """Release clients, threads or models."""

