"""Validation of structured-output options shared by calls, batches and magics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import HybridnbError


def check_choices(choices: str | Iterable[Any] | None) -> list[str] | None:
    """A closed label set from ``"a,b,c"`` or a sequence; at least two, no duplicates."""
    if choices is None:
        return None
    if isinstance(choices, str):
        text = choices.strip()
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
            text = text[1:-1]  # magics keep quotes: --choices "Risk and security,Cost"
        choices = [c.strip() for c in text.split(",")]
    out = [str(c).strip() for c in choices if str(c).strip()]
    if len(out) < 2:
        raise HybridnbError("choices needs at least two labels")
    if len(set(out)) != len(out):
        raise HybridnbError("choices has duplicate labels")
    return out


def load_schema(schema: Mapping[str, Any] | str | Path | None) -> dict | None:
    """A JSON schema given inline or as a path to a JSON file."""
    if schema is None or isinstance(schema, Mapping):
        return dict(schema) if schema is not None else None
    p = Path(schema).expanduser()
    try:
        value = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise HybridnbError(f"json_schema: cannot read {p}: {e.strerror}") from None
    except ValueError as e:
        raise HybridnbError(f"json_schema: {p} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise HybridnbError(f"json_schema: {p} must hold a JSON object")
    return value
