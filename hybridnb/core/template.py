"""``{name}`` interpolation of cell text from the notebook's namespace."""

from __future__ import annotations

import string
from typing import Any, Mapping

from ..errors import TemplateError

_fmt = string.Formatter()


def field_names(template: str) -> list[str]:
    """Top-level variable names a template uses (``{a.b}`` → ``a``)."""
    names = []
    try:
        for _, field, _, _ in _fmt.parse(template):
            if field is None:
                continue
            if field == "" or field.isdigit():
                raise TemplateError("empty {} in the prompt: name a variable, or write {{ }} for a literal brace")
            root = field.split(".", 1)[0].split("[", 1)[0]
            if root not in names:
                names.append(root)
    except ValueError as e:
        raise TemplateError(f"malformed template ({e}); write {{{{ and }}}} for literal braces") from None
    return names


def render(template: str, namespace: Mapping[str, Any]) -> str:
    """Fill ``{name}`` fields from ``namespace``; ``{{``/``}}`` are literal braces."""
    names = field_names(template)
    missing = [n for n in names if n not in namespace]
    if missing:
        raise TemplateError(f"{{{missing[0]}}} is not defined: set a variable named {missing[0]!r} first "
                            "(or write {{ }} for literal braces)")
    try:
        return _fmt.vformat(template, (), namespace)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as e:
        raise TemplateError(f"cannot fill the prompt: {type(e).__name__}: {e}") from None
