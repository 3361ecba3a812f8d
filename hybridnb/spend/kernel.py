"""This kernel's view of spend: its default scope, its budget (published for the Jupyter server), its report.

A kernel knows its budget (``HYBRIDNB_BUDGET_USD`` in its environment, ``%hybridnb
budget``, ``%config``) and its basis (``budget_per``); the server does not.  So the
kernel writes ``<home>/kernels/<session>.json`` (budget, basis, session, notebook)
whenever they change, and ``GET /hybridnb/summary?kernel=…`` reads it: the
extension shows the kernel's budget, with the spend in its basis.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from ..errors import HybridnbError
from . import render
from .advice import Thresholds
from .report import Budget, Scope, SpendReport, budget_in, build_report, resolve_home, warn_fraction_of

_lock = threading.Lock()
_published: dict[str, tuple] = {}


def current_keys() -> tuple[str | None, str | None]:
    """(session id, notebook path) of this process, as its ledger rows carry them."""
    from ..config import get_settings
    from ..core.context import cell_tags
    from ..core.dispatcher import get_dispatcher

    d = get_dispatcher()
    session = d.session or d.writer(get_settings().home).session  # a script: its writer's session
    notebook = cell_tags().get("notebook") or None
    return session, notebook


def current_budget(home: Path | str | None = None):
    """This process's budget (settings) with its spend in its basis, read from the ledger."""
    from ..config import get_settings

    s = get_settings()
    session, notebook = current_keys()
    home = resolve_home(home)
    per = s.get("budget_per", "session") or "session"
    if per == "notebook" and not notebook:
        per = "session"  # as the dispatcher's guard (core.budget.make_scope): it counts the session
    try:
        return budget_in(home, s.budget_usd, per, session=session, notebook=notebook,
                         warn_fraction=warn_fraction_of(s.get("budget_warn_fraction")))
    except Exception as e:  # no session/notebook key for this basis: show the budget, say why
        b = Budget(s.budget_usd, per)
        b.source = f"kernel (spend unknown: {e})"
        return b


def kernel_file(home: Path | str, session: str) -> Path:
    return Path(home) / "kernels" / f"{session}.json"


def publish(home: Path | str | None = None, force: bool = False) -> Path | None:
    """Write this kernel's budget file if its budget, basis or notebook changed (cheap otherwise)."""
    from ..config import get_settings

    try:
        s = get_settings()
        session, notebook = current_keys()
        home = Path(home) if home is not None else Path(s.home)
    except Exception:
        return None
    if not session or not session.startswith("k-"):
        return None  # only kernels are looked up by the server
    info = {"session": session, "notebook": notebook or "", "budget_usd": s.budget_usd,
            "budget_per": s.get("budget_per", "session") or "session",
            "budget_warn_fraction": warn_fraction_of(s.get("budget_warn_fraction")), "pid": os.getpid()}
    key = tuple(info.values())
    with _lock:
        if not force and _published.get(str(home)) == key:
            return None
        path = kernel_file(home, session)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps({**info, "updated": time.time()}))
            os.replace(tmp, path)
        except OSError:
            return None  # a read-only home: the extension shows no budget for this kernel
        _published[str(home)] = key
    return path


def attach(dispatcher: Any = None) -> None:
    """Publish now and after every ledger record (so a changed budget reaches the server)."""
    if dispatcher is None:
        from ..core.dispatcher import get_dispatcher

        dispatcher = get_dispatcher()
    if getattr(dispatcher, "_hybridnb_kernel_published", False):
        return
    dispatcher._hybridnb_kernel_published = True
    last = [0.0]

    def on_record(record: Any) -> None:  # at most once a second: a batch appends thousands
        now = time.monotonic()
        if now - last[0] >= 1.0:
            last[0] = now
            publish()

    dispatcher.subscribe(on_record)
    publish(force=True)


def read_kernel_file(home: Path | str, *, kernel: str | None = None,
                     notebook: str | None = None) -> dict[str, Any] | None:
    """The budget file of a kernel (by id), else of the latest kernel on ``notebook``; None if none."""
    d = Path(home) / "kernels"
    if kernel:
        p = kernel_file(home, f"k-{kernel}")
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError):
            pass
    if notebook and d.is_dir():
        best = None
        for p in d.glob("k-*.json"):
            try:
                info = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            nb = info.get("notebook") or ""
            if nb and (nb == notebook or nb.endswith("/" + notebook) or notebook.endswith("/" + nb)):
                if best is None or info.get("updated", 0) > best.get("updated", 0):
                    best = info
        return best
    return None


# ------------------------------------------------ this kernel's report


def default_scope(per: str | None = None) -> Scope:
    """The scope every in-kernel view shows by default: this notebook, else this kernel's
    session, else (a script) all time; ``per`` picks another (session, notebook, day, total)."""
    session, notebook = current_keys()
    if per is None:
        per = "notebook" if notebook else "session" if session and session.startswith("k-") else "total"
    if per == "notebook" and not notebook:
        raise HybridnbError("no notebook is known in this process: use 'session', 'day' or 'total'")
    return Scope(per, session=session, notebook=notebook)


def kernel_report(per: str | None = None, *, home: Path | str | None = None, advice: bool = True,
                  lanes: Iterable[dict] | None = None) -> SpendReport:
    """This kernel's report: scope ``per`` (default :func:`default_scope`) and its budget."""
    publish()  # a budget just set (`%hybridnb budget`) reaches the extension too
    scope = default_scope(per)
    if lanes is None:
        from .signals import tracker

        lanes = tracker.snapshot()
    return build_report(home, scope, current_budget(home), advice=advice, lanes=lanes)


def report(format: str = "markdown", home: Path | str | None = None, per: str | None = None,
           thresholds: Thresholds | None = None) -> str | dict[str, Any]:
    """The cost summary as ``"markdown"``, ``"html"``, ``"text"`` or ``"json"`` (a dict).

    ``per`` is the scope: notebook (the default in a notebook), session, day or total.
    """
    if format not in ("markdown", "html", "text", "json"):
        raise HybridnbError(f"unknown report format {format!r}: use markdown, html, text or json")
    rep = build_report(home, default_scope(per), current_budget(home), thresholds=thresholds)
    if format == "json":
        return rep.to_dict()
    return {"markdown": render.to_markdown, "html": render.to_html, "text": render.to_text}[format](rep)


def export_cell(home: Path | str | None = None) -> str:
    """The cost-summary cell of this notebook: the Markdown ``GET /hybridnb/summary.md`` answers
    ("Insert cost summary") for the same kernel — same scope, same budget, same renderer."""
    return render.to_markdown(build_report(home, default_scope(), current_budget(home)))
