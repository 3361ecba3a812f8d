"""Where a call comes from: notebook path and cell id, when the front end says."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def cell_tags(shell: Any | None = None) -> dict[str, str]:
    """{"notebook": path or "", "cell": cell id or execution count} for the running cell."""
    if shell is None:
        try:
            from IPython import get_ipython

            shell = get_ipython()
        except ImportError:
            shell = None
    if shell is None:
        return {}
    ns = getattr(shell, "user_ns", {}) or {}
    notebook = ns.get("__session__") or ns.get("__vsc_ipynb_file__") or ""
    cell = ""
    kernel = getattr(shell, "kernel", None)
    if kernel is not None:
        try:
            parent = kernel.get_parent("shell") if _takes_channel(kernel) else kernel.get_parent()
            cell = (parent or {}).get("metadata", {}).get("cellId", "") or ""
        except Exception:
            cell = ""
    if not cell:
        cell = str(getattr(shell, "execution_count", "") or "")
    return {"notebook": str(notebook), "cell": str(cell)}


def _takes_channel(kernel: Any) -> bool:
    import inspect

    try:
        return "channel" in inspect.signature(kernel.get_parent).parameters
    except (TypeError, ValueError):
        return False


def kernel_session() -> str | None:
    """``k-<kernel id>`` when running inside a Jupyter kernel."""
    try:
        from ipykernel import get_connection_file

        name = Path(get_connection_file()).stem
    except Exception:
        return None
    return "k-" + name.removeprefix("kernel-")
