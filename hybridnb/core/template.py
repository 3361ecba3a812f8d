"""``{name}`` interpolation of cell text from the notebook's namespace.

Besides variables, a template may cite earlier cells of the shell's history:
``{In[3]}`` (cell 3's source), ``{Out[3]}`` (its result), ``{Err[3]}`` (the error it raised),
and relative ones counted back from the running cell: ``{In[-1]}`` is the cell before it.
"""

from __future__ import annotations

import re
import string
from typing import Any, Mapping

from ..errors import TemplateError

_fmt = string.Formatter()
_REF = re.compile(r"^(In|Out|Err)\[\s*(-?\d+)\s*\]$")
_WHAT = {"In": "a source", "Out": "a result", "Err": "an error"}


def field_names(template: str) -> list[str]:
    """Top-level variable names a template uses (``{a.b}`` → ``a``); cell references are left out."""
    names = []
    try:
        for _, field, _, _ in _fmt.parse(template):
            if field is None:
                continue
            if field == "" or field.isdigit():
                raise TemplateError("empty {} in the prompt: name a variable, or write {{ }} for a literal brace")
            if _REF.match(field):
                continue
            root = field.split(".", 1)[0].split("[", 1)[0]
            if root not in names:
                names.append(root)
    except ValueError as e:
        raise TemplateError(f"malformed template ({e}); write {{{{ and }}}} for literal braces") from None
    return names


def cell_refs(template: str) -> list[str]:
    """The ``In[n]``/``Out[n]``/``Err[n]`` fields a template uses, in order."""
    try:
        return [f for _, f, _, _ in _fmt.parse(template) if f and _REF.match(f)]
    except ValueError:
        return []


class _History:
    """Looks up cell references in a shell's history (or in ``In``/``Out``/``Err`` of a namespace)."""

    def __init__(self, namespace: Mapping[str, Any], shell: Any | None):
        self.ns, self.shell = namespace, shell
        # the running cell is the last input stored (IPython stores it before running it)
        self.current = max(len(self.table("In") or ()) - 1, 0)

    def table(self, kind: str) -> Any:
        if kind == "In" and self.shell is not None:
            hm = getattr(self.shell, "history_manager", None)
            if hm is not None and getattr(hm, "input_hist_raw", None):
                return hm.input_hist_raw
        return self.ns.get(kind)

    def lookup(self, field: str) -> Any:
        kind, n = _REF.match(field).groups()
        n = int(n)
        cell = self.current + n if n < 0 else n
        table = self.table(kind)
        if table is None:
            raise TemplateError(f"{{{field}}}: no cell history here (cell references work in IPython and Jupyter)")
        try:
            value = table[cell] if cell > 0 else None
        except (IndexError, KeyError):
            value = None
        if value is None:
            raise TemplateError(self._missing(field, kind, cell))
        return value

    def _missing(self, field: str, kind: str, cell: int) -> str:
        where = f"cell {cell}" if cell > 0 else f"a cell before the first ({cell})"
        if kind == "In":
            return f"{{{field}}} does not exist: {where} has not run in this kernel (this is cell {self.current})"
        table = self.table(kind) or {}
        have = ", ".join(str(k) for k in sorted(table)[-8:]) if hasattr(table, "keys") else ""
        have = f" ({kind} has cells {have})" if have else f" (no cell has {_WHAT[kind]} yet)"
        verb = "returned no value" if kind == "Out" else "raised no error"
        return f"{{{field}}} does not exist: {where} {verb}{have}"


class _Formatter(string.Formatter):
    def __init__(self, history: _History):
        self.history = history

    def get_field(self, field_name, args, kwargs):
        if _REF.match(field_name):
            return self.history.lookup(field_name), field_name
        return super().get_field(field_name, args, kwargs)


def resolve_refs(template: str, namespace: Mapping[str, Any], shell: Any | None = None) -> str:
    """The template with its cell references filled in (as literal text) and every other field kept,
    so a batch can fill the rest per row."""
    if not cell_refs(template):
        return template
    fmt = _Formatter(_History(namespace, shell))
    out = []
    for literal, field, spec, conv in _fmt.parse(template):
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if field is None:
            continue
        if _REF.match(field):
            value = fmt.format_field(fmt.convert_field(fmt.history.lookup(field), conv), spec or "")
            out.append(value.replace("{", "{{").replace("}", "}}"))
        else:
            out.append("{" + field + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}")
    return "".join(out)


def render(template: str, namespace: Mapping[str, Any], shell: Any | None = None) -> str:
    """Fill ``{name}`` fields from ``namespace`` and ``{In[n]}``-style ones from the history;
    ``{{``/``}}`` are literal braces."""
    names = field_names(template)
    missing = [n for n in names if n not in namespace]
    if missing:
        raise TemplateError(f"{{{missing[0]}}} is not defined: set a variable named {missing[0]!r} first "
                            "(or write {{ }} for literal braces)")
    fmt = _Formatter(_History(namespace, shell)) if cell_refs(template) else _fmt
    try:
        return fmt.vformat(template, (), namespace)
    except TemplateError:
        raise
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as e:
        raise TemplateError(f"cannot fill the prompt: {type(e).__name__}: {e}") from None
