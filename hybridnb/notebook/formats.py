"""`-f/--format`: how an answer is shown (and, for json and code, what it becomes).

``markdown`` (default) and ``text`` display the answer; ``json`` parses it into a Python object
(stored by ``-o``); ``code`` puts it into a new cell below; ``html`` and ``math`` render it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

FORMATS = ("markdown", "text", "json", "code", "html", "math")

#: what the model is asked for, appended to the prompt (markdown and text ask nothing extra)
_ASK = {
    "json": "Answer with JSON only, no text or code fences around it.",
    "code": "Answer with source code only, no explanation and no code fences.",
    "html": "Answer with HTML only, no text or code fences around it.",
    "math": "Answer in LaTeX only, without surrounding $$ or code fences.",
}

_FENCE = re.compile(r"^\s*```[\w+-]*\s*\n(.*?)\n\s*```\s*$", re.S)


def instruct(prompt: str, fmt: str) -> str:
    """The prompt with the format's request appended."""
    ask = _ASK.get(fmt)
    return f"{prompt}\n\n{ask}" if ask else prompt


def strip_fences(text: str) -> str:
    """The body of a single fenced block (```lang … ```), else the text itself."""
    m = _FENCE.match(text.strip())
    return m.group(1) if m else text.strip()


def parse_json(resp) -> Any:
    """The answer as a Python object; UsageError when it is not JSON."""
    if getattr(resp, "json", None) is not None:
        return resp.json
    body = strip_fences(resp.text)
    try:
        return json.loads(body)
    except ValueError as e:
        raise UsageError(f"-f json: the answer is not JSON ({e}); it starts {body[:60]!r}") from None


class Formatted:
    """An answer in one format, with the cost footer, readable as rich output and as plain text."""

    def __init__(self, resp, fmt: str, body: str, note: str = ""):
        self.resp, self.fmt, self.body, self.note = resp, fmt, body, note

    def __str__(self) -> str:
        head = f"{self.note}\n" if self.note else ""
        return f"{head}{self.body}\n-- {self.resp.footer()}"

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))

    def _repr_mimebundle_(self, include=None, exclude=None):
        from ..spend.render import md

        foot = f"<sub>{md(self.resp.footer())}</sub>"
        out = {"text/plain": str(self)}
        if self.fmt == "html":
            out["text/html"] = f"{self.body}<div><small>{_html_escape(self.resp.footer())}</small></div>"
        elif self.fmt == "math":
            out["text/markdown"] = f"$$\n{self.body}\n$$\n\n{foot}"
            out["text/latex"] = f"$${self.body}$$"
        elif self.fmt == "json":
            out["text/markdown"] = f"```json\n{self.body}\n```\n\n{foot}"
        elif self.fmt == "code":
            out["text/markdown"] = f"{md(self.note)}\n\n{foot}"
        return out


def _html_escape(s: str) -> str:
    import html

    return html.escape(s)


def present(shell, resp, fmt: str, *, quiet: bool, metadata: dict) -> Any:
    """Show ``resp`` in ``fmt``; return what ``-o`` stores (the parsed object for json, else the Response)."""
    if fmt == "markdown":
        if not quiet:
            display(resp, metadata=metadata)
        return resp
    if fmt == "text":
        if not quiet:
            display({"text/plain": f"{resp.text}\n-- {resp.footer()}"}, raw=True, metadata=metadata)
        return resp
    if fmt == "json":
        value = parse_json(resp)
        if not quiet:
            display(Formatted(resp, fmt, json.dumps(value, indent=2, ensure_ascii=False, default=str)),
                    metadata=metadata)
        return value
    if fmt == "code":
        code = strip_fences(resp.text)
        shell.set_next_input(code, replace=False)
        if not quiet:
            n = code.count("\n") + 1
            display(Formatted(resp, fmt, code, f"inserted below: a new cell with the answer ({n} lines)"),
                    metadata=metadata)
        return resp
    body = strip_fences(resp.text) if fmt == "html" else resp.text.strip().strip("$").strip()
    if not quiet:
        display(Formatted(resp, fmt, body), metadata=metadata)
    return resp
