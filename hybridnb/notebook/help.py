"""Help that answers: `%hybridnb help`, `%%reason?`/`%%local?`, and "did you mean" for flag typos."""

from __future__ import annotations

import difflib
import re

from IPython.core.error import UsageError

from ..errors import HybridnbError

_CELL_EXAMPLES = {
    "reason": [
        ("one prompt; {name} fills from your variables, the answer lands in `plan`",
         "%%reason -o plan\nPropose a taxonomy for these complaints: {sample}"),
        ("explain the last error, or summarise cell 3's output",
         "%%reason\nExplain this error and how to fix it: {Err[-1]}\n\nCode: {In[-2]}"),
        ("code into a new cell below", "%%reason -f code\nA polars expression that counts rows per day of {df_name}"),
        ("a closed label set", "%%reason --choices yes,no\nIs this a complaint? {text}"),
    ],
    "local": [
        ("label every row of a DataFrame on local compute",
         "%%local --over segments -o labeled --choices risk,cost,other\nWhich concern is this? {text}"),
        ("parse the answer as JSON into `facts`", "%%local -f json -o facts\nName and year as JSON: {text}"),
    ],
}

#: name -> (one line, example); the order is the order help shows
COMMANDS: dict[str, tuple[str, str]] = {
    "status": ("which backend, model and endpoint each route uses, the home folder and the budget",
               "%hybridnb status"),
    "summary": ("spend by route/backend/model, cache savings and the budget with its basis; "
                "scope: notebook (default), session, day or total", "%hybridnb summary day"),
    "models": ("the models each route can use: the endpoint's /v1/models, the embedded model, "
               "priced models with $ per 1M tokens", "%hybridnb models reason"),
    "config": ("show every setting, or set some for this session", "%hybridnb config reason.model=gpt-4o-mini"),
    "budget": ("show the budget, set it in $ (--per session|notebook|day|total), or remove it",
               "%hybridnb budget 5 --per day"),
    "cache": ("empty the answer cache", "%hybridnb cache clear"),
    "backends": ("installed backends (built-in and plug-ins) and their import paths", "%hybridnb backends"),
    "widget": ("the live spend panel (text summary in a terminal)", "%hybridnb widget"),
    "signals": ("operator signals and advice as data", "%hybridnb signals"),
    "export": ("a %%markdown cell with the cost summary below, or the raw ledger to a file",
               "%hybridnb export --ledger spend.parquet"),
    "batches": ("provider batch jobs (--batch-api): list them, re-attach to one, or cancel it",
                "%hybridnb batches cancel batch_abc123"),
    "discipline": ("workflow habits per notebook|cell|template|user: $ on reasoning, reasoning that looks local, "
                   "template versions per cell, rework; --compare A B side by side",
                   "%hybridnb discipline notebook"),
    "reset": ("forget session settings and the session's spend counter (the ledger is kept)", "%hybridnb reset"),
    "help": ("this list; `%%reason?` / `%%local?` show the cell magics' options", "%hybridnb help"),
}


def line_magic_help() -> str:
    """Every `%hybridnb` command with one line and an example."""
    width = max(map(len, COMMANDS))
    lines = ["%hybridnb COMMAND [ARGS] — the control plane (no command: status)", ""]
    for name, (what, example) in COMMANDS.items():
        lines.append(f"  {name:<{width}}  {what}")
        lines.append(f"  {'':<{width}}  e.g. {example}")
    lines += ["", "Cell magics: %%reason (token-priced API) and %%local (compute you control);",
              "`%%reason?` and `%%local?` show their options and the backend/model in effect.",
              "Templates: {variable}, {In[3]}, {Out[3]}, {Err[3]}, {In[-1]} (the cell before);",
              "a %%reason/%%local cell's answer is its Out[n]."]
    return "\n".join(lines)


def in_effect(route: str) -> str:
    """One line: the backend, model, endpoint and pricing a route would use now."""
    from ..core.dispatcher import get_dispatcher

    if route not in ("reason", "local"):  # e.g. %%auto: both routes
        return "; ".join(f"%%{r}: {in_effect(r)}" for r in ("reason", "local"))
    try:
        t = get_dispatcher().resolve(route)
    except HybridnbError as e:
        return f"not ready — {e}"
    where = t.endpoint or "in-process"
    stand_in = f" (offline stand-in for {t.reference_model})" if t.simulated else ""
    return f"{t.backend_name} · {t.model}{stand_in} · {where} · priced by {t.pricing}"


def cell_magic_help(route: str, parser) -> str:
    """`%%reason?` / `%%local?`: the cell form, what is in effect, options and examples."""
    doc = {"reason": "Send the cell to the reasoning route (a token-priced API).",
           "local": "Send the cell to local compute (vLLM, or the embedded CPU model)."}.get(route, "")
    usage = " ".join(parser.format_usage().strip().lstrip(":").split())
    key = f"{route}.model" if route in ("reason", "local") else "reason.model"
    lines = [f"{usage}", "<prompt: the cell body, with {variable}, {In[n]}, {Out[n]}, {Err[n]}>", "", doc, "",
             f"In effect now: {in_effect(route)}",
             f"(change it per cell with -m/--backend/--base-url, or `%hybridnb config {key}=NAME`)", "",
             "Options:"]
    for action in parser._actions:
        flags = ", ".join(action.option_strings)
        if action.metavar:
            flags += f" {action.metavar}"
        elif action.choices:
            flags += " {" + "|".join(action.choices) + "}"
        elif action.nargs != 0:
            flags += f" {action.dest.upper()}"
        lines.append(f"  {flags:<28} {(action.help or '').replace('%%', '%')}")
    lines += ["", "Examples:"]
    for what, ex in _CELL_EXAMPLES.get(route, ()):
        lines.append(f"  # {what}")
        lines += [f"  {x}" for x in ex.splitlines()]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def option_list(parser) -> str:
    return ", ".join("/".join(a.option_strings) for a in parser._actions if a.option_strings)


def explain_usage_error(magic: str, parser, line: str, message: str) -> str:
    """Turn argparse's bare message into one line naming the magic, the typo's nearest option and all options."""
    from IPython.utils.process import arg_split

    try:
        words = arg_split(line, strict=False)
    except ValueError:
        words = line.split()
    known = [o for a in parser._actions for o in a.option_strings]
    takes_value = {o for a in parser._actions if a.nargs != 0 for o in a.option_strings}
    prev = None
    for w in words:
        flag = w.split("=", 1)[0]
        if w.startswith("-") and len(w) > 1 and flag not in known and not _is_number(w):
            near = difflib.get_close_matches(flag, known, n=1, cutoff=0.75)
            hint = f" — did you mean {near[0]}?" if near else "."
            return f"{magic}: unknown option {flag}{hint} Options: {option_list(parser)}"
        if not w.startswith("-") and prev not in takes_value and "unrecognized arguments" in message:
            return (f"{magic}: unexpected {w!r} on the magic line (the prompt goes in the cell below). "
                    f"Options: {option_list(parser)}")
        prev = flag if w.startswith("-") else None
    bad = re.search(r"invalid choice: '([^']*)'", message)
    near = difflib.get_close_matches(bad.group(1), _choices(parser), n=1) if bad else []
    hint = f" — did you mean {near[0]}?" if near else "."
    return f"{magic}: {message}{hint} Options: {option_list(parser)}"


def _choices(parser) -> list[str]:
    return [str(c) for a in parser._actions for c in (a.choices or ())]


def _is_number(w: str) -> bool:
    try:
        float(w)
        return True
    except ValueError:
        return False


def parse_line(magic: str, parser, line: str):
    """Parse a magic's line; every mistake is one UsageError naming the magic."""
    try:
        return parser.parse_argstring(line)
    except UsageError as e:
        raise UsageError(explain_usage_error(magic, parser, line, str(e))) from None
