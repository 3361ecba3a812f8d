"""A fault-injecting HTTP server on 127.0.0.1 speaking the OpenAI chat-completions protocol.

Built on :mod:`openai_server` (same answers, same ``/_log``), with more scripted
faults.  A script is a dict; ``queue`` entries are consumed one per request,
``default`` applies to every request the queue does not cover::

    {"status": 429, "retry_after": 0.05}     HTTP error (Retry-After header when given)
    {"status": 401, "echo_key": true}        401 whose body echoes the Authorization header
    {"hang": 5}                              sleep before answering (a client timeout)
    {"garbage": true}                        200 with a body that is not JSON
    {"truncated": true}                      200 whose body is cut off mid-way (connection closed)
    {"no_usage": true}                       200 without a ``usage`` object
    {"empty_choices": true}                  200 with usage but ``choices: []``
    {"long": 16384}                          an answer of that many tokens (words),
                                             capped by the request's max_tokens unless
    {"long": 16384, "ignore_max_tokens": true}

Run standalone: ``python tests/faulty_server.py --port 8000``.  Token counts are
whitespace words (the same rule as openai_server), so tests can predict dollars.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from openai_server import MODELS, Handler, OpenAIServer, State, answer_for, words


class FaultState(State):
    epoch = 0

    def reset(self) -> None:
        super().reset()
        self.epoch += 1  # a request begun before a reset is not counted after it
        self.default: dict = {}
        self.generated = 0  # answers fully written to a client

    def next_script(self) -> dict:
        with self.lock:
            return self.queue.pop(0) if self.queue else dict(self.default)


class FaultHandler(Handler):
    state: FaultState

    def do_POST(self) -> None:  # noqa: C901 - one branch per fault, kept flat on purpose
        st = self.state
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return super().do_POST()
        body = self._body()
        script = st.next_script()
        epoch = st.epoch
        with st.lock:
            st.log.append({"path": self.path, "auth": bool(self.headers.get("Authorization")),
                           "body": body, "script": script})
        if script.get("hang"):
            time.sleep(float(script["hang"]))
        elif st.delay_s:
            time.sleep(st.delay_s)
        if st.epoch != epoch:
            self.close_connection = True
            return None
        status = int(script.get("status", 200))
        if status != 200:
            msg = script.get("message", f"scripted HTTP {status}")
            if script.get("echo_key"):
                msg = f"Incorrect API key provided: {self.headers.get('Authorization', '')}"
            headers = {"Retry-After": str(script["retry_after"])} if "retry_after" in script else {}
            return self._json(status, {"error": {"message": msg, "type": "scripted", "code": status}}, headers)
        if script.get("garbage"):
            return self._send(200, b"<html>this is not json", "application/json")
        if body.get("model") not in MODELS and not script.get("any_model"):
            return self._json(404, {"error": {"message": f"The model `{body.get('model')}` does not exist"}})
        text = answer_for(body)
        if script.get("long"):
            n = int(script["long"])
            if body.get("max_tokens") and not script.get("ignore_max_tokens"):
                n = min(n, int(body["max_tokens"]))
            text = " ".join(["tok"] * n)
        prompt_tokens = sum(words(str(m.get("content", ""))) for m in body.get("messages", [])) + 3
        reply = {
            "id": f"chatcmpl-{st.served}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": words(text),
                      "total_tokens": prompt_tokens + words(text)},
        }
        if script.get("no_usage"):
            del reply["usage"]
        if script.get("empty_choices"):
            reply["choices"] = []
        payload = json.dumps(reply).encode()
        if script.get("truncated"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            with st.lock:
                st.generated += 1
            return None
        with st.lock:
            st.served += 1
            st.generated += 1
        return self._send(200, payload)


class FaultyServer(OpenAIServer):
    """Like OpenAIServer, with ``script(default={...})`` and the faults above."""

    def __init__(self, port: int = 0) -> None:
        from http.server import ThreadingHTTPServer

        self.state = FaultState()
        handler = type("BoundFaultHandler", (FaultHandler,), {"state": self.state})
        server_cls = type("DeepBacklogServer", (ThreadingHTTPServer,), {"request_queue_size": 256})
        self.httpd = server_cls(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def script(self, **kw) -> None:
        super().script(**kw)
        if "default" in kw:
            with self.state.lock:
                self.state.default = dict(kw["default"])

    @property
    def received(self) -> int:
        """Chat requests that reached the server."""
        with self.state.lock:
            return len(self.state.log)

    @property
    def generated(self) -> int:
        """Answers the server generated and started sending (what a provider would bill)."""
        with self.state.lock:
            return self.state.generated


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--default", default="{}", help="JSON script applied to every request")
    args = ap.parse_args(argv)
    srv = FaultyServer(args.port)
    srv.state.delay_s = args.delay
    srv.state.default = json.loads(args.default)
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


# ---- pytest fixtures (imported by tests/core/conftest.py and tests/store/conftest.py) ----
KEY = "sk-test-SECRET-0123456789abcdef"

try:
    import pytest
except ImportError:  # standalone use
    pytest = None

if pytest is not None:
    @pytest.fixture(scope="session")
    def _faulty():
        srv = FaultyServer().start()
        yield srv
        srv.stop()

    @pytest.fixture
    def faulty(_faulty, hybridnb_home, monkeypatch):
        """%%reason → the faulty server (gpt-4o-mini prices, a fake key, 2 retries); reset per test."""
        _faulty.reset()
        monkeypatch.setenv("HYBRIDNB_REASON_BASE_URL", _faulty.base_url)
        monkeypatch.setenv("HYBRIDNB_REASON_API_KEY", KEY)
        monkeypatch.setenv("HYBRIDNB_REASON_MODEL", "gpt-4o-mini")
        monkeypatch.setenv("HYBRIDNB_MAX_RETRIES", "2")
        yield _faulty
        _faulty.reset()


def shell():
    """The process's IPython shell with hybridnb's magics loaded (the singleton other tests share)."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "hybridnb")
    return ip
