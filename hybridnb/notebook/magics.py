"""`%%reason`, `%%local` and `%hybridnb` — thin: parse, call the dispatcher, display."""

from __future__ import annotations

import json
import shlex

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Bool, Float, Unicode, observe

from ..core import calls as _api
from .. import config
from ..core.constraints import check_choices, load_schema
from ..core.template import render
from ..errors import HybridnbError

_TRAIT_KEYS = {
    "reason_model": "reason.model", "reason_base_url": "reason.base_url", "reason_backend": "reason.backend",
    "local_model": "local.model", "local_base_url": "local.base_url", "local_backend": "local.backend",
    "budget_usd": "budget_usd", "local_gpu_hour_usd": "local.gpu_hour_usd", "local_gpus": "local.gpus",
}


def _route_args(f):
    for deco in reversed([
        argument("-o", "--output", metavar="NAME", help="store the Response (or batch result) in NAME"),
        argument("-m", "--model", help="model for this cell (overrides settings)"),
        argument("--backend", help="backend name for this cell (see `%%hybridnb backends`)"),
        argument("--base-url", help="OpenAI-compatible endpoint for this cell"),
        argument("--system", help="system prompt"),
        argument("--max-tokens", type=int, help="cap on generated tokens"),
        argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0)"),
        argument("--choices", help="comma-separated closed label set; the answer is one of them"),
        argument("--json-schema", metavar="FILE", help="JSON schema file the answer must follow"),
        argument("--no-cache", action="store_true", help="always send; do not read or write the cache"),
        argument("--force", action="store_true", help="send even if the estimate passes the budget"),
        argument("-q", "--quiet", action="store_true", help="do not display the answer"),
        argument("--over", metavar="DATA", help="batch: a DataFrame variable or DuckDB table; one call per row"),
        argument("--col", action="append", metavar="NAME", help="batch: column(s) the template uses"),
        argument("--engine", default="local", help="batch engine: local (in-process) or ray"),
        argument("--concurrency", type=int, help="batch: calls in flight at once"),
    ]):
        f = deco(f)
    return magic_arguments()(f)


@magics_class
class HybridnbMagics(Magics):
    """Route cells to token-priced reasoning (%%reason) or local compute (%%local)."""

    reason_model = Unicode(None, allow_none=True, config=True, help="model for %%reason")
    reason_base_url = Unicode(None, allow_none=True, config=True, help="endpoint for %%reason")
    reason_backend = Unicode(None, allow_none=True, config=True, help="backend for %%reason")
    local_model = Unicode(None, allow_none=True, config=True, help="model for %%local")
    local_base_url = Unicode(None, allow_none=True, config=True, help="endpoint for %%local")
    local_backend = Unicode(None, allow_none=True, config=True, help="backend for %%local")
    budget_usd = Float(None, allow_none=True, config=True, help="spend limit for this session in $")
    local_gpu_hour_usd = Float(None, allow_none=True, config=True, help="$ per GPU-hour of local compute")
    local_gpus = Float(None, allow_none=True, config=True, help="GPUs a local backend holds")
    show_widget = Bool(False, config=True, help="show the live spend widget on %load_ext")

    @observe(*_TRAIT_KEYS)
    def _trait_changed(self, change):
        try:
            config.session.set(_TRAIT_KEYS[change["name"]], change["new"])
        except HybridnbError as e:
            raise UsageError(str(e)) from None

    # ---- cell magics --------------------------------------------------------
    @cell_magic
    @_route_args
    def reason(self, line, cell):
        """Send the cell to the reasoning route (token-priced API)."""
        return self._run("reason", line, cell)

    @cell_magic
    @_route_args
    def local(self, line, cell):
        """Send the cell to local compute (vLLM, or the embedded CPU model)."""
        return self._run("local", line, cell)

    def _run(self, route: str, line: str, cell: str):
        magic = getattr(self, route)
        args = parse_argstring(magic, line)
        if not cell or not cell.strip():
            raise UsageError(f"%%{route}: the cell is empty — write the prompt below the %%{route} line")
        if args.over:
            from ..batch.runner import magic_batch

            return magic_batch(self.shell, route, args, cell)
        try:
            prompt = render(cell.strip(), self.shell.user_ns)
            schema = load_schema(args.json_schema) if args.json_schema else None
            choices = check_choices(args.choices) if args.choices else None
            resp = _api.call(
                route, prompt, model=args.model, system=args.system, max_tokens=args.max_tokens,
                temperature=args.temperature, choices=choices, json_schema=schema,
                cache=False if args.no_cache else None, force=args.force, backend=args.backend,
                base_url=args.base_url, template=cell, raise_errors=False,
            )
        except HybridnbError as e:
            raise UsageError(f"%%{route}: {e}") from None
        if args.output:
            self.shell.user_ns[args.output] = resp
        if not args.quiet:
            _show(resp)
        if resp.error is not None:
            raise UsageError(f"%%{route}: {type(resp.error).__name__}: {resp.error}")

    # ---- line magic -----------------------------------------------------------
    @line_magic
    def hybridnb(self, line: str):
        """%hybridnb status|summary|config [k=v ...]|budget [usd|off]|cache clear|backends|widget|signals|export [--ledger PATH]|reset"""
        try:
            words = shlex.split(line)
        except ValueError as e:
            raise UsageError(f"%hybridnb: {e}") from None
        cmd, rest = (words[0], words[1:]) if words else ("status", [])
        handler = getattr(self, f"_cmd_{cmd.replace('-', '_')}", None)
        if handler is None:
            raise UsageError(f"%hybridnb: unknown command {cmd!r}; try: {', '.join(_COMMANDS)}")
        try:
            return handler(rest)
        except HybridnbError as e:
            raise UsageError(f"%hybridnb {cmd}: {e}") from None

    def _cmd_status(self, rest):
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
        lines.append(_api.summary().budget_line())
        print("\n".join(lines))

    def _cmd_summary(self, rest):
        display(_api.summary())

    def _cmd_config(self, rest):
        if not rest:
            for k, v in config.get_settings().public().items():
                print(f"{k} = {v}")
            return
        for item in rest:
            if "=" not in item:
                raise UsageError(f"%hybridnb config: expected key=value, got {item!r}")
            key, value = item.split("=", 1)
            config.session.set(key.strip(), value.strip())
            shown = "<set>" if key.strip() in config.SECRET_KEYS else value.strip()
            print(f"{key.strip()} = {shown}")

    def _cmd_budget(self, rest):
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

    def _cmd_cache(self, rest):
        if rest != ["clear"]:
            raise UsageError("%hybridnb cache: the only sub-command is `%hybridnb cache clear`")
        from ..core.dispatcher import get_dispatcher

        n = get_dispatcher().cache(config.get_settings().home).clear()
        print(f"cache cleared: {n} answers removed")

    def _cmd_backends(self, rest):
        from .. import backends

        for name, target in sorted(backends.available().items()):
            print(f"{name:10s} {target}")

    def _cmd_widget(self, rest):
        from .widget import show

        display(show())

    def _cmd_signals(self, rest):
        from ..spend.signals import signals

        print(json.dumps(signals(), indent=2, default=str))

    def _cmd_export(self, rest):
        from ..spend.report import export_ledger, report

        if rest[:1] == ["--ledger"]:
            if len(rest) != 2:
                raise UsageError("%hybridnb export --ledger PATH (.csv, .parquet, .json or .jsonl)")
            path = export_ledger(rest[1])
            print(f"ledger written to {path}")
            return
        if rest:
            raise UsageError("%hybridnb export [--ledger PATH]")
        # the notebook's own next-input mechanism: a new cell below that renders as Markdown
        self.shell.set_next_input("%%markdown\n" + report("markdown"), replace=False)

    def _cmd_reset(self, rest):
        from ..core.dispatcher import reset_dispatcher

        config.session.clear()
        reset_dispatcher()
        print("session settings and spend counter reset (the ledger is kept)")


_COMMANDS = ("status", "summary", "config", "budget", "cache", "backends", "widget", "signals", "export", "reset")


def _show(resp) -> None:
    """Display a Response with its usage in the output's metadata (the saved notebook keeps its bill)."""
    from ..spend.report import cell_usage

    meta = cell_usage([resp.record]) if resp.record is not None else {}
    display(resp, metadata=meta)
