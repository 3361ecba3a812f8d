"""The bulk transport for ``hybridnb.map`` on OpenAI-protocol targets.

:class:`BulkBackend` wraps the route's :class:`~hybridnb.backends._openai.OpenAIBackend`
(OpenAI, ``vllm serve``, any compatible server) and sends a batch's rows over
the lean keep-alive pool of :mod:`hybridnb.backends._fast_http` instead of
the SDK.  It takes rows from the dispatcher in chunks (``batch_size``) so the
dispatcher settles a chunk at a time (one ledger write and one cache
transaction per chunk, not per row); several chunks overlap and share one
semaphore, so the number of requests in flight stays at ``concurrency``.

Semantics kept from the SDK path: the same request body, retries with the
SDK's backoff and ``Retry-After``, and errors built by the SDK's own error
factory and translated by the wrapped backend (same classes, same messages,
credentials redacted).  Ctrl-C raises :class:`ChunkCancelled`, carrying the
rows of the chunk that had already finished, so the dispatcher can ledger
and cache them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from typing import Any, Sequence

from .. import errors
from ..backends import _fast_http as fh
from ..backends import _openai as _oa
from ..backends._base import Backend
from ..backends._openai import OpenAIBackend, public_endpoint, redact
from ..types import Completion, Request, Usage

#: rows per dispatcher chunk (one ledger write + one cache transaction each)
CHUNK = 32


class ChunkCancelled(asyncio.CancelledError):
    """Cancelled mid-chunk; ``partial[k]`` is row k's Completion when it had finished, else None."""

    def __init__(self, partial: list[Completion | None]):
        super().__init__()
        self.partial = partial


class BulkBackend(Backend):
    """An OpenAI-protocol backend's bulk twin: same endpoint, key, model and errors; faster client."""

    def __init__(self, inner: OpenAIBackend, concurrency: int, chunk: int = CHUNK):
        self.inner = inner
        self.name = inner.name
        self.pricing = inner.pricing
        self.concurrency = max(1, int(concurrency))
        self.batch_size = max(1, min(chunk, self.concurrency))
        # enough overlapping chunks that one slow row never idles the window
        self.max_concurrency = 2 * math.ceil(self.concurrency / self.batch_size) + 1
        self.base_url = inner.base_url or "https://api.openai.com/v1"
        self._sem: asyncio.Semaphore | None = None
        self._pool: fh.Pool | None = None

    def __repr__(self) -> str:
        return f"BulkBackend({self.inner!r}, concurrency={self.concurrency})"

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "transport": "bulk (keep-alive HTTP/1.1)"}

    async def metrics(self) -> dict[str, Any] | None:
        return await self.inner.metrics()

    async def prepare(self) -> float | None:
        return await self.inner.prepare()

    @property
    def metrics_state(self) -> str:
        return getattr(self.inner, "metrics_state", "")

    @property
    def pool(self) -> fh.Pool:
        if self._pool is None:
            from .. import __version__

            key = self.inner._api_key or "EMPTY"
            self._pool = fh.Pool(self.base_url, {"Authorization": f"Bearer {key}",
                                                 "User-Agent": f"hybridnb/{__version__} bulk"},
                                 timeout_s=self.inner.timeout_s, max_idle=self.concurrency)
        return self._pool

    # ---- a chunk ------------------------------------------------------------
    async def complete(self, requests: Sequence[Request]) -> list[Completion]:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        probe = getattr(self.inner, "probe", None)
        if probe is not None:
            await probe()  # vLLM: pick the structured-outputs form once
        out: list[Completion | None] = [None] * len(requests)
        sem = self._sem

        async def one(k: int, r: Request) -> None:
            async with sem:
                out[k] = await self._one(r)

        tasks = [asyncio.ensure_future(one(k, r)) for k, r in enumerate(requests)]
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise ChunkCancelled(out) from None
        return out  # type: ignore[return-value]

    def encode(self, r: Request) -> bytes:
        """The body the SDK would send (``extra_body`` merged at the top level), serialised once."""
        body = self.inner._body(r)
        extra = body.pop("extra_body", None)
        if extra:
            body.update(extra)
        return fh.dumps(body)

    async def _one(self, r: Request) -> Completion:
        """One row, retried as :meth:`OpenAIBackend._send_with_retries` does: 408/409/429/5xx (Retry-After
        honoured) and connections that never reached the server; a timeout or a reply cut off mid-body is
        not retried (the provider may have billed it) and counts as ``maybe_billed``."""
        body = self.encode(r)
        started = time.time()
        facts: dict[str, Any] = {"attempts": 0, "maybe_billed": 0}
        inner = self.inner
        while True:
            facts["attempts"] += 1
            retries_left = facts["attempts"] <= inner.max_retries
            try:
                resp = await self.pool.post("/chat/completions", body)
            except fh.TransportError as e:
                if e.never_sent and retries_left:
                    await asyncio.sleep(_oa.retry_delay(facts["attempts"], {}))
                    continue
                facts["maybe_billed"] += 0 if e.never_sent else 1
                return self._failed(started, self._error(None, e, facts["attempts"]), facts)
            if resp.status == 200:
                return self._parse(r, resp, started, facts)
            if _oa._should_retry(resp.status, resp.headers) and retries_left:
                await asyncio.sleep(_oa.retry_delay(facts["attempts"], resp.headers))
                continue
            return self._failed(started, self._error(resp, None, facts["attempts"]), facts)

    @staticmethod
    def _failed(started: float, err: errors.BackendError, facts: dict[str, Any]) -> Completion:
        return Completion("", Usage(), started, time.time(), error=err, billed=False, extra=facts)

    def _parse(self, r: Request, resp: fh.HTTPResponse, started: float, facts: dict[str, Any]) -> Completion:
        try:
            data = fh.loads(resp.body)
        except ValueError as e:  # garbage on a 200: generated, maybe billed (as on the SDK path)
            facts["maybe_billed"] += 1
            err = errors.MalformedResponse(f"malformed response from {public_endpoint(self.base_url)}: "
                                           f"{type(e).__name__}: {redact(str(e), [self.inner._api_key])[:200]}")
            return Completion("", Usage(), started, time.time(), error=err, billed=True, extra=facts)
        return parse_chat(r, data, started, time.time(), self.base_url, facts)

    def _error(self, resp: fh.HTTPResponse | None, failure: Exception | None, attempts: int) -> errors.BackendError:
        """The hybridnb error the SDK path would give: the SDK's exception, translated by the backend."""
        try:
            sdk_err = sdk_exception(self.inner, self.base_url, resp, failure)
        except Exception as e:  # an SDK without these internals: our own words, same classes
            status = resp.status if resp is not None else None
            err = errors.BackendError(redact(f"{public_endpoint(self.base_url)} failed "
                                             f"(HTTP {status}): {type(e).__name__}", [self.inner._api_key]))
            return err
        return self.inner._translate(sdk_err, attempts)

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def parse_chat(r: Request, data: Any, started: float, ended: float, base_url: str | None,
               facts: dict[str, Any] | None = None) -> Completion:
    """A chat.completion JSON object → a validated Completion, as :meth:`OpenAIBackend._one` builds it:
    usage-less replies counted locally (``usage_estimated``), usage billed even without choices."""
    facts = dict(facts or {})
    u = data.get("usage") if isinstance(data, dict) else None
    try:
        details = (u or {}).get("prompt_tokens_details") or {}
        usage = Usage(input_tokens=int(u.get("prompt_tokens") or 0),
                      output_tokens=int(u.get("completion_tokens") or 0),
                      cached_input_tokens=int(details.get("cached_tokens") or 0))
        estimated = False
    except (AttributeError, TypeError, ValueError):
        usage, estimated = Usage(), True
    facts["usage_estimated"] = estimated
    try:
        text = data["choices"][0]["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        err = errors.MalformedResponse(f"malformed response from {public_endpoint(base_url)}: "
                                       "no choices/message in the reply (its usage is billed)")
        return Completion("", usage, started, ended, error=err, billed=True, extra=facts)
    if not usage.total_tokens or estimated:
        usage, facts["usage_estimated"] = OpenAIBackend._estimated_usage(r, text), True
    c = Completion(text, usage, started, ended, model=data.get("model") or r.model, extra=facts)
    return OpenAIBackend._validate(r, c)


def sdk_exception(inner: OpenAIBackend, base_url: str, resp: fh.HTTPResponse | None,
                  failure: Exception | None) -> Exception:
    """The exception the ``openai`` SDK raises for this outcome (built by the SDK's own factory)."""
    import sys

    import openai

    httpx_mod = sys.modules.get("httpx2") or __import__("httpx")
    request = httpx_mod.Request("POST", base_url.rstrip("/") + "/chat/completions")
    if resp is None:
        if isinstance(failure, fh.TransportTimeout):
            return openai.APITimeoutError(request=request)
        return openai.APIConnectionError(request=request)
    response = httpx_mod.Response(resp.status, headers=resp.headers, content=resp.body, request=request)
    return inner.client._make_status_error_from_response(response)


_bulk: dict[tuple[int, int], BulkBackend] = {}


def bulk_target(target: Any, concurrency: int | None = None) -> Any:
    """``target`` with its backend swapped for the bulk twin when that is possible, else ``target``.

    Possible: an OpenAI-protocol backend (not a subclass that overrides how calls
    are made) and no HTTP proxy in the environment (the bulk client does not speak to proxies).
    """
    inner = target.backend
    if not isinstance(inner, OpenAIBackend) or type(inner)._one is not OpenAIBackend._one:
        return target
    if fh.proxy_configured():
        return target
    conc = int(concurrency or target.settings["concurrency"] or 1)
    key = (id(inner), conc)
    b = _bulk.get(key)
    if b is None or b.inner is not inner:
        b = _bulk[key] = BulkBackend(inner, conc)
    return dataclasses.replace(target, backend=b)
