"""OpenAI-compatible chat-completions backend (OpenAI, vLLM serve, llama.cpp,
Ollama, OpenRouter, …) on the official ``openai`` SDK's async client.

Retries (429 honouring Retry-After, 5xx, connections that never reached the
server) are made here with bounded exponential backoff and jitter, so a
retried call is still one call on one ledger row, with its ``attempts``
counted.  Timeouts and replies cut off mid-body are not retried (the provider
may have billed them) and are counted as ``maybe_billed``.  A reply without
``usage`` gets its tokens counted locally (flagged ``usage_estimated``).  HTTP
errors are translated into hybridnb's error types here, at the boundary, with
the provider's text kept but every credential scrubbed; the raw SDK error is
not chained (its body may echo the key).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

from .. import errors
from ..core.constraints import chat_messages
from ..types import Completion, Request, Usage
from . import _logprobs
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


def retry_delay(attempt: int, headers) -> float:
    """Seconds before retry ``attempt``: the server's Retry-After (capped at 60 s), else
    exponential backoff (0.5 s, 1 s, 2 s … capped at 8 s) with ±25 % jitter."""
    raw = (headers or {}).get("retry-after") or (headers or {}).get("Retry-After")
    if raw:
        try:
            return min(60.0, max(0.0, float(raw)))
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                return min(60.0, max(0.0, parsedate_to_datetime(raw).timestamp() - time.time()))
            except (TypeError, ValueError):
                pass
    return min(8.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.75, 1.25)


def _should_retry(status: int, headers) -> bool:
    """The SDK's rule: the server's ``x-should-retry`` header, else 408, 409, 429 and 5xx."""
    hint = (headers or {}).get("x-should-retry")
    if hint in ("true", "false"):
        return hint == "true"
    return status in (408, 409, 429) or status >= 500


def _never_sent(e: BaseException) -> bool:
    """Whether a connection error came before any reply: safe to retry, nothing generated.

    A connection that failed to open, or that the server dropped without a byte of reply
    (a stale keep-alive connection), is retried; a reply cut off mid-body is not (it was
    generated, and may be billed)."""
    cause = e.__cause__ or e.__context__
    name = type(cause).__name__  # by name: the SDK may ship its own copy of httpx
    if name in ("ConnectError", "ConnectTimeout"):
        return True
    text = str(cause).lower()
    return name in ("RemoteProtocolError", "ReadError") and "without sending a response" in text


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
    #: ask for logprobs with --choices (label probabilities where the server offers them)
    choice_logprobs = True

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
                max_retries=0,  # retried here, so every attempt is counted on its ledger row
            )
        return self._client

    async def complete(self, requests: Sequence[Request]) -> list[Completion]:
        if len(requests) == 1:
            return [await self._one(requests[0])]
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    def _body(self, r: Request) -> dict[str, Any]:
        messages = chat_messages(r.prompt, r.choices, r.system)
        body: dict[str, Any] = {"model": r.model, "messages": messages}
        if r.temperature is not None:
            body["temperature"] = r.temperature
        if r.max_tokens:
            body["max_tokens"] = r.max_tokens
        if r.choices:
            if self.choice_logprobs:  # label probabilities from the alternatives at the label
                body.update(logprobs=True, top_logprobs=_logprobs.TOP_LOGPROBS)
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
        started = time.time()
        resp, err, facts = await self._send_with_retries(r)
        ended = time.time()
        if err is not None:
            billed = isinstance(err, errors.MalformedResponse)
            return Completion("", Usage(), started, ended, error=err, billed=billed, extra=facts)
        usage, estimated = self._usage(r, resp)
        facts["usage_estimated"] = estimated
        try:
            text = resp.choices[0].message.content or ""
        except (AttributeError, IndexError, TypeError, ValueError):
            err = errors.MalformedResponse(f"malformed response from {public_endpoint(self.base_url)}: "
                                           "no choices/message in the reply (its usage is billed)")
            return Completion("", usage, started, ended, error=err, billed=True, extra=facts)
        if not usage.total_tokens or estimated:
            usage, facts["usage_estimated"] = self._estimated_usage(r, text), True
        model = getattr(resp, "model", None) or r.model
        c = self._validate(r, Completion(text, usage, started, ended, model=model, extra=facts))
        if r.choices and c.error is None:  # None = probability unknown (no logprobs offered)
            lp = getattr(resp.choices[0], "logprobs", None)
            c.choice_probs = _logprobs.label_probs(text, c.text, r.choices, getattr(lp, "content", None))
        return c

    async def _send_with_retries(self, r: Request):
        """(reply, None, facts) or (None, error, facts); facts = attempts and maybe-billed attempts.

        429 and 5xx are retried (Retry-After honoured), and so is a connection that
        never reached the server.  A timeout or a reply cut off mid-body is *not*
        retried: the provider may have generated (and billed) it already.
        """
        import openai

        facts: dict[str, Any] = {"attempts": 0, "maybe_billed": 0}
        body = self._body(r)
        while True:
            facts["attempts"] += 1
            retries_left = facts["attempts"] <= self.max_retries
            try:
                return await self.client.chat.completions.create(**body), None, facts
            except openai.APIStatusError as e:
                if _should_retry(e.status_code, e.response.headers) and retries_left:
                    await asyncio.sleep(retry_delay(facts["attempts"], e.response.headers))
                    continue
                return None, self._translate(e, facts["attempts"]), facts
            except openai.APIConnectionError as e:  # includes APITimeoutError
                if _never_sent(e) and retries_left:
                    await asyncio.sleep(retry_delay(facts["attempts"], {}))
                    continue
                if not _never_sent(e):
                    facts["maybe_billed"] += 1
                return None, self._translate(e, facts["attempts"]), facts
            except Exception as e:  # garbage the SDK could not parse: generated, maybe billed
                facts["maybe_billed"] += 1
                return None, errors.MalformedResponse(
                    f"malformed response from {public_endpoint(self.base_url)}: "
                    f"{type(e).__name__}: {redact(str(e), [self._api_key])[:200]}"), facts

    @staticmethod
    def _usage(r: Request, resp: Any) -> tuple[Usage, bool]:
        """(usage the server reported, whether it reported none)."""
        u = getattr(resp, "usage", None)
        if u is None:
            return Usage(), True
        details = getattr(u, "prompt_tokens_details", None)
        try:
            return Usage(
                input_tokens=int(getattr(u, "prompt_tokens", 0) or 0),
                output_tokens=int(getattr(u, "completion_tokens", 0) or 0),
                cached_input_tokens=int(getattr(details, "cached_tokens", 0) or 0) if details else 0,
            ), False
        except (TypeError, ValueError):
            return Usage(), True

    @staticmethod
    def _estimated_usage(r: Request, text: str) -> Usage:
        """Tokens counted locally for a reply that came without usage."""
        from ..core.pricing import estimate_tokens

        prompt = (r.system or "") + "\n" + r.prompt
        return Usage(input_tokens=estimate_tokens(prompt, r.model), output_tokens=estimate_tokens(text, r.model))

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

    def _translate(self, e: Exception, attempts: int | None = None) -> errors.BackendError:
        """One hybridnb error for an SDK error, its text redacted; the raw SDK error (which may
        carry the key in its body) is deliberately *not* chained."""
        import openai

        where = public_endpoint(self.base_url)
        msg = redact(str(e), [self._api_key])[:300]
        status = getattr(e, "status_code", None)
        if attempts is None:  # a caller that retried on its own, up to the limit
            attempts = self.max_retries + 1
        tries = f"after {attempts - 1} retries" if attempts > 1 else "not retried"
        if isinstance(e, openai.APITimeoutError):
            err = errors.BackendTimeout(f"no answer from {where} within {self.timeout_s:g} s ({tries}: the "
                                        "provider may have billed the generation)")
        elif isinstance(e, openai.APIConnectionError):
            err = errors.BackendUnavailable(f"cannot reach {where} ({tries})")
        elif status in (401, 403):
            err = errors.AuthenticationError(f"{where} refused the API key (HTTP {status}): {msg}; "
                                             "check HYBRIDNB_REASON_API_KEY / OPENAI_API_KEY")
        elif status == 404:
            err = errors.NotFoundError(f"{where} answered 404: unknown model or path ({msg})")
        elif status == 429:
            err = errors.RateLimited(f"{where} is rate limiting (HTTP 429 {tries})")
        elif status is not None and status >= 500:
            err = errors.ServerError(f"{where} failed with HTTP {status} {tries}")
        elif status is not None:
            err = errors.BackendError(f"{where} rejected the request (HTTP {status}): {msg}")
        else:
            err = errors.MalformedResponse(f"malformed response from {where}: {msg}")
        err.__cause__ = None
        err.__suppress_context__ = True
        return err

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

