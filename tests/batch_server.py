"""The loopback OpenAI server plus ``/v1/files`` and ``/v1/batches``, as the OpenAI API reference describes them.

* ``POST /v1/files`` (multipart: ``purpose``, ``file``) → a File object; ``GET /v1/files/{id}``,
  ``GET /v1/files/{id}/content``.
* ``POST /v1/batches`` ``{input_file_id, endpoint, completion_window, metadata}`` → a Batch object
  (``validating``); a worker thread then moves it ``in_progress`` → ``finalizing`` → ``completed``,
  answering each line as ``/v1/chat/completions`` would (output file: ``{id, custom_id, response:
  {status_code, request_id, body}, error}``; failed lines go to the error file).  A malformed
  input file fails the batch (``failed`` with ``errors.data``).
* ``GET /v1/batches/{id}``, ``GET /v1/batches`` (list, ``limit``/``after``), ``POST /v1/batches/{id}/cancel``
  (``cancelling`` → ``cancelled``, with the lines done so far in the output file).
* ``POST /_batch_script`` ``{"validate_s": 0.05, "row_s": 0.002, "fail_match": "FAIL", "hold_after": 3,
  "expire_after": 5, "invalid": true, "release": true}``: delays, lines whose prompt contains ``fail_match`` answer HTTP 500,
  ``hold_after`` pauses a job after that many lines until ``release``, ``expire_after`` expires it,
  ``invalid`` fails validation.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from http.server import ThreadingHTTPServer

from openai_server import MODELS, Handler, State, answer_for, words


class BatchState(State):
    def reset(self) -> None:
        super().reset()
        self.files: dict[str, dict] = {}
        self.contents: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.bscript = {"validate_s": 0.02, "row_s": 0.0, "fail_match": None, "hold_after": None,
                        "expire_after": None}
        self.release = threading.Event()
        self.uploads = 0
        self.polls = 0  # GET /v1/batches/{id}


def _file(st: BatchState, data: bytes, purpose: str, filename: str) -> dict:
    fid = "file-" + uuid.uuid4().hex[:24]
    obj = {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()), "filename": filename,
           "purpose": purpose, "status": "processed", "expires_at": None, "status_details": None}
    st.files[fid] = obj
    st.contents[fid] = data
    return obj


def _answer_line(line: dict, st: BatchState, n: int) -> tuple[dict | None, dict | None]:
    """(output line, error line) for one input line."""
    body = line["body"]
    prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user")
    rid = f"req_{uuid.uuid4().hex[:12]}"
    fm = st.bscript.get("fail_match")
    if fm and fm in prompt:
        err = {"error": {"message": "scripted failure", "type": "server_error"}}
        return None, {"id": f"batch_req_{n}", "custom_id": line["custom_id"],
                      "response": {"status_code": 500, "request_id": rid, "body": err}, "error": None}
    if body.get("model") not in MODELS:
        err = {"error": {"message": f"The model `{body.get('model')}` does not exist", "type": "invalid_request_error"}}
        return None, {"id": f"batch_req_{n}", "custom_id": line["custom_id"],
                      "response": {"status_code": 404, "request_id": rid, "body": err}, "error": None}
    text = answer_for(body)
    pt = sum(words(str(m.get("content", ""))) for m in body.get("messages", [])) + 3
    reply = {"id": f"chatcmpl-b{n}", "object": "chat.completion", "created": int(time.time()),
             "model": body.get("model"),
             "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
             "usage": {"prompt_tokens": pt, "completion_tokens": words(text), "total_tokens": pt + words(text)}}
    return {"id": f"batch_req_{n}", "custom_id": line["custom_id"],
            "response": {"status_code": 200, "request_id": rid, "body": reply}, "error": None}, None


def _finish(st: BatchState, b: dict, status: str, out: list, errs: list) -> None:
    now = int(time.time())
    with st.lock:
        if out:
            b["output_file_id"] = _file(st, "".join(json.dumps(x) + "\n" for x in out).encode(),
                                        "batch_output", "output.jsonl")["id"]
        if errs:
            b["error_file_id"] = _file(st, "".join(json.dumps(x) + "\n" for x in errs).encode(),
                                       "batch_output", "errors.jsonl")["id"]
        b["status"] = status
        b[{"completed": "completed_at", "expired": "expired_at", "cancelled": "cancelled_at"}[status]] = now


def _work(st: BatchState, bid: str) -> None:
    """Run one batch job in the background, as a provider would."""
    b = st.batches[bid]
    time.sleep(st.bscript["validate_s"])
    try:
        lines = [json.loads(x) for x in st.contents[b["input_file_id"]].decode().splitlines() if x.strip()]
        assert all(x["url"] == b["endpoint"] and x["method"] == "POST" and x["custom_id"] for x in lines)
        assert len({x["custom_id"] for x in lines}) == len(lines)
        assert not st.bscript.get("invalid")
    except (ValueError, KeyError, AssertionError, TypeError):
        with st.lock:
            b.update(status="failed", failed_at=int(time.time()), errors={"object": "list", "data": [
                {"code": "invalid_request", "message": "the input file is not valid batch JSONL", "line": None}]})
        return
    with st.lock:
        if b["status"] == "validating":
            b.update(status="in_progress", in_progress_at=int(time.time()))
        b["request_counts"]["total"] = len(lines)
    out, errs = [], []
    for n, line in enumerate(lines):
        hold, expire = st.bscript.get("hold_after"), st.bscript.get("expire_after")
        if hold is not None and n == hold:
            while not st.release.wait(0.02):
                if b["status"] == "cancelling":
                    break
        if b["status"] == "cancelling":
            return _finish(st, b, "cancelled", out, errs)
        if expire is not None and n >= expire:
            return _finish(st, b, "expired", out, errs)
        time.sleep(st.bscript["row_s"])
        ok, bad = _answer_line(line, st, n)
        with st.lock:
            (out.append(ok) if ok else errs.append(bad))
            b["request_counts"]["completed" if ok else "failed"] += 1
    with st.lock:
        b.update(status="finalizing", finalizing_at=int(time.time()))
    _finish(st, b, "completed", out, errs)


class BatchHandler(Handler):
    state: BatchState

    def do_GET(self) -> None:
        st = self.state
        path = self.path.split("?")[0]
        if path.startswith("/v1/files/"):
            fid = path.split("/")[3]
            if fid not in st.files:
                return self._json(404, {"error": {"message": f"No such File object: {fid}", "type": "invalid_request_error"}})
            if path.endswith("/content"):
                return self._send(200, st.contents[fid], "application/octet-stream")
            return self._json(200, st.files[fid])
        if path.startswith("/v1/batches/"):
            bid = path.split("/")[3]
            with st.lock:
                st.polls += 1
                b = st.batches.get(bid)
                snap = json.loads(json.dumps(b)) if b else None
            if snap is None:
                return self._json(404, {"error": {"message": f"No batch found with id '{bid}'.", "type": "invalid_request_error"}})
            return self._json(200, snap)
        if path == "/v1/batches":
            with st.lock:
                data = sorted(st.batches.values(), key=lambda b: -b["created_at"])
                data = json.loads(json.dumps(data))
            return self._json(200, {"object": "list", "data": data, "has_more": False,
                                    "first_id": data[0]["id"] if data else None,
                                    "last_id": data[-1]["id"] if data else None})
        return super().do_GET()

    def do_POST(self) -> None:
        st = self.state
        if self.path == "/v1/files":
            return self._upload()
        if self.path == "/_batch_script":
            body = self._body()
            with st.lock:
                if body.pop("release", False):
                    st.release.set()
                st.bscript.update(body)
            return self._json(200, {"ok": True})
        if self.path == "/v1/batches":
            return self._create(self._body())
        if self.path.startswith("/v1/batches/") and self.path.endswith("/cancel"):
            bid = self.path.split("/")[3]
            self._body()
            with st.lock:
                b = st.batches.get(bid)
                if b is None:
                    return self._json(404, {"error": {"message": f"No batch found with id '{bid}'."}})
                if b["status"] in ("validating", "in_progress"):
                    b.update(status="cancelling", cancelling_at=int(time.time()))
                snap = json.loads(json.dumps(b))
            return self._json(200, snap)
        return super().do_POST()

    def _upload(self) -> None:
        st = self.state
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        msg = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
        fields, filename = {}, "upload.jsonl"
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[name] = part.get_payload(decode=True)
            if name == "file":
                filename = part.get_filename() or filename
        if "file" not in fields or fields.get("purpose") != b"batch":
            return self._json(400, {"error": {"message": "purpose must be batch and a file is required"}})
        with st.lock:
            st.uploads += 1
            obj = _file(st, fields["file"], "batch", filename)
        self._json(200, obj)

    def _create(self, body: dict) -> None:
        st = self.state
        fid = body.get("input_file_id")
        if fid not in st.files or body.get("completion_window") != "24h":
            return self._json(400, {"error": {"message": "input_file_id must name an uploaded file and "
                                              "completion_window must be 24h", "type": "invalid_request_error"}})
        now = int(time.time())
        bid = "batch_" + uuid.uuid4().hex[:24]
        b = {"id": bid, "object": "batch", "endpoint": body.get("endpoint"), "errors": None, "input_file_id": fid,
             "completion_window": "24h", "status": "validating", "output_file_id": None, "error_file_id": None,
             "created_at": now, "in_progress_at": None, "expires_at": now + 86400, "finalizing_at": None,
             "completed_at": None, "failed_at": None, "expired_at": None, "cancelling_at": None,
             "cancelled_at": None, "request_counts": {"total": 0, "completed": 0, "failed": 0},
             "metadata": body.get("metadata")}
        with st.lock:
            st.batches[bid] = b
            snap = json.loads(json.dumps(b))
        threading.Thread(target=_work, args=(st, bid), daemon=True).start()
        self._json(200, snap)


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # bursts of new connections (the default backlog is 5)
    daemon_threads = True


class BatchServer:
    """Start/stop in a thread; ``.base_url`` ends in /v1."""

    def __init__(self, port: int = 0) -> None:
        self.state = BatchState()
        handler = type("BoundBatchHandler", (BatchHandler,), {"state": self.state})
        self.httpd = _Server(("127.0.0.1", port), handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> "BatchServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.state.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def script(self, **kw) -> None:
        with self.state.lock:
            if kw.pop("release", False):
                self.state.release.set()
            self.state.bscript.update(kw)

    def reset(self) -> None:
        self.state.release.set()
        with self.state.lock:
            self.state.reset()

    @property
    def log(self) -> list[dict]:
        with self.state.lock:
            return list(self.state.log)
