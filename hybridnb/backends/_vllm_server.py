"""``vllm serve`` (or any OpenAI-compatible local server) as a compute-priced backend.

On top of :class:`OpenAIBackend` this knows what a vLLM operator expects:

* structured outputs for ``--choices`` / ``--json-schema`` in the form the
  server speaks: ``structured_outputs`` (vLLM ≥ 0.10.2), or the older
  ``guided_choice`` / ``guided_json`` when ``/version`` reports an older
  server (no ``/version``: the new form);
* saturation metrics from the server's Prometheus ``/metrics`` (requests
  running/waiting, KV-cache usage, token counters, latency percentiles);
  servers without it (llama.cpp without ``--metrics``, Ollama) give ``None``
  and one note, never an error;
* the model: ``local.model`` when set, else the first id in ``/v1/models``.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from typing import Any, Sequence

from .. import errors
from ..core.constraints import with_options
from ..types import Completion, Request, Usage
from . import _vllm_metrics, _vllm_score as score
from ._openai import OpenAIBackend, public_endpoint, redact
from ._poll import poll_metrics  # noqa: F401  (re-exported: its old home)

#: first vLLM release that reads ``structured_outputs`` (guided_* removed in 0.12)
STRUCTURED_OUTPUTS_SINCE = (0, 10, 2)
NO_METRICS_NOTE = "no saturation metrics from this backend"


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """``"0.10.1.dev3+g…"`` → ``(0, 10, 1)``; None when it does not start with a number."""
    m = re.match(r"\s*v?(\d+(?:\.\d+)*)", text or "")
    return tuple(int(p) for p in m.group(1).split(".")) if m else None


def server_root(base_url: str) -> str:
    """``http://host:8000/v1`` → ``http://host:8000`` (where /metrics and /version live)."""
    root = base_url.rstrip("/")
    return root[:-3] if root.endswith("/v1") else root


#: server root → (metrics state, when read), shared by every backend object of this process
_SEEN: dict[str, tuple[str, float | None]] = {}


class _NoScoring(Exception):
    """This server cannot score labels (no /tokenize or prompt_logprobs): fall back to constrained."""


class VLLMServerBackend(OpenAIBackend):
    """Chat completions against ``vllm serve`` at ``HYBRIDNB_LOCAL_BASE_URL``, priced by GPU time."""

    name = "vllm"
    pricing = "compute"
    scored_choices = True
    has_metrics = True
    discovers_model = True

    def __init__(self, base_url: str, api_key: str | None = None, *, metrics_timeout_s: float = 2.0,
                 choice_mode: str | None = None, **kw: Any):
        if not base_url:
            raise errors.ConfigError("the vllm backend needs the server's URL: set HYBRIDNB_LOCAL_BASE_URL "
                                     "(e.g. http://127.0.0.1:8000/v1)")
        super().__init__(base_url, api_key, structured="vllm", **kw)
        self._discovered: str | None = None
        self.metrics_timeout_s = metrics_timeout_s
        self.server_version: str | None = None
        self.legacy_guided = False
        self.metrics_state = "unknown"  # not read yet | "yes" | "absent" | "unreachable"
        self.metrics_read_at: float | None = None
        self.metrics_note: str | None = None
        self._probed = False
        self._probe_lock: asyncio.Lock | None = None
        self._http = None
        self._prev: tuple[float, dict[str, Any]] | None = None
        #: "score" (each label's likelihood) or "constrained" (greedy structured output, no probabilities)
        self.choice_mode = choice_mode or os.environ.get("HYBRIDNB_VLLM_CHOICES", "score")
        self.scoring_note: str | None = None  # why labels could not be scored (then: constrained)
        self._conts: dict[tuple, list[int] | None] = {}
        self._nulls: dict[tuple, list[dict[str, float]]] = {}  # content-free label likelihoods per label set

    @classmethod
    def from_route(cls, rs: Any, settings: Any) -> "VLLMServerBackend":
        return cls(rs.base_url, rs.api_key, timeout_s=settings["timeout_s"],
                   max_retries=settings["max_retries"], max_concurrency=settings["concurrency"])

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        # what any backend of this process last read from this server (a batch with other settings
        # gets its own backend object, but it is the same server)
        state, read_at = _SEEN.get(self.root, (self.metrics_state, self.metrics_read_at))
        d.update(server_version=self.server_version, metrics=state, metrics_read_at=read_at,
                 structured="guided_*" if self.legacy_guided else "structured_outputs",
                 choices="constrained" if self.choice_mode != "score" or self.scoring_note else "scored")
        if self.metrics_note:
            d["note"] = self.metrics_note
        if self.scoring_note:
            d["choices_note"] = self.scoring_note
        return d

    # ---- plumbing ------------------------------------------------------
    @property
    def root(self) -> str:
        return server_root(self.base_url)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    @property
    def http(self):
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(timeout=self.metrics_timeout_s, headers=self._headers())
        return self._http

    # ---- model discovery -------------------------------------------------
    def discover_model(self) -> str:
        """The first model id the server lists at ``/v1/models`` (blocking, cached)."""
        if self._discovered:
            return self._discovered
        import httpx

        where = public_endpoint(self.base_url)
        try:
            r = httpx.get(self.base_url.rstrip("/") + "/models", headers=self._headers(),
                          timeout=max(self.metrics_timeout_s, 5.0))
            r.raise_for_status()
            ids = [m["id"] for m in r.json().get("data", []) if m.get("id")]
        except httpx.HTTPError as e:
            raise errors.BackendUnavailable(
                f"cannot ask {where}/models which model it serves ({type(e).__name__}); is `vllm serve` "
                "running there? Or name the model: HYBRIDNB_LOCAL_MODEL") from e
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise errors.MalformedResponse(f"{where}/models did not answer an OpenAI model list") from e
        if not ids:
            raise errors.ConfigError(f"{where} serves no model; set HYBRIDNB_LOCAL_MODEL")
        self._discovered = ids[0]
        return self._discovered

    # ---- structured outputs ------------------------------------------------
    async def probe(self) -> None:
        """Ask ``/version`` once to pick the structured-outputs form."""
        if self._probed:
            return
        if self._probe_lock is None:
            self._probe_lock = asyncio.Lock()
        async with self._probe_lock:
            if self._probed:
                return
            import httpx

            try:
                r = await self.http.get(self.root + "/version")
            except httpx.HTTPError:
                return  # server down: the calls will say so; probe again next time
            self._probed = True
            if r.status_code != 200:
                return
            try:
                self.server_version = str(r.json().get("version") or "") or None
            except (ValueError, AttributeError):
                return
            v = parse_version(self.server_version)
            self.legacy_guided = v is not None and v < STRUCTURED_OUTPUTS_SINCE

    def _body(self, r: Request) -> dict[str, Any]:
        body = super()._body(r)
        extra = body.get("extra_body")
        if self.legacy_guided and extra and "structured_outputs" in extra:
            so = extra.pop("structured_outputs")
            if "choice" in so:
                extra["guided_choice"] = so["choice"]
            if "json" in so:
                extra["guided_json"] = so["json"]
        return body

    async def complete(self, requests: Sequence[Request]) -> list[Completion]:
        await self.probe()
        return await super().complete(requests)

    # ---- scored choices ------------------------------------------------------
    async def _one(self, r: Request) -> Completion:
        if r.choices and self.choice_mode == "score" and self.scoring_note is None:
            try:
                return self._learn(r, await self._score(r))
            except _NoScoring as e:
                self.scoring_note = f"labels not scored ({e}): constrained decoding, probability unknown"
                self.scored_choices = False
                print(f"hybridnb: {public_endpoint(self.base_url)}: {self.scoring_note}", file=sys.stderr)
        return self._learn(r, await super()._one(r))

    # ---- what the chat template costs (for estimates) ----------------------------
    def _learn(self, r: Request, c: Completion) -> Completion:
        """Measure the per-call template overhead from a real call's prompt tokens."""
        if c.error is None and c.usage.input_tokens:
            from ..core.pricing import estimate_tokens

            per_prompt = c.usage.input_tokens // max(1, int(c.extra.get("orders", 1)))
            seen = per_prompt - estimate_tokens((r.system or "") + with_options(r.prompt, r.choices), r.model)
            self.chat_overhead_tokens = max(0, seen)
            self._overhead_known = True
        return c

    def estimate_tokens(self, r: Request, default_out: int, model: str | None = None) -> tuple[int, int]:
        if not getattr(self, "_overhead_known", False):
            self._overhead_known = True  # one probe: the template's tokens around an empty user message
            try:
                import httpx

                body = {"model": self._discovered or r.model, "messages": [{"role": "user", "content": ""}],
                        "add_generation_prompt": True}
                resp = httpx.post(self.root + "/tokenize", json=body, headers=self._headers(),
                                  timeout=max(self.metrics_timeout_s, 5.0))
                if resp.status_code == 200:
                    self.chat_overhead_tokens = int(resp.json()["count"])
            except Exception:  # an estimate never fails a batch: keep the default
                pass
        return super().estimate_tokens(r, default_out, model)

    async def _tokenize(self, body: dict[str, Any]) -> list[int]:
        import httpx

        try:
            resp = await self.http.post(self.root + "/tokenize", json=body, timeout=self.timeout_s)
        except httpx.HTTPError as e:
            raise errors.BackendUnavailable(f"cannot reach {public_endpoint(self.root)}/tokenize "
                                            f"({type(e).__name__})") from e
        if resp.status_code in (404, 405, 501):
            raise _NoScoring(f"no /tokenize: HTTP {resp.status_code}")
        if resp.status_code != 200:
            raise errors.ServerError(f"{public_endpoint(self.root)}/tokenize failed with HTTP {resp.status_code}: "
                                     f"{redact(resp.text[:200], [self._api_key])}")
        try:
            return [int(t) for t in resp.json()["tokens"]]
        except (ValueError, KeyError, TypeError) as e:
            raise _NoScoring("/tokenize did not answer a token list") from e

    async def _continuation(self, model: str, system: str | None, variant: str) -> list[int] | None:
        key = (model, system, variant)
        if key not in self._conts:
            msgs = ([{"role": "system", "content": system}] if system else [])
            msgs.append({"role": "user", "content": score.PROBE_USER})
            gen = await self._tokenize({"model": model, "messages": msgs, "add_generation_prompt": True,
                                        "add_special_tokens": False})
            full = await self._tokenize({"model": model, "add_generation_prompt": False, "add_special_tokens": False,
                                         "messages": msgs + [{"role": "assistant", "content": variant}]})
            self._conts[key] = score.continuation(gen, full)
        return self._conts[key]

    async def _prefixes(self, q: Request, r: Request) -> list[list[int]]:
        """``q`` (``r`` or its content-free twin) templated in each of ``r``'s option orders."""
        return [await self._tokenize({"model": r.model, "messages": score.messages(q, order, score.stated(r)),
                                      "add_generation_prompt": True, "add_special_tokens": False})
                for order in score.orders(r)]

    async def _score(self, r: Request) -> Completion:
        """Each label's likelihood from the prompt logprobs of prompt + label (one /completions call),
        per option order, calibrated by the content-free prompt (cached per label set)."""
        import openai

        started = time.time()
        null_key = (r.model, r.system, tuple(r.choices or ()), score.stated(r))
        try:
            prefixes = await self._prefixes(r, r)
            nulls = [] if null_key in self._nulls else await self._prefixes(score.null_request(r), r)
            conts = {v: await self._continuation(r.model, r.system, v)
                     for c in r.choices or () for v in score.variants(c)}
            end = await self._continuation(r.model, r.system, "")
        except errors.HybridnbError as e:
            return Completion("", Usage(), started, time.time(), error=e, billed=False)
        if any(c is None for c in conts.values()):
            raise _NoScoring("the chat template does not extend its generation prompt with the answer")
        prompts, spans = score.plan(r, prefixes + nulls, conts, score.scored_lengths(r, conts, end))
        try:
            resp = await self.client.completions.create(model=r.model, prompt=prompts, max_tokens=1,
                                                        temperature=0, extra_body={"prompt_logprobs": 0})
        except openai.APIError as e:
            return Completion("", Usage(), started, time.time(), error=self._translate(e), billed=False)
        ended = time.time()
        try:
            outs = sorted(resp.choices, key=lambda ch: ch.index)
            per = [score.token_logprobs(p, ch.prompt_logprobs) for p, ch in zip(prompts, outs)]
        except (AttributeError, TypeError, ValueError, KeyError) as e:
            raise _NoScoring("the server returned no prompt_logprobs") from e
        per_order = score.order_logprobs(r.choices, spans, per)
        if nulls:
            self._nulls[null_key] = per_order[len(prefixes):]
        label, probs = score.pick(r.choices, per_order[:len(prefixes)], self._nulls[null_key])
        usage = Usage(input_tokens=sum(len(p) for p in prefixes), output_tokens=len(conts[label]))
        c = Completion(label, usage, started, ended, model=getattr(resp, "model", None) or r.model,
                       choice_probs=probs)
        c.extra.update(choice_logprobs=per_order[0], orders=len(prefixes), finish_reason="choice",
                       scored_prompt_tokens=getattr(resp.usage, "prompt_tokens", None))
        return c

    # ---- saturation metrics -------------------------------------------------
    def _set_state(self, state: str) -> None:
        self.metrics_state, self.metrics_read_at = state, time.time()
        _SEEN[self.root] = (state, self.metrics_read_at)

    def _note_absent(self, why: str) -> None:
        self._set_state("absent")
        if self.metrics_note is None:
            self.metrics_note = f"{NO_METRICS_NOTE} ({public_endpoint(self.root)}/metrics: {why})"
            print(f"hybridnb: {self.metrics_note}", file=sys.stderr)

    async def metrics(self) -> dict[str, Any] | None:
        """Saturation metrics from ``/metrics``; None (and one note) when the server has none."""
        if self.metrics_state == "absent":
            return None
        import httpx

        try:
            r = await self.http.get(self.root + "/metrics")
        except httpx.HTTPError as e:
            self._set_state("unreachable")
            self.metrics_error = redact(f"{type(e).__name__}: {e}", [self._api_key])
            return None
        if r.status_code != 200:
            self._note_absent(f"HTTP {r.status_code}")
            return None
        summary = _vllm_metrics.summarize(_vllm_metrics.parse(r.text))
        if all(summary[k] is None for k in ("requests_running", "requests_waiting", "kv_cache_usage")):
            self._note_absent("no vLLM metrics in it")
            return None
        self._set_state("yes")
        now = time.monotonic()
        out = {k: v for k, v in summary.items() if not k.startswith("_")}
        if self._prev is not None:
            out.update(_vllm_metrics.window(self._prev[1], summary, now - self._prev[0]))
        self._prev = (now, summary)
        out["scraped_at"] = time.time()
        return out

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await super().aclose()
