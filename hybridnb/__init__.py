"""hybridnb — a Jupyter control plane for hybrid AI work.

``%load_ext hybridnb``, then ``%%reason`` sends a cell to a token-priced
reasoning API and ``%%local`` to compute you control; both share one
dispatcher with pricing, a persistent ledger, a cache, budgets and live
operator signals.
"""

from __future__ import annotations

from .notebook.server import _jupyter_labextension_paths, _jupyter_server_extension_points
from .core.calls import local, reason, summary
from .core.auto import auto
from .core.calibrate import calibrate
from .spend.discipline import discipline
from .batch.runner import map
from .spend.kernel import report
from .spend.report import export_ledger
from .spend.signals import signals
from .core.response import Response
from .types import Request, Usage
from .config import get_settings
from .store.ledger import read_all as ledger
from .core.dispatcher import get_dispatcher
from .errors import HybridnbError

__version__ = "0.1.0"


def __getattr__(name: str):
    # charts pulls in altair (~seconds): load it on first use, not at Jupyter server start
    if name == "charts":
        import importlib

        return importlib.import_module(".spend.charts", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def widget(**kwargs):
    """The live spend widget (anywidget), attached to this kernel's dispatcher."""
    from .notebook.widget import show

    return show(**kwargs)


def load_ipython_extension(ipython) -> None:
    """Register %%reason, %%local and %hybridnb (``%load_ext hybridnb``)."""
    from .notebook.magics import HybridnbMagics

    magics = HybridnbMagics(shell=ipython)
    ipython.register_magics(magics)
    from .spend import kernel

    kernel.attach()  # publish this kernel's budget for the JupyterLab extension
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
    "auto",
    "calibrate",
    "charts",
    "discipline",
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
