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

:func:`poll_metrics` pushes metrics into the operator signals while a batch runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from typing import Any, AsyncIterator, Sequence

from .. import errors
from ..types import Completion, Request
from . import _vllm_metrics
from ._openai import OpenAIBackend, public_endpoint, redact

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


class VLLMServerBackend(OpenAIBackend):
    """Chat completions against ``vllm serve`` at ``HYBRIDNB_LOCAL_BASE_URL``, priced by GPU time."""

    name = "vllm"
    pricing = "compute"

    def __init__(self, base_url: str, api_key: str | None = None, *, metrics_timeout_s: float = 2.0,
                 **kw: Any):
        if not base_url:
            raise errors.ConfigError("the vllm backend needs the server's URL: set HYBRIDNB_LOCAL_BASE_URL "
                                     "(e.g. http://127.0.0.1:8000/v1)")
        super().__init__(base_url, api_key, structured="vllm", **kw)
        self._discovered: str | None = None
        self.metrics_timeout_s = metrics_timeout_s
        self.server_version: str | None = None
        self.legacy_guided = False
        self.metrics_state = "unknown"  # "yes" | "absent" | "unreachable"
        self.metrics_note: str | None = None
        self._probed = False
        self._probe_lock: asyncio.Lock | None = None
        self._http = None
        self._prev: tuple[float, dict[str, Any]] | None = None

    @classmethod
    def from_route(cls, rs: Any, settings: Any) -> "VLLMServerBackend":
        return cls(rs.base_url, rs.api_key, timeout_s=settings["timeout_s"],
                   max_retries=settings["max_retries"], max_concurrency=settings["concurrency"])

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(server_version=self.server_version, metrics=self.metrics_state,
                 structured="guided_*" if self.legacy_guided else "structured_outputs")
        if self.metrics_note:
            d["note"] = self.metrics_note
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

    # ---- saturation metrics -------------------------------------------------
    def _note_absent(self, why: str) -> None:
        self.metrics_state = "absent"
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
            self.metrics_state = "unreachable"
            self.metrics_error = redact(f"{type(e).__name__}: {e}", [self._api_key])
            return None
        if r.status_code != 200:
            self._note_absent(f"HTTP {r.status_code}")
            return None
        summary = _vllm_metrics.summarize(_vllm_metrics.parse(r.text))
        if all(summary[k] is None for k in ("requests_running", "requests_waiting", "kv_cache_usage")):
            self._note_absent("no vLLM metrics in it")
            return None
        self.metrics_state = "yes"
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


@contextlib.asynccontextmanager
async def poll_metrics(backend: Any, route: str, backend_name: str | None = None,
                       interval_s: float = 1.0) -> AsyncIterator[None]:
    """While the block runs, push ``backend.metrics()`` into the signals tracker every ``interval_s``.

    Works for any Backend; stops polling (after one push of None) when the
    backend has no metrics.  One last scrape lands when the block ends.
    """
    from ..spend.signals import tracker

    name = backend_name or backend.name

    async def scrape() -> bool:
        try:
            m = await backend.metrics()
        except Exception:  # a metrics hiccup must never break a batch
            m = None
        tracker.set_backend_metrics(route, name, m)
        return m is not None or getattr(backend, "metrics_state", "") == "unreachable"

    async def loop() -> None:
        while await scrape():
            await asyncio.sleep(interval_s)

    task = asyncio.ensure_future(loop())
    try:
        yield
    finally:
        alive = not task.done()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        if alive:
            await scrape()
