"""Validation of structured-output options shared by calls, batches and magics."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

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


def options_line(choices: Iterable[str]) -> str:
    """The sentence that states a closed label set in the prompt the model sees."""
    return "Answer with exactly one of: " + ", ".join(choices) + "."


def names_every(prompt: str, choices: Iterable[str]) -> bool:
    """True when ``prompt`` already names every label (as whole words, any case)."""
    low = prompt.lower()
    return all(re.search(r"(?<!\w)" + re.escape(c.lower()) + r"(?!\w)", low) for c in choices)


def options_stated(prompt: str, choices: Iterable[str] | None) -> bool:
    """Whether the backend states the options itself: yes, unless the prompt already names every label.

    Stating them again hurts a small model: on 104 reviews asked "… positive or negative?",
    SmolLM2-135M's label scores separated the classes with AUC 0.88 without the extra line
    and 0.60–0.64 with it, wherever it went (bench/RESULTS.md, "Closed-set answers").
    """
    return bool(choices) and not names_every(prompt, choices)


def with_options(prompt: str, choices: Iterable[str] | None) -> str:
    """``prompt`` with the options stated before it (unchanged without choices, or when it names them)."""
    return f"{options_line(choices)}\n\n{prompt}" if options_stated(prompt, choices) else prompt


def chat_messages(prompt: str, choices: Iterable[str] | None = None,
                  system: str | None = None, stated: bool | None = None) -> list[dict[str, str]]:
    """The chat messages the model sees: the options stated in the system message
    (after the caller's own system text) unless the prompt names them all (or ``stated``
    says otherwise: content-free calibration prompts follow their request), the prompt as
    the user turn.

    Measured on two balanced sets with SmolLM2-135M (bench/RESULTS.md, "Closed-set
    answers"): options in the system message scored 0.750 on 60 three-topic headlines
    and 0.538 on 104 reviews, against 0.617 / 0.519 with the options before the prompt.
    """
    choices = list(choices or ())
    stated = options_stated(prompt, choices) if stated is None else stated and bool(choices)
    sys_text = "\n\n".join(t for t in (system, options_line(choices) if stated else None) if t)
    out = [{"role": "system", "content": sys_text}] if sys_text else []
    out.append({"role": "user", "content": prompt})
    return out


#: at most this many option orders are scored per request
MAX_ORDERS = 4


def option_orders(choices: Iterable[str], prompt: str | None = None) -> list[tuple[str, ...]]:
    """Rotations of the options (at most ``MAX_ORDERS``, evenly spaced), the given order first;
    only the given order when ``prompt`` names every label (no options line to reorder).

    Small models favour the option listed first (SmolLM2-135M with the options stated
    after a review: "Terrible, broke after one day." came out positive); scoring each
    label under every rotation and averaging cancels that position bias.
    """
    opts = tuple(choices)
    if prompt is not None and not options_stated(prompt, opts):
        return [opts]
    k = len(opts)
    starts = sorted({round(i * k / min(k, MAX_ORDERS)) % k for i in range(min(k, MAX_ORDERS))})
    return [opts[s:] + opts[:s] for s in starts]


def prefix_free(tokens_by_label: Mapping[str, Iterable[Sequence[int]]]) -> bool:
    """True when no label's tokens (any surface variant) begin another label's tokens.

    Then a label can be scored by its own tokens alone, without the end of the turn
    after it: on two balanced sets SmolLM2-135M went from 0.558 to 0.587 (104 reviews)
    and from 0.833 to 0.967 (60 headlines) (bench/RESULTS.md, "Closed-set answers").
    Otherwise ("yes" and "yes, partly") the end of turn is what tells them apart.
    """
    seqs = [(label, tuple(t)) for label, variants in tokens_by_label.items() for t in variants]
    return not any(a != b and len(x) <= len(y) and y[:len(x)] == x for a, x in seqs for b, y in seqs)


#: the content-free prompt whose label likelihoods calibrate the real ones
NULL_PROMPT = "N/A"


def combine_orders(per_order: Iterable[Mapping[str, float]],
                   null_per_order: Iterable[Mapping[str, float]] | None = None) -> dict[str, float]:
    """Label → probability from each order's label log-likelihoods: calibrated by the same
    order's content-free likelihoods (``NULL_PROMPT``) when given, normalised per order,
    averaged in log space (a geometric mean), normalised again.

    Calibration ("calibrate before use", Zhao et al. 2021) removes the label prior the
    stated options themselves create: on 40 reviews SmolLM2-135M went from 22/40 (38
    answered "positive") to 30/40 (24 "positive").
    """
    per_order = list(per_order)
    if null_per_order is not None:
        per_order = [{k: v - null.get(k, 0.0) for k, v in lps.items()}
                     for lps, null in zip(per_order, null_per_order)]
    acc: dict[str, list[float]] = {}
    for lps in per_order:
        total = logsumexp(lps.values())
        for k, v in lps.items():
            acc.setdefault(k, []).append(v - total if total != float("-inf") else float("-inf"))
    mean = {k: (sum(v) / len(v) if all(x != float("-inf") for x in v) else float("-inf")) for k, v in acc.items()}
    return choice_probs(mean)


def logsumexp(values: Iterable[float]) -> float:
    """log(sum(exp(v))) without overflow; -inf for nothing."""
    vals = [v for v in values if v != float("-inf")]
    if not vals:
        return float("-inf")
    top = max(vals)
    return top + math.log(sum(math.exp(v - top) for v in vals))


def choice_probs(logprobs: Mapping[str, float]) -> dict[str, float]:
    """Label → probability, from each label's total log-likelihood, normalised over the labels."""
    total = logsumexp(logprobs.values())
    if total == float("-inf"):
        return {k: 1.0 / len(logprobs) for k in logprobs} if logprobs else {}
    return {k: math.exp(v - total) for k, v in logprobs.items()}
