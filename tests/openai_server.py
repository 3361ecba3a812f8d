"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions
wire protocol (usage included), for tests and benchmarks.

It answers deterministically and can be scripted over HTTP, so it works the
same in-process (a thread) or as a subprocess (``python tests/openai_server.py``):

* ``POST /_script`` ``{"delay_s": 0.02, "queue": [{"status": 429, "retry_after": 0.05}, {"garbage": true}], "metrics": {...}}``
  sets the per-request delay and a queue of scripted replies consumed one per
  request (status, garbage body, hang seconds, ``content``: the answer's text);
* ``GET /_log`` → every chat request seen (path, auth header present, body);
* ``POST /_reset`` clears log, queue and delay;
* ``GET /metrics`` → vLLM-style Prometheus text when ``metrics`` was scripted, else 404;
* ``GET /v1/models`` → the served model ids.

Answers: with ``structured_outputs.choice`` (vLLM) or a ``response_format``
enum (OpenAI) it names the first choice mentioned in the prompt (else the
first choice); with a JSON schema it returns an object with the schema's
properties filled; otherwise ``"answer: <first words of the prompt>"``.
Token counts are whitespace-word counts, so tests can predict them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODELS = ["gpt-4o-mini", "test-local-model"]


def words(text: str) -> int:
    return len(text.split())


def answer_for(body: dict) -> str:
    msgs = body.get("messages") or []
    prompt = " ".join(str(m.get("content", "")) for m in msgs if m.get("role") == "user")
    choices = None
    so = body.get("structured_outputs") or {}
    if so.get("choice"):
        choices = list(so["choice"])
    elif body.get("guided_choice"):
        choices = list(body["guided_choice"])
    rf = body.get("response_format") or {}
    schema = (rf.get("json_schema") or {}).get("schema") if rf.get("type") == "json_schema" else None
    schema = schema or so.get("json")
    if choices is None and schema:
        enum = (schema.get("properties", {}).get("label") or {}).get("enum")
        if enum:
            label = _pick(enum, prompt)
            return json.dumps({"label": label})
        props = schema.get("properties", {})
        return json.dumps({k: _fill(v, prompt) for k, v in props.items()})
    if choices:
        return _pick(choices, prompt)
    head = " ".join(prompt.split()[:8])
    return f"answer: {head}"


def _pick(choices, prompt: str) -> str:
    if prompt.startswith("Answer with exactly one of:"):  # not the options hybridnb states
        prompt = prompt.split("\n\n", 1)[-1]
    low = prompt.lower()
    for c in choices:
        if re.search(rf"\b{re.escape(str(c).lower())}\b", low):
            return c
    return choices[0]


def _fill(spec: dict, prompt: str):
    t = spec.get("type")
    if spec.get("enum"):
        return _pick(spec["enum"], prompt)
    if t in ("integer", "number"):
        return words(prompt)
    if t == "boolean":
        return True
    return " ".join(prompt.split()[:3])


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.delay_s = 0.0
        self.queue: list[dict] = []
        self.log: list[dict] = []
        self.metrics: dict | None = None
        self.served = 0

    def next_script(self) -> dict:
        with self.lock:
            return self.queue.pop(0) if self.queue else {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    state: State  # set on the subclass per server

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, payload: bytes, ctype="application/json", headers=None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)

    def _json(self, status: int, obj, headers=None) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _body(self) -> dict:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return {}

    def do_GET(self) -> None:
        st = self.state
        if self.path == "/_log":
            with st.lock:
                self._json(200, {"requests": list(st.log), "served": st.served})
        elif self.path.startswith("/v1/models"):
            self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in MODELS]})
        elif self.path == "/metrics":
            if st.metrics is None:
                self._send(404, b"not found", "text/plain")
            else:
                self._send(200, prometheus_text(st.metrics).encode(), "text/plain; version=0.0.4")
        else:
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        st = self.state
        body = self._body()
        if self.path == "/_script":
            with st.lock:
                st.delay_s = float(body.get("delay_s", st.delay_s))
                st.queue.extend(body.get("queue", []))
                if "metrics" in body:
                    st.metrics = body["metrics"]
            self._json(200, {"ok": True})
            return
        if self.path == "/_reset":
            with st.lock:
                st.reset()
            self._json(200, {"ok": True})
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        script = st.next_script()
        with st.lock:
            st.log.append({"path": self.path, "auth": bool(self.headers.get("Authorization")),
                           "body": body, "script": script})
        if script.get("hang"):
            time.sleep(float(script["hang"]))
        elif st.delay_s:
            time.sleep(st.delay_s)
        status = int(script.get("status", 200))
        if status != 200:
            headers = {}
            if "retry_after" in script:
                headers["Retry-After"] = str(script["retry_after"])
            self._json(status, {"error": {"message": script.get("message", f"scripted HTTP {status}"),
                                          "type": "scripted", "code": status}}, headers)
            return
        if script.get("garbage"):
            self._send(200, b"<html>this is not json", "application/json")
            return
        if body.get("model") not in MODELS and not script.get("any_model"):
            self._json(404, {"error": {"message": f"The model `{body.get('model')}` does not exist",
                                       "type": "invalid_request_error", "code": "model_not_found"}})
            return
        text = script["content"] if "content" in script else answer_for(body)
        prompt_tokens = sum(words(str(m.get("content", ""))) for m in body.get("messages", [])) + 3
        reply = {
            "id": f"chatcmpl-{st.served}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": words(text),
                      "total_tokens": prompt_tokens + words(text),
                      "prompt_tokens_details": {"cached_tokens": int(script.get("cached_tokens", 0))}},
        }
        with st.lock:
            st.served += 1
        self._json(200, reply)


def prometheus_text(m: dict) -> str:
    """vLLM-style metrics text from {"num_requests_running": 3, ...}."""
    lines = []
    for k, v in m.items():
        name = f"vllm:{k}"
        lines.append(f"# TYPE {name} gauge")
        lines.append(f'{name}{{model_name="test-local-model"}} {v}')
    return "\n".join(lines) + "\n"


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog (5) drops bursts of new connections: 1 s SYN retries


class OpenAIServer:
    """Start/stop the server in a background thread; ``.base_url`` ends in /v1."""

    def __init__(self, port: int = 0) -> None:
        self.state = State()
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = _Server(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> "OpenAIServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def script(self, **kw) -> None:
        with self.state.lock:
            if "delay_s" in kw:
                self.state.delay_s = kw["delay_s"]
            self.state.queue.extend(kw.get("queue", []))
            if "metrics" in kw:
                self.state.metrics = kw["metrics"]

    def reset(self) -> None:
        with self.state.lock:
            self.state.reset()

    @property
    def log(self) -> list[dict]:
        with self.state.lock:
            return list(self.state.log)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--delay", type=float, default=0.0)
    args = ap.parse_args(argv)
    srv = OpenAIServer(args.port)
    srv.state.delay_s = args.delay
    print(srv.base_url, flush=True)
    try:
        srv.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.httpd.server_close()
        sys.exit(0)


if __name__ == "__main__":
    main()
