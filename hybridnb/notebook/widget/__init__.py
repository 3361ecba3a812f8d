"""The live spend widget: ``hybridnb.widget()`` or ``SpendWidget.from_ledger(home).attach()``.

This package is callable (``hybridnb.widget(...)`` is :func:`show`), so the
public function and the subpackage can share the name ``hybridnb.widget``.
"""

import sys
import types

from ._state import SpendState
from ._widget import SpendWidget


def show(home=None, budget_usd=None, dispatcher=None, live=True, **kwargs) -> SpendWidget:
    """A widget over the ledger under ``home``, attached to the dispatcher when ``live``."""
    w = SpendWidget.from_ledger(home, budget_usd=budget_usd, **kwargs)
    if live:
        w.attach(dispatcher)
    return w


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs) -> SpendWidget:
        return show(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["SpendState", "SpendWidget", "show"]
