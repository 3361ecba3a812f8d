"""`%%reason`, `%%local` and `%hybridnb` — thin: parse, call the dispatcher, display."""

from __future__ import annotations

import difflib
import shlex

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display
from traitlets import Bool, Float, Unicode, observe

from ..core import calls as _api
from .. import config
from ..core.constraints import check_choices, load_schema
from ..core.template import render, resolve_refs
from ..errors import HybridnbError
from . import subcommands
from .formats import FORMATS, instruct, present
from .help import cell_magic_help, line_magic_help, parse_line
from .history import remember_output

_TRAIT_KEYS = {
    "reason_model": "reason.model", "reason_base_url": "reason.base_url", "reason_backend": "reason.backend",
    "local_model": "local.model", "local_base_url": "local.base_url", "local_backend": "local.backend",
    "budget_usd": "budget_usd", "local_gpu_hour_usd": "local.gpu_hour_usd", "local_gpus": "local.gpus",
}


def _route_args(f):
    name = f.__name__
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
        argument("--engine", default="local", help="batch engine: local (in-process), ray, or vllm (in-process vLLM on the GPU)"),
        argument("--concurrency", type=int, help="batch: calls in flight at once"),
        argument("--batch-api", action="store_true",
                 help="batch: submit the rows as one provider batch job at the batch price (%%reason)"),
        argument("-f", "--format", default="markdown", choices=FORMATS,
                 help="markdown (default), text, json (-o gets the parsed object), code (a new cell below), "
                      "html or math"),
    ]):
        f = deco(f)
    f = magic_arguments(name=f"%{name}")(f)  # usage reads %%reason, not %reason
    f.getdoc = lambda: cell_magic_help(name, f.parser)  # `%%reason?` shows what is in effect now
    return f


def _auto_args(f):
    f = argument("--threshold", type=float,
                 help="escalate answers less confident than this (default: calibrated, else 0.8)")(f)
    return _route_args(f)


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

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell=shell, **kwargs)
        from .history import track_errors

        track_errors(shell)  # {Err[n]} in templates

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

    @cell_magic
    @_auto_args
    def auto(self, line, cell):
        """Local first; answers under the confidence threshold escalate to %%reason (core/auto.py)."""
        from ._auto import run_auto_magic

        return run_auto_magic(self, line, cell)

    def _run(self, route: str, line: str, cell: str):
        args = parse_line(f"%%{route}", getattr(self, route).parser, line)
        if not cell or not cell.strip():
            raise UsageError(f"%%{route}: the cell is empty — write the prompt below the %%{route} line")
        if args.over:
            if args.format != "markdown":
                raise UsageError(f"%%{route}: -f {args.format} applies to one-prompt cells, not --over batches")
            from ..batch.runner import magic_batch

            try:  # {In[n]}/{Out[n]}/{Err[n]} are the same for every row: fill them once
                cell = resolve_refs(cell, self.shell.user_ns, self.shell)
            except HybridnbError as e:
                raise UsageError(f"%%{route}: {e}") from None
            return magic_batch(self.shell, route, args, cell)
        try:
            prompt = instruct(render(cell.strip(), self.shell.user_ns, shell=self.shell), args.format)
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
        if resp.error is not None:
            if args.output:
                self.shell.user_ns[args.output] = resp
            if not args.quiet:
                _show(resp)
            raise UsageError(f"%%{route}: {type(resp.error).__name__}: {resp.error}")
        if args.output:
            self.shell.user_ns[args.output] = resp  # kept even when -f json cannot parse the answer
        value = present(self.shell, resp, args.format, quiet=args.quiet, metadata=_usage_meta(resp))
        if args.output:
            self.shell.user_ns[args.output] = value
        remember_output(self.shell, route, value)

    # ---- line magic -----------------------------------------------------------
    @line_magic
    def hybridnb(self, line: str):
        """%hybridnb COMMAND — `%hybridnb help` lists every command."""
        try:
            words = shlex.split(line)
        except ValueError as e:
            raise UsageError(f"%hybridnb: {e}") from None
        cmd, rest = (words[0], words[1:]) if words else ("status", [])
        handler = subcommands.handler(cmd.replace("_", "-"))
        if handler is None:
            near = difflib.get_close_matches(cmd, list(subcommands.COMMANDS), n=1)
            hint = f" — did you mean {near[0]!r}?" if near else ""
            raise UsageError(f"%hybridnb: unknown command {cmd!r}{hint} Commands: "
                             f"{', '.join(subcommands.COMMANDS)} (`%hybridnb help` says what each does)")
        try:
            return handler(self, rest)
        except HybridnbError as e:
            raise UsageError(f"%hybridnb {cmd}: {e}") from None

    hybridnb.getdoc = line_magic_help  # `%hybridnb?`


def _usage_meta(resp) -> dict:
    """The answer's usage for the output's metadata (the saved notebook keeps its bill)."""
    from ..spend.cell import cell_usage

    return cell_usage([resp.record]) if resp.record is not None else {}


def _show(resp) -> None:
    display(resp, metadata=_usage_meta(resp))
