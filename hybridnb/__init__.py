"""hybridnb — a Jupyter control plane for hybrid AI work.

``%load_ext hybridnb``, then ``%%reason`` sends a cell to a token-priced
reasoning API and ``%%local`` to compute you control; both share one
dispatcher with pricing, a persistent ledger, a cache, budgets and live
operator signals.
"""

from __future__ import annotations

from . import ledger
from ._server import _jupyter_labextension_paths, _jupyter_server_extension_points
from ._api import local, reason, summary
from .batch import map
from .report import export_ledger, report
from .signals import signals
from ._response import Response
from ._types import Request, Usage
from .config import get_settings
from .dispatch import get_dispatcher
from .errors import HybridnbError

__version__ = "0.1.0"


def __getattr__(name: str):
    # charts pulls in altair (~seconds): load it on first use, not at Jupyter server start
    if name == "charts":
        import importlib

        return importlib.import_module(".charts", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def widget(**kwargs):
    """The live spend widget (anywidget), attached to this kernel's dispatcher."""
    from .widget import show

    return show(**kwargs)


def load_ipython_extension(ipython) -> None:
    """Register %%reason, %%local and %hybridnb (``%load_ext hybridnb``)."""
    from .magics import HybridnbMagics

    magics = HybridnbMagics(shell=ipython)
    ipython.register_magics(magics)
    if magics.show_widget:
        from IPython.display import display

        display(widget())


def unload_ipython_extension(ipython) -> None:
    """Nothing to undo: magics stay until the kernel restarts."""


__all__ = sorted([
    "HybridnbError",
    "Request",
    "Response",
    "Usage",
    "charts",
    "export_ledger",
    "get_dispatcher",
    "get_settings",
    "ledger",
    "load_ipython_extension",
    "local",
    "map",
    "reason",
    "report",
    "signals",
    "summary",
    "unload_ipython_extension",
    "widget",
])
