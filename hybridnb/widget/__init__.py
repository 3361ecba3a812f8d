"""The live spend widget: ``SpendWidget.from_ledger(home).attach()``."""

from ._state import SpendState
from ._widget import SpendWidget


def show(home=None, budget_usd=None, dispatcher=None, live=True, **kwargs) -> SpendWidget:
    """A widget over the ledger under ``home``, attached to the dispatcher when ``live``."""
    w = SpendWidget.from_ledger(home, budget_usd=budget_usd, **kwargs)
    if live:
        w.attach(dispatcher)
    return w


__all__ = ["SpendState", "SpendWidget", "show"]
