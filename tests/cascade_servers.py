"""Two loopback OpenAI-protocol servers for the `%%auto` cascade tests and benchmarks.

Prompts name an item (``#1234``); both servers derive the item's true label and
their own behaviour from seeded hashes of its number, so a test can recompute
every answer, confidence and cost independently:

* the *weak* local model reports a calibrated confidence ``weak_conf(i)`` (75 % of
  items in [0.9, 1), the rest in [0.2, 0.6)), is right with exactly that chance
  (``weak_correct``), and returns the confidence as chat-completions
  ``logprobs`` (top_logprobs over the labels) when asked;
* the *strong* reasoning model is right on 95 % of items and returns no logprobs.

Free text (no choices): the weak model's greedy answer is ``item <i> is <label>``;
at temperature > 0 it says the same when it is confident (≥ 0.9), something else otherwise.
``ScoredOpenAIBackend`` is an OpenAIBackend that asks for logprobs and turns them into
``Completion.choice_probs``; tests register it with ``hybridnb.backends.register``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LABELS = ["billing", "delivery", "product", "account"]
_ITEM = re.compile(r"#(\d+)")


def u(i: int, salt: str) -> float:
    """A uniform number in [0, 1) fixed by (item, salt)."""
    return int(hashlib.sha256(f"{salt}:{i}".encode()).hexdigest()[:12], 16) / 16 ** 12


def truth(i: int) -> str:
    return LABELS[int(u(i, "truth") * len(LABELS))]


def _other(i: int, salt: str) -> str:
    k = LABELS.index(truth(i))
    return LABELS[(k + 1 + int(u(i, salt) * (len(LABELS) - 1))) % len(LABELS)]


def weak_conf(i: int) -> float:
    c = u(i, "c")
    return 0.9 + 0.0999 * c if u(i, "group") < 0.75 else 0.2 + 0.4 * c


def weak_correct(i: int) -> bool:
    return u(i, "weak") < weak_conf(i)


def weak_answer(i: int) -> str:
    return truth(i) if weak_correct(i) else _other(i, "weak-wrong")


def strong_answer(i: int) -> str:
    return truth(i) if u(i, "strong") < 0.95 else _other(i, "strong-wrong")


def prompt_tokens(prompt: str) -> int:
    """What both servers bill as input tokens for a user prompt."""
    return len(prompt.split()) + 3


def _choices(body: dict) -> list[str] | None:
    so = body.get("structured_outputs") or {}
    if so.get("choice"):
        return list(so["choice"])
    rf = body.get("response_format") or {}
    enum = (((rf.get("json_schema") or {}).get("schema") or {}).get("properties", {}).get("label") or {}).get("enum")
    return list(enum) if enum else None


def _answer(strong: bool, body: dict, prompt: str) -> tuple[str, dict | None]:
    m = _ITEM.search(prompt)
    i = int(m.group(1)) if m else 0
    choices = _choices(body)
    if choices is None:
        label = strong_answer(i) if strong else weak_answer(i)
        if not strong and (body.get("temperature") or 0) > 0 and weak_conf(i) < 0.9:
            return f"perhaps {_other(i, 'sample')} or something else entirely", None
        return f"item {i} is {label}", None
    label = strong_answer(i) if strong else weak_answer(i)
    if strong or not body.get("logprobs"):
        return label, None
    c = weak_conf(i)
    rest = (1 - c) / (len(choices) - 1)
    top = [{"token": lab, "logprob": math.log(c if lab == label else rest), "bytes": None} for lab in choices]
    return label, {"content": [{"token": label, "logprob": math.log(c), "bytes": None,
                                "top_logprobs": top[: int(body.get("top_logprobs") or 0)]}]}


def make_handler(strong: bool, log: list):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(n) or b"{}")
            prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user")
            log.append(body.get("model"))
            text, logprobs = _answer(strong, body, prompt)
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            if logprobs is not None:
                choice["logprobs"] = logprobs
            pt = prompt_tokens(prompt)
            reply = {"id": "c", "object": "chat.completion", "created": int(time.time()),
                     "model": body.get("model"), "choices": [choice],
                     "usage": {"prompt_tokens": pt, "completion_tokens": len(text.split()),
                               "total_tokens": pt + len(text.split())}}
            payload = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


class CascadeServer:
    """A strong (reasoning) or weak (local) model on 127.0.0.1, in its own process
    (the server's work then runs beside the client's, as a real endpoint's would)."""

    def __init__(self, strong: bool):
        self.strong = strong
        self.proc = None
        self.base_url = ""

    def start(self) -> "CascadeServer":
        import subprocess
        import sys

        self.proc = subprocess.Popen([sys.executable, __file__, "--strong" if self.strong else "--weak"],
                                     stdout=subprocess.PIPE, text=True)
        port = int(self.proc.stdout.readline().strip())
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


def scored_backend_class():
    """An OpenAIBackend that asks for logprobs and fills ``Completion.choice_probs``."""
    from hybridnb.backends._openai import OpenAIBackend, match_choice
    from hybridnb.types import Completion, Usage

    class ScoredOpenAIBackend(OpenAIBackend):
        name = "scored-openai"

        def _body(self, r):
            body = super()._body(r)
            if r.choices:
                body["logprobs"], body["top_logprobs"] = True, min(20, len(r.choices))
            return body

        async def _one(self, r):
            started = time.time()
            resp = await self.client.chat.completions.create(**self._body(r))
            text = resp.choices[0].message.content or ""
            usage = Usage(resp.usage.prompt_tokens, resp.usage.completion_tokens)
            probs = None
            lp = resp.choices[0].logprobs
            if r.choices and lp and lp.content:
                probs = {}
                for t in lp.content[0].top_logprobs:
                    label = match_choice(t.token, r.choices)
                    if label is not None:
                        probs[label] = probs.get(label, 0.0) + math.exp(t.logprob)
                total = sum(probs.values()) or 1.0
                probs = {k: v / total for k, v in probs.items()}
            c = Completion(text, usage, started, time.time(), model=r.model, choice_probs=probs or None)
            return self._validate(r, c)

    return ScoredOpenAIBackend


if __name__ == "__main__":
    import sys

    httpd = _Server(("127.0.0.1", 0), make_handler(sys.argv[1:] == ["--strong"], []))
    print(httpd.server_address[1], flush=True)
    httpd.serve_forever()
