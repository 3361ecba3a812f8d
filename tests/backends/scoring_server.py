"""A real HTTP server on 127.0.0.1 with the vLLM endpoints label scoring uses:
``/tokenize`` (chat messages or a prompt) and ``/v1/completions`` with ``prompt_logprobs``.

Its "tokenizer" is one token per character (the code point) and its chat
template is ``<role>content</role>`` per message, ``<assistant>`` as generation
prompt.  Its "model" reads a hint from the user message (``hint: negative``):
inside the assistant turn each token of an answer equal to the hint (any casing)
has logprob ``-0.01``, of any other answer ``-0.5``; every other position ``-1``.
So the right label is known and its probability is near 1.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "fake-scorer"


def render(messages: list[dict], gen: bool) -> str:
    text = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
    return text + ("<assistant>" if gen else "")


def logprobs(ids: list[int]) -> list:
    text = "".join(chr(i) for i in ids)
    hint = re.search(r"hint: (\w+)", text)
    start = text.rfind("<assistant>") + len("<assistant>")
    answer = text[start:].split("</assistant>")[0]
    good = hint is not None and answer.lower() == hint.group(1).lower()
    out: list = [None]
    for j in range(1, len(ids)):
        lp = (-0.01 if good else -0.5) if j >= start else -1.0
        out.append({str(ids[j]): {"logprob": lp, "rank": 1, "decoded_token": chr(ids[j])}})
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    log: list

    def log_message(self, *args) -> None:
        pass

    def _json(self, obj, status: int = 200) -> None:
        payload = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        if self.path.startswith("/v1/models"):
            self._json({"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        elif self.path == "/version":
            self._json({"version": "0.32.0"})
        else:
            self._json({"error": "not found"}, 404)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        self.log.append({"path": self.path, "body": body})
        if self.path == "/tokenize":
            text = (render(body["messages"], body.get("add_generation_prompt", True)) if "messages" in body
                    else body["prompt"])
            self._json({"count": len(text), "max_model_len": 4096, "tokens": [ord(c) for c in text]})
        elif self.path == "/v1/completions":
            prompts = body["prompt"]
            choices = [{"index": i, "text": " ", "logprobs": None, "finish_reason": "length",
                        "prompt_logprobs": logprobs(p)} for i, p in enumerate(prompts)]
            n_in = sum(len(p) for p in prompts)
            self._json({"id": "cmpl-1", "object": "text_completion", "created": 0, "model": MODEL,
                        "choices": choices, "usage": {"prompt_tokens": n_in, "completion_tokens": len(prompts),
                                                      "total_tokens": n_in + len(prompts)}})
        else:
            self._json({"error": "not found"}, 404)


class ScoringServer:
    def __init__(self) -> None:
        self.log: list = []
        handler = type("H", (Handler,), {"log": self.log})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "ScoringServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
