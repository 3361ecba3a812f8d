"""The `%%auto` cell magic: parse, run the cascade (core/auto.py), display."""

from __future__ import annotations

from IPython.core.error import UsageError
from IPython.core.magic_arguments import parse_argstring
from IPython.display import display

from ..errors import HybridnbError


def run_auto_magic(magics, line: str, cell: str):
    """``%%auto [--threshold T] [--choices a,b] [--over DATA] [-o NAME] …``."""
    from ..core.auto import auto, auto_map
    from ..core.constraints import check_choices
    from ..core.template import render

    args = parse_argstring(magics.auto, line)
    if not cell or not cell.strip():
        raise UsageError("%%auto: the cell is empty — write the prompt below the %%auto line")
    if args.model or args.backend or args.base_url or args.json_schema:
        raise UsageError("%%auto runs on both routes: set their models with `%hybridnb config local.model=… "
                         "reason.model=…` (-m/--backend/--base-url/--json-schema are not for %%auto)")
    ns = magics.shell.user_ns
    try:
        choices = check_choices(args.choices) if args.choices else None
        opts = dict(choices=choices, threshold=args.threshold, system=args.system, max_tokens=args.max_tokens,
                    cache=False if args.no_cache else None, force=args.force)
        if args.over:
            from ..batch.runner import _resolve_over

            data, con = _resolve_over(args.over, ns)
            result = auto_map(data, cell, progress=not args.quiet, columns=args.col, variables=ns, con=con,
                              name=args.over, **opts)
        else:
            result = auto(render(cell.strip(), ns), template=cell, raise_errors=False, **opts)
    except HybridnbError as e:
        raise UsageError(f"%%auto: {e}") from None
    if args.output:
        ns[args.output] = result
    if not args.over and not args.quiet:
        display(result)
    if not args.over and result.error is not None:
        raise UsageError(f"%%auto: {type(result.error).__name__}: {result.error}")
    return None if args.output or args.over is None else result
