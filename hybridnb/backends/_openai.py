"""OpenAI-compatible chat-completions backend (OpenAI, vLLM serve, llama.cpp,
Ollama, OpenRouter, …) on the official ``openai`` SDK's async client.

Retries (429 honouring Retry-After, 5xx, connection errors, timeouts) are the
SDK's own bounded exponential backoff with jitter, so a retried call is still
one call: it reaches the ledger once.  HTTP errors are translated into
hybridnb's error types here, at the boundary, with the cause chained and any
credential scrubbed from the message.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

from .. import errors
from ..types import Completion, Request, Usage
from ._base import Backend

_KEYLIKE = re.compile(r"\b(sk|key|tok)-[A-Za-z0-9_\-\*\.]{6,}")


def redact(text: str, secrets: Sequence[str | None] = ()) -> str:
    """Remove credentials (given secrets and key-like strings) from ``text``."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return _KEYLIKE.sub("***", text)


def public_endpoint(base_url: str | None) -> str:
    """``base_url`` without user:password or query string (safe to log/cache)."""
    if not base_url:
        return "https://api.openai.com/v1"
    p = urlsplit(base_url)
    host = p.hostname or ""
    if p.port:
        host = f"{host}:{p.port}"
    return urlunsplit((p.scheme, host, p.path.rstrip("/"), "", ""))


def _choice_schema(choices: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "label",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"label": {"type": "string", "enum": list(choices)}},
                "required": ["label"],
                "additionalProperties": False,
            },
        },
    }


def match_choice(text: str, choices: Sequence[str]) -> str | None:
    """The choice ``text`` names: exact, case-insensitive, JSON ``label``, or sole mention."""
    t = text.strip()
    if t.startswith("{"):
        try:
            t = str(json.loads(t).get("label", t))
        except (ValueError, AttributeError):
            pass
    t = t.strip().strip("\"'`.").strip()
    for c in choices:
        if t == c:
            return c
    low = {c.lower(): c for c in choices}
    if t.lower() in low:
        return low[t.lower()]
    found = [c for c in choices if re.search(rf"\b{re.escape(c.lower())}\b", t.lower())]
    return found[0] if len(found) == 1 else None


class OpenAIBackend(Backend):
    """Chat completions over HTTP with the official SDK.

    ``structured`` picks how ``choices``/``json_schema`` are enforced by the
    server: ``"openai"`` (``response_format`` JSON schema), ``"vllm"``
    (``structured_outputs`` in the body), or ``"auto"`` (OpenAI's own endpoint
    → openai, anything else → vllm).  Answers are validated either way.
    """

    name = "openai"
    pricing = "tokens"

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        max_concurrency: int = 16,
        structured: str = "auto",
    ):
        self.base_url = base_url
        self._api_key = api_key
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_concurrency = max_concurrency
        if structured == "auto":
            structured = "openai" if not base_url or "api.openai.com" in base_url else "vllm"
        self.structured = structured
        self._client = None

    @classmethod
    def from_route(cls, rs: Any, settings: Any) -> "OpenAIBackend":
        return cls(
            base_url=rs.base_url,
            api_key=rs.api_key,
            timeout_s=settings["timeout_s"],
            max_retries=settings["max_retries"],
            max_concurrency=settings["concurrency"],
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(endpoint={public_endpoint(self.base_url)!r})"

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "endpoint": public_endpoint(self.base_url),
                "structured": self.structured, "max_concurrency": self.max_concurrency}

    @property
    def client(self):
        if self._client is None:
            import openai

            self._client = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=self._api_key or "EMPTY",
                timeout=self.timeout_s,
                max_retries=self.max_retries,
            )
        return self._client

    async def complete(self, requests: Sequence[Request]) -> list[Completion]:
        if len(requests) == 1:
            return [await self._one(requests[0])]
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    def _body(self, r: Request) -> dict[str, Any]:
        messages = []
        if r.system:
            messages.append({"role": "system", "content": r.system})
        messages.append({"role": "user", "content": r.prompt})
        body: dict[str, Any] = {"model": r.model, "messages": messages}
        if r.temperature is not None:
            body["temperature"] = r.temperature
        if r.max_tokens:
            body["max_tokens"] = r.max_tokens
        if r.choices:
            if self.structured == "openai":
                body["response_format"] = _choice_schema(r.choices)
            else:
                body["extra_body"] = {"structured_outputs": {"choice": list(r.choices)}}
        elif r.json_schema:
            fmt = {"type": "json_schema",
                   "json_schema": {"name": "answer", "schema": dict(r.json_schema)}}
            if self.structured == "openai":
                body["response_format"] = fmt
            else:
                body["extra_body"] = {"structured_outputs": {"json": dict(r.json_schema)}}
        return body

    async def _one(self, r: Request) -> Completion:
        import openai

        started = time.time()
        try:
            resp = await self.client.chat.completions.create(**self._body(r))
        except openai.APIError as e:
            return Completion("", Usage(), started, time.time(), error=self._translate(e), billed=False)
        except Exception as e:  # garbage the SDK could not parse
            err = errors.MalformedResponse(f"malformed response from {public_endpoint(self.base_url)}: "
                                           f"{redact(str(e), [self._api_key])}")
            err.__cause__ = e
            return Completion("", Usage(), started, time.time(), error=err, billed=True)
        ended = time.time()
        try:
            text = resp.choices[0].message.content or ""
            u = resp.usage
            details = getattr(u, "prompt_tokens_details", None) if u else None
            usage = Usage(
                input_tokens=int(u.prompt_tokens or 0) if u else 0,
                output_tokens=int(u.completion_tokens or 0) if u else 0,
                cached_input_tokens=int(getattr(details, "cached_tokens", 0) or 0) if details else 0,
            )
        except (AttributeError, IndexError, TypeError, ValueError) as e:
            err = errors.MalformedResponse(
                f"malformed response from {public_endpoint(self.base_url)}: no choices/message in the reply")
            err.__cause__ = e
            return Completion("", Usage(), started, ended, error=err, billed=True)
        model = getattr(resp, "model", None) or r.model
        return self._validate(r, Completion(text, usage, started, ended, model=model))

    @staticmethod
    def _validate(r: Request, c: Completion) -> Completion:
        if r.choices:
            label = match_choice(c.text, r.choices)
            if label is None:
                c.error = errors.InvalidAnswer(
                    f"answer {c.text[:60]!r} is not one of --choices {', '.join(r.choices)}")
            else:
                c.extra["raw"] = c.text
                c.text = label
        elif r.json_schema:
            try:
                c.extra["json"] = json.loads(c.text)
            except ValueError:
                c.error = errors.InvalidAnswer(f"answer is not valid JSON: {c.text[:60]!r}")
        return c

    def _translate(self, e: Exception) -> errors.BackendError:
        import openai

        where = public_endpoint(self.base_url)
        msg = redact(str(e), [self._api_key])
        status = getattr(e, "status_code", None)
        if isinstance(e, openai.APITimeoutError):
            err = errors.BackendTimeout(f"no answer from {where} within {self.timeout_s:g} s "
                                        f"(after {self.max_retries} retries)")
        elif isinstance(e, openai.APIConnectionError):
            err = errors.BackendUnavailable(f"cannot reach {where} (after {self.max_retries} retries)")
        elif status in (401, 403):
            err = errors.AuthenticationError(f"{where} refused the API key (HTTP {status}); "
                                             "check HYBRIDNB_REASON_API_KEY / OPENAI_API_KEY")
        elif status == 404:
            err = errors.NotFoundError(f"{where} answered 404: unknown model or path ({msg})")
        elif status == 429:
            err = errors.RateLimited(f"{where} is rate limiting (HTTP 429 after {self.max_retries} retries)")
        elif status is not None and status >= 500:
            err = errors.ServerError(f"{where} failed with HTTP {status} after {self.max_retries} retries")
        elif status is not None:
            err = errors.BackendError(f"{where} rejected the request (HTTP {status}): {msg}")
        else:
            err = errors.MalformedResponse(f"malformed response from {where}: {msg}")
        err.__cause__ = e
        return err

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

