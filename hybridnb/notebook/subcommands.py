"""The bodies of `%hybridnb <command>`: one function per command, ``cmd_<name>(magics, rest)``.

``COMMANDS`` lists every command with one line of help and an example; `%hybridnb help`,
`%hybridnb?` and the README's table are built from (and tested against) it.
"""

from __future__ import annotations

import difflib
import json
from typing import Any, Callable

from IPython.core.error import UsageError
from IPython.display import display

from .. import config
from ..core import calls as _api
from ..errors import HybridnbError
from .help import COMMANDS, line_magic_help


def cmd_status(magics, rest: list[str]) -> None:
    from ..core.dispatcher import get_dispatcher

    s = config.get_settings()
    d = get_dispatcher()
    lines = []
    for route in config.ROUTES:
        try:
            t = d.resolve(route)
            where = t.endpoint or "in-process"
            extra = f" — offline stand-in for {t.reference_model}" if t.simulated else ""
            lines.append(f"%%{route}: {t.backend_name} · {t.model} · {where} · priced by {t.pricing}{extra}")
        except HybridnbError as e:
            lines.append(f"%%{route}: not ready — {e}")
    lines.append(f"home: {s.home}")
    lines.append(_status_budget_line())
    print("\n".join(lines))


def _status_budget_line() -> str:
    """The budget with its basis, as every view words it (``spend.render.budget_line``)."""
    from ..spend import kernel, render

    kernel.publish()
    return "budget: " + render.budget_line(kernel.current_budget())


def cmd_summary(magics, rest: list[str]) -> None:
    """This kernel's SpendReport (``hybridnb.summary(per)``): per = notebook (default), session, day, total."""
    if len(rest) > 1 or (rest and rest[0] not in ("session", "notebook", "day", "total")):
        raise UsageError("%hybridnb summary [session|notebook|day|total]")
    s = _api.summary(rest[0] if rest else None)
    display({"text/plain": str(s), "text/markdown": s._repr_markdown_()}, raw=True)


def cmd_models(magics, rest: list[str]) -> None:
    from ..backends.models import list_models

    if len(rest) > 1 or (rest and rest[0] not in config.ROUTES):
        raise UsageError(f"%hybridnb models [{'|'.join(config.ROUTES)}]")
    display(list_models(rest[0] if rest else None))


def cmd_config(magics, rest: list[str]) -> None:
    if not rest:
        for k, v in config.get_settings().public().items():
            print(f"{k} = {v}")
        return
    for item in rest:
        if "=" not in item:
            raise UsageError(f"%hybridnb config: expected key=value, got {item!r}")
        key, value = item.split("=", 1)
        key = key.strip()
        if key not in config.DEFAULTS and not key.startswith("prices."):
            near = difflib.get_close_matches(key, list(config.DEFAULTS), n=1, cutoff=0.7)
            hint = f" — did you mean {near[0]}?" if near else ""
            raise UsageError(f"%hybridnb config: unknown setting {key!r}{hint} "
                             "(`%hybridnb config` lists them all; README.md says what each does)")
        config.session.set(key, value.strip())
        shown = "<set>" if key.strip() in config.SECRET_KEYS else value.strip()
        print(f"{key.strip()} = {shown}")


def cmd_budget(magics, rest: list[str]) -> None:
    if "--per" in rest:  # %hybridnb budget 5 --per day
        at = rest.index("--per")
        if at + 1 >= len(rest):
            raise UsageError("%hybridnb budget: --per takes one of session, notebook, day, total")
        config.session.set("budget_per", rest[at + 1])
        rest = rest[:at] + rest[at + 2:]
    if not rest:
        print(_api.summary().budget_line())
        return
    value = rest[0]
    if value.lower() in ("off", "none"):
        config.session.set("budget_usd", None)
        print("budget removed")
        return
    try:
        usd = float(value.lstrip("$"))
    except ValueError:
        raise UsageError(f"%hybridnb budget: {value!r} is not an amount in $") from None
    config.session.set("budget_usd", usd)
    print(_api.summary().budget_line())


def cmd_cache(magics, rest: list[str]) -> None:
    if rest != ["clear"]:
        raise UsageError("%hybridnb cache: the only sub-command is `%hybridnb cache clear`")
    from ..core.dispatcher import get_dispatcher

    n = get_dispatcher().cache(config.get_settings().home).clear()
    print(f"cache cleared: {n} answers removed")


def cmd_backends(magics, rest: list[str]) -> None:
    from .. import backends

    for name, target in sorted(backends.available().items()):
        print(f"{name:12s} {target}")


def cmd_widget(magics, rest: list[str]) -> None:
    from .widget import show

    w = show()
    rb = getattr(w, "_repr_mimebundle_", None)
    out = rb() if callable(rb) else None
    data, meta = out if isinstance(out, tuple) else (out, {})  # anywidget answers (data, metadata)
    bundle = dict(data or {})
    bundle["text/plain"] = "live spend panel (shown in JupyterLab, Notebook 7, VS Code)\n" + str(_api.summary())
    display(bundle, metadata=meta or None, raw=True)


def cmd_signals(magics, rest: list[str]) -> None:
    from ..spend.signals import signals

    print(json.dumps(signals(), indent=2, default=str))


def cmd_export(magics, rest: list[str]) -> None:
    from ..spend import kernel
    from ..spend.report import export_ledger

    if rest[:1] == ["--ledger"]:
        if len(rest) != 2:
            raise UsageError("%hybridnb export --ledger PATH (.csv, .parquet, .json or .jsonl)")
        path = export_ledger(rest[1])
        print(f"ledger written to {path}")
        return
    if rest:
        raise UsageError("%hybridnb export [--ledger PATH]")
    # the notebook's own next-input mechanism: a new code cell below that renders as Markdown when run
    # the same Markdown as "Insert cost summary" (GET /hybridnb/summary.md): same scope, budget, renderer
    kernel.publish()
    magics.shell.set_next_input("%%markdown\n" + kernel.export_cell(), replace=False)
    print("inserted below: a %%markdown cell with the cost summary (run it to render)")


def cmd_reset(magics, rest: list[str]) -> None:
    from ..core.dispatcher import reset_dispatcher

    config.session.clear()
    reset_dispatcher()
    print("session settings and spend counter reset (the ledger is kept)")


def cmd_batches(magics, rest: list[str]) -> None:
    from ..batch.batches import cmd_batches as run

    print(run(rest))


def cmd_discipline(magics, rest: list[str]) -> None:
    from ..spend.discipline import magic

    magic(rest)


def cmd_help(magics, rest: list[str]) -> None:
    print(line_magic_help())


def handler(name: str) -> Callable[[Any, list[str]], None] | None:
    """The function behind `%hybridnb name`, or None."""
    if name not in COMMANDS:
        return None
    return globals()[f"cmd_{name}"]
