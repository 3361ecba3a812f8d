"""Label probabilities from an OpenAI-style chat answer's ``logprobs`` (``top_logprobs`` at the label).

Used where labels cannot be scored one by one (a plain OpenAI-compatible API):
the answer was produced under a choice constraint; at the token where the label
starts, the alternatives' probabilities are credited to the labels they begin.
None ("probability unknown") when the server sent no logprobs, or when the
label's first token does not tell the labels apart.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

#: alternatives asked for at each position (OpenAI's maximum)
TOP_LOGPROBS = 20


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def label_probs(raw: str, label: str, choices: Sequence[str], content: Sequence[Any] | None) -> dict[str, float] | None:
    """Label → probability from per-token ``content`` logprobs of the answer ``raw`` that names ``label``."""
    if not content:
        return None
    at = raw.find(label)
    if at < 0:
        at = raw.lower().find(label.lower())
    if at < 0:
        return None
    pos = 0
    for tok in content:
        text = _field(tok, "token") or ""
        if pos <= at < pos + len(text):
            return _credit(raw[pos:at], _field(tok, "top_logprobs") or [], label, choices)
        pos += len(text)
    return None


def _credit(head: str, alternatives: Sequence[Any], label: str, choices: Sequence[str]) -> dict[str, float] | None:
    mass = {c: 0.0 for c in choices}
    own = None
    for alt in alternatives:
        tok = _field(alt, "token") or ""
        lp = _field(alt, "logprob")
        if lp is None or not tok.startswith(head) or len(tok) == len(head):
            continue
        rest = tok[len(head):]
        hits = [c for c in choices if c.startswith(rest) or c.lower().startswith(rest.lower())]
        if label in hits:
            own = len(hits)
        if len(hits) == 1:
            mass[hits[0]] += math.exp(float(lp))
    total = sum(mass.values())
    if own != 1 or total <= 0:  # the label's own token is shared with another label, or not listed
        return None
    return {c: m / total for c, m in mass.items()}
