"""Scored choices for vLLM (server and engine): each label's likelihood, not greedy constrained decoding.

For one request with labels ``L``: the chat-templated prompt (options stated in
it) is tokenized once; each label variant (as given, Capitalised, lower case)
becomes the assistant turn's tokens, found as the difference between
``[user, assistant=variant]`` and the generation prompt for a fixed user text;
the end of the turn (the continuation of an empty answer) is left out of the
score when the labels are prefix-free.  The prompt logprobs of ``prompt + variant`` (one
prefill each, a shared prefix) give the variant's log-likelihood; a label's score
is the log-sum-exp over its variants; this is done for each order of the stated
options (rotations) and the orders' probabilities are averaged, so the listing
order cannot decide the answer.  Greedy constrained decoding of a 135M model picked one label for every
input (issue 15: 29/29 "negative"); scoring reads the whole distribution.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable, Mapping, Sequence

from ..core.constraints import (NULL_PROMPT, chat_messages, combine_orders, logsumexp, option_orders,
                                options_stated, prefix_free)
from ..types import Request

#: fixed user text used to find the assistant turn's tokens for a label
PROBE_USER = "x"


def variants(choice: str) -> list[str]:
    """The label as given, Capitalised and lower case (small models often capitalise)."""
    return list(dict.fromkeys([choice, choice[:1].upper() + choice[1:], choice.lower()]))


def messages(r: Request, order: Sequence[str] | None = None, stated: bool | None = None) -> list[dict[str, str]]:
    """The chat messages the model sees, with the options stated (in ``order`` when given;
    ``stated``: see :func:`~hybridnb.core.constraints.chat_messages`)."""
    return chat_messages(r.prompt, order or r.choices, r.system, stated)


def stated(r: Request) -> bool:
    """Whether the options line is added for ``r`` (and for its content-free twin)."""
    return options_stated(r.prompt, r.choices)


def orders(r: Request) -> list[tuple[str, ...]]:
    """The option orders ``r`` is scored under (one when its prompt names every label)."""
    return option_orders(r.choices or (), r.prompt)


def continuation(gen_prompt: Sequence[int], full: Sequence[int]) -> list[int] | None:
    """The tokens ``full`` adds after ``gen_prompt`` (the assistant turn: label + end of turn);
    None when the template does not extend the generation prompt (then labels cannot be scored)."""
    n = len(gen_prompt)
    if len(full) <= n or list(full[:n]) != list(gen_prompt):
        return None
    return list(full[n:])


def scored_lengths(r: Request, conts: Mapping[str, Sequence[int]], end: Sequence[int] | None) -> dict[str, int]:
    """Variant → how many of its continuation tokens to score: the label's own tokens when every
    continuation ends with the end-of-turn tokens ``end`` (the continuation of an empty answer)
    and the labels are prefix-free (:func:`~hybridnb.core.constraints.prefix_free`); else all."""
    full = {v: len(c) for v, c in conts.items()}
    n = len(end or ())
    if not n or any(len(c) <= n or list(c[-n:]) != list(end) for c in conts.values()):
        return full
    own = {label: [list(conts[v][:-n]) for v in variants(label)] for label in r.choices or ()}
    return {v: len(c) - n for v, c in conts.items()} if prefix_free(own) else full


def plan(r: Request, prefixes: Sequence[Sequence[int]], conts: Mapping[str, Sequence[int]],
         lengths: Mapping[str, int] | None = None) -> tuple[list[list[int]], list[tuple[int, str, int, int]]]:
    """Token prompts to score and, per prompt, (order, label, start, length) of the scored tokens
    (``lengths[variant]``, default the whole continuation).

    ``prefixes`` holds the templated prompt for each option order (:func:`option_orders`)."""
    prompts: list[list[int]] = []
    spans: list[tuple[int, str, int, int]] = []
    for k, prefix in enumerate(prefixes):
        for label in r.choices or ():
            for v in variants(label):
                cont = list(conts[v])
                prompts.append(list(prefix) + cont)
                spans.append((k, label, len(prefix), lengths[v] if lengths else len(cont)))
    return prompts, spans


def order_logprobs(choices: Sequence[str], spans: Sequence[tuple[int, str, int, int]],
                   per_prompt: Sequence[Sequence[float]]) -> list[dict[str, float]]:
    """Per prefix (order): label → log-sum-exp over its variants of the summed token logprobs."""
    by: dict[int, dict[str, list[float]]] = {}
    for (k, label, start, n), lps in zip(spans, per_prompt):
        by.setdefault(k, {}).setdefault(label, []).append(sum(lps[start:start + n]))
    return [{c: logsumexp(by[k].get(c, [])) for c in choices} for k in sorted(by)]


def pick(choices: Sequence[str], per_order: Sequence[Mapping[str, float]],
         null_per_order: Sequence[Mapping[str, float]] | None = None) -> tuple[str, dict[str, float]]:
    """(best label, label → probability) from the orders' (calibrated) label log-likelihoods."""
    probs = combine_orders(per_order, null_per_order)
    return max(choices, key=lambda c: probs[c]), probs


def null_request(r: Request) -> Request:
    """The content-free request whose label likelihoods calibrate ``r``'s."""
    return replace(r, prompt=NULL_PROMPT)


def token_logprobs(ids: Sequence[int], prompt_logprobs: Iterable[Any]) -> list[float]:
    """Per-position logprob of ``ids`` from vLLM ``prompt_logprobs`` (dicts keyed by token id;
    the first position is None).  Values may be floats, objects with ``.logprob`` or dicts."""
    out: list[float] = []
    for tid, pos in zip(ids, prompt_logprobs):
        if pos is None:
            out.append(0.0)
            continue
        v = pos.get(tid, pos.get(str(tid))) if isinstance(pos, Mapping) else None
        if v is None:
            out.append(float("-inf"))
            continue
        v = getattr(v, "logprob", v)
        out.append(float(v["logprob"] if isinstance(v, Mapping) else v))
    return out


def as_ids(x: Any) -> list[int]:
    """Token ids from what ``apply_chat_template(tokenize=True)`` returns (a list, or a dict with input_ids)."""
    if isinstance(x, Mapping) or hasattr(x, "input_ids"):
        x = x["input_ids"]
    if x and isinstance(x[0], (list, tuple)):
        x = x[0]
    return [int(t) for t in x]
