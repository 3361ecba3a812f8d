"""A budget that holds: reserve a call's worst case before it starts, settle it when it ends.

* Worst case of a token-priced call: input tokens × input price + ``max_tokens``
  × output price (every request carries ``max_tokens``).  Of a compute-priced
  chunk: ``reserve_s`` (default ``timeout_s`` × every attempt) × the route's $ per hour;
  a configured ``reserve_s`` is a cap the operator vouches for (a call held longer costs more).
* A call starts only when ``spent + reserved + its worst case <= budget``
  (spent read from the ledger, so another kernel or a restarted one counts).
  ``--force`` sends anyway; its reservation still counts for the others.
* Scopes (``budget_per``): ``session`` (this kernel's rows), ``notebook``,
  ``day`` (today, local time, every process), ``total``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Sequence

from . import pricing
from .response import money
from ..errors import BudgetExceeded
from ..types import Request


def worst_case(requests: Sequence[Request], target) -> float:
    """The most ``requests`` (one chunk) can cost on ``target``, in $."""
    if target.pricing != "tokens":
        s = target.settings
        seconds = s.get("reserve_s") or float(s["timeout_s"]) * (1 + int(s["max_retries"] or 0))
        return float(seconds) * target.rate_per_hour / 3600.0
    p = pricing.token_prices(target.price_model, target.settings.price_overrides())
    if p is None:
        return 0.0  # unpriced: flagged on the row, cannot be budgeted
    total = 0.0
    for r in requests:
        tin = pricing.estimate_tokens((r.system or "") + r.prompt, target.price_model, worst=True)
        tout = r.max_tokens or target.rs.max_tokens or target.settings["estimate_output_tokens"]
        total += tin * p.input + tout * p.output
    return total / 1_000_000


@dataclass(frozen=True)
class Scope:
    """Which ledger rows a budget counts."""

    per: str
    session: str
    notebook: str = ""

    @property
    def label(self) -> str:
        if self.per == "notebook":
            return f"notebook {self.notebook}"
        return {"session": "this session", "day": "today", "total": "in total"}[self.per]


def make_scope(per: str, session: str, notebook: str | None) -> Scope:
    """The scope for ``budget_per``; a notebook scope outside a notebook counts the session."""
    if per == "notebook" and not notebook:
        per = "session"
    return Scope(per, session, notebook or "")


class Guard:
    """Spend and reservations of one budget scope in this process (thread-safe)."""

    def __init__(self, home, scope: Scope) -> None:
        self.home = home
        self.scope = scope
        self._lock = threading.Lock()
        self.base = 0.0  # spend in scope read from the ledger
        self.own = 0.0  # settled in this process since that read
        self.reserved = 0.0
        self.in_flight = 0

    def refresh(self) -> float:
        """Re-read the scope's spend from the ledger (all processes); returns it."""
        from ..store import scopes

        spent = scopes.spent_usd(self.home, self.scope.per, session=self.scope.session,
                                 notebook=self.scope.notebook or None)
        with self._lock:
            self.base, self.own = spent, 0.0
        return spent

    @property
    def spent(self) -> float:
        with self._lock:
            return self.base + self.own

    def fits(self, amount: float, budget: float) -> bool:
        """Whether ``amount`` more fits next to what is spent and reserved (the boundary fits)."""
        with self._lock:
            return self.base + self.own + self.reserved + amount <= budget

    def reserve(self, amount: float, budget: float | None, force: bool = False) -> bool:
        """Hold ``amount`` against ``budget``; False (nothing held) when it would not fit."""
        with self._lock:
            if not force and budget is not None and self.base + self.own + self.reserved + amount > budget:
                return False
            self.reserved += amount
            self.in_flight += 1
            return True

    def settle(self, amount: float, cost: float) -> None:
        """Release a reservation of ``amount``; ``cost`` is what the call really cost."""
        with self._lock:
            self.reserved = max(0.0, self.reserved - amount)
            self.in_flight = max(0, self.in_flight - 1)
            self.own += cost

    def refusal(self, budget: float, amount: float, what: str = "this call") -> BudgetExceeded:
        """The error for a call or batch that does not fit."""
        with self._lock:
            spent, reserved = self.base + self.own, self.reserved
        held = f" + {money(reserved)} reserved by calls in flight" if reserved else ""
        return BudgetExceeded(
            f"budget exceeded: spent {money(spent)} {self.scope.label}{held} of {money(budget)}; "
            f"{what} may cost up to {money(amount)}. Raise it with `%hybridnb budget <usd>`, "
            f"lower --max-tokens, move the work to %%local, or pass --force.")

