"""In-process ``vllm.LLM`` for offline batch work on a GPU (``pip install hybridnb[vllm]``).

vLLM is imported only when the first batch runs.  The dispatcher hands this
backend big chunks (:attr:`VLLMEngineBackend.batch_size`); each chunk is one
``llm.generate`` call in a worker thread, so the notebook's event loop stays
free.  Usage comes from the outputs' token ids; ``busy_s`` is the generate
time, while the held time the dispatcher measures also covers loading the
model — the difference is what the GPU cost while it did no work.

Engine arguments beyond the model (``dtype``, ``gpu_memory_utilization``,
``max_model_len``, ``tensor_parallel_size``, ``load_format``, …) come from the
JSON object in ``HYBRIDNB_VLLM_ENGINE_ARGS``.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Any, Mapping, Sequence

from .. import errors
from ..types import Completion, Request, Usage
from . import _vllm_score as score
from ._base import Backend
from ._openai import OpenAIBackend

INSTALL_HINT = "pip install hybridnb[vllm]"
ENGINE_ARGS_ENV = "HYBRIDNB_VLLM_ENGINE_ARGS"
BATCH_SIZE_ENV = "HYBRIDNB_VLLM_BATCH_SIZE"  # requests per generate call (default 256)
DEFAULT_MAX_TOKENS = 256


def import_vllm():
    """The ``vllm`` module, or BackendUnavailable saying how to install it."""
    try:
        import vllm
    except ImportError as e:
        raise errors.BackendUnavailable(
            f"the vllm-engine backend needs vLLM, which is not installed: {INSTALL_HINT} "
            "(on a machine with an NVIDIA GPU)") from e
    return vllm


def structured_params(vllm_mod: Any, choices: Sequence[str] | None, json_schema: Mapping | None) -> dict:
    """SamplingParams keyword for a choice/JSON constraint, in the installed vLLM's form."""
    if not choices and not json_schema:
        return {}
    spec = {"choice": list(choices)} if choices else {"json": dict(json_schema or {})}
    sp = getattr(vllm_mod, "sampling_params", None)
    cls = getattr(sp, "StructuredOutputsParams", None)
    if cls is not None:  # vLLM >= 0.10.2
        return {"structured_outputs": cls(**spec)}
    cls = getattr(sp, "GuidedDecodingParams", None)
    if cls is not None:  # older vLLM
        return {"guided_decoding": cls(**spec)}
    raise errors.BackendUnavailable("this vLLM has neither StructuredOutputsParams nor GuidedDecodingParams; "
                                    "upgrade it for --choices / --json-schema")


def engine_args_from_env() -> dict[str, Any]:
    raw = os.environ.get(ENGINE_ARGS_ENV, "").strip()
    if not raw:
        return {}
    try:
        args = json.loads(raw)
    except ValueError as e:
        raise errors.ConfigError(f"{ENGINE_ARGS_ENV} must be a JSON object: {e}") from None
    if not isinstance(args, dict):
        raise errors.ConfigError(f"{ENGINE_ARGS_ENV} must be a JSON object, got {type(args).__name__}")
    return args


class VLLMEngineBackend(Backend):
    """Offline batch generation with an in-process ``vllm.LLM``, priced by GPU time."""

    name = "vllm-engine"
    pricing = "compute"
    #: the dispatcher hands this many requests to one ``complete`` call
    batch_size = 256
    #: one generate at a time: the engine batches internally
    max_concurrency = 1
    scored_choices = True
    discovers_model = True

    def __init__(self, model: str | None, engine_args: Mapping[str, Any] | None = None,
                 batch_size: int | None = None):
        self.model = model
        self.engine_args = dict(engine_args or {})
        if batch_size:
            self.batch_size = int(batch_size)
        self._llm = None
        self._load_lock = threading.Lock()
        self.load_s: float | None = None

    @classmethod
    def from_route(cls, rs: Any, settings: Any) -> "VLLMEngineBackend":
        return cls(rs.model, engine_args_from_env(), int(os.environ.get(BATCH_SIZE_ENV) or 0) or None)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "endpoint": "in-process", "model": self.model,
                "loaded": self._llm is not None, "load_s": self.load_s, "batch_size": self.batch_size}

    def discover_model(self) -> str | None:
        if not self.model:
            raise errors.ConfigError("the vllm-engine backend loads a model in this process: name it with "
                                     "HYBRIDNB_LOCAL_MODEL (a local folder with config + weights)")
        return self.model

    # ---- the engine ------------------------------------------------------
    def llm(self):
        """The loaded ``vllm.LLM`` (loads on first use; blocking)."""
        with self._load_lock:
            if self._llm is None:
                vllm = import_vllm()
                if not self.model:
                    self.discover_model()
                t0 = time.perf_counter()
                try:
                    self._llm = vllm.LLM(model=self.model, **self.engine_args)
                except Exception as e:
                    raise errors.BackendUnavailable(
                        f"vLLM could not load {self.model!r}: {type(e).__name__}: {str(e)[:300]}") from e
                self.load_s = time.perf_counter() - t0
            return self._llm

    async def prepare(self) -> float | None:
        """Load the engine before the first chunk's held time starts; the load seconds (ledgered as set-up)."""
        if self._llm is not None:
            return None
        try:
            await asyncio.to_thread(self.llm)
        except errors.HybridnbError:
            return None  # vLLM missing or the model will not load: each call says so
        return self.load_s

    def _prompt(self, llm: Any, r: Request) -> str:
        messages = score.messages(r)
        try:
            tok = llm.get_tokenizer()
            if getattr(tok, "chat_template", None):
                return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception:
            pass
        return (f"{r.system}\n\n" if r.system else "") + messages[-1]["content"]

    def _score_plan(self, llm: Any, r: Request) -> tuple[list[list[int]], list, int, dict] | None:
        """Token prompts (prompt + each label variant + end of turn) for ``r``; None without a chat template."""
        tok = llm.get_tokenizer()
        if not getattr(tok, "chat_template", None):
            return None
        sys_msgs = [{"role": "system", "content": r.system}] if r.system else []
        probe = sys_msgs + [{"role": "user", "content": score.PROBE_USER}]
        gen = score.as_ids(tok.apply_chat_template(probe, add_generation_prompt=True, tokenize=True))
        def turn(v: str) -> list[int] | None:
            return score.continuation(gen, score.as_ids(tok.apply_chat_template(
                probe + [{"role": "assistant", "content": v}], add_generation_prompt=False, tokenize=True)))

        conts = {v: turn(v) for c in r.choices or () for v in score.variants(c)}
        if any(c is None for c in conts.values()):
            return None
        prefixes = [score.as_ids(tok.apply_chat_template(score.messages(q, order, score.stated(r)),
                                                         add_generation_prompt=True, tokenize=True))
                    for q in (r, score.null_request(r)) for order in score.orders(r)]
        # the prompt's orders, then the content-free ones; labels scored without the end of turn
        prompts, spans = score.plan(r, prefixes, conts, score.scored_lengths(r, conts, turn("")))
        return prompts, spans, sum(len(p) for p in prefixes[:len(prefixes) // 2]), conts

    def _sampling(self, vllm: Any, r: Request) -> Any:
        kw = structured_params(vllm, r.choices, r.json_schema)
        max_tokens = r.max_tokens or (16 if r.choices else DEFAULT_MAX_TOKENS)
        return vllm.SamplingParams(temperature=r.temperature or 0.0, max_tokens=max_tokens, **kw)

    def _generate(self, requests: Sequence[Request]) -> tuple[list[Any], float, float]:
        """Blocking: load if needed, run one batch; (outputs, started, busy seconds).

        A choice request's output is a dict (label, probabilities, token counts) from
        scoring its labels; the rest are vLLM's RequestOutputs."""
        vllm = import_vllm()
        llm = self.llm()
        prompts: list[Any] = []
        params: list[Any] = []
        slots: list[Any] = []  # per request: index into prompts, or (plan, first index)
        scoring = vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        for r in requests:
            plan = self._score_plan(llm, r) if r.choices else None
            if plan is None:
                slots.append(len(prompts))
                prompts.append(self._prompt(llm, r))
                params.append(self._sampling(vllm, r))
            else:
                slots.append((plan, len(prompts)))
                prompts.extend({"prompt_token_ids": p} for p in plan[0])
                params.extend([scoring] * len(plan[0]))
        started = time.time()
        t0 = time.perf_counter()
        outs = list(llm.generate(prompts, params, use_tqdm=False))
        busy = time.perf_counter() - t0
        return [outs[s] if isinstance(s, int) else self._scored(r, s[0], outs[s[1]:s[1] + len(s[0][0])])
                for r, s in zip(requests, slots)], started, busy

    @staticmethod
    def _scored(r: Request, plan: tuple, outs: Sequence[Any]) -> dict[str, Any]:
        prompts, spans, n_prefix, conts = plan
        per = [score.token_logprobs(p, o.prompt_logprobs or []) for p, o in zip(prompts, outs)]
        per_order = score.order_logprobs(r.choices, spans, per)
        half = len(per_order) // 2
        label, probs = score.pick(r.choices, per_order[:half], per_order[half:])
        return {"label": label, "probs": probs, "logprobs": per_order[0], "input": n_prefix,
                "output": len(conts[label])}

    async def complete(self, requests: Sequence[Request]) -> list[Completion]:
        if not requests:
            return []
        wrong = [r.model for r in requests if self.model and r.model != self.model]
        if wrong:
            err = errors.BackendUnavailable(f"the in-process engine has {self.model!r} loaded, not {wrong[0]!r}; "
                                            "restart the kernel to load another model")
            now = time.time()
            return [Completion("", Usage(), now, now, error=err, billed=False) for _ in requests]
        t_call = time.time()
        try:
            outs, started, busy = await asyncio.to_thread(self._generate, requests)
        except errors.HybridnbError as e:
            now = time.time()
            return [Completion("", Usage(), t_call, now, error=e, billed=False) for _ in requests]
        except Exception as e:
            err = errors.BackendError(f"vLLM generate failed: {type(e).__name__}: {str(e)[:300]}")
            err.__cause__ = e
            now = time.time()
            return [Completion("", Usage(), t_call, now, error=err, billed=False) for _ in requests]
        ended = time.time()
        each_busy = busy / len(requests)
        comps = []
        for r, o in zip(requests, outs):
            if isinstance(o, dict):  # scored choices
                c = Completion(o["label"], Usage(o["input"], o["output"]), started, ended, model=self.model,
                               busy_s=each_busy, choice_probs=o["probs"])
                c.extra.update(choice_logprobs=o["logprobs"], finish_reason="choice")
                comps.append(c)
                continue
            gen = o.outputs[0] if o.outputs else None
            usage = Usage(input_tokens=len(o.prompt_token_ids or []),
                          output_tokens=len(gen.token_ids) if gen is not None else 0)
            c = Completion(gen.text if gen is not None else "", usage, started, ended, model=self.model,
                           busy_s=each_busy)
            if gen is not None:
                c.extra["finish_reason"] = getattr(gen, "finish_reason", None)
            comps.append(OpenAIBackend._validate(r, c))
        return comps

    async def aclose(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            del llm
            try:
                import gc

                import torch

                gc.collect()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except Exception:
                pass
