"""A lean HTTP/1.1 client for bulk OpenAI-protocol calls: a keep-alive pool on asyncio.

The ``openai`` SDK spends 2–4 ms of CPU a request (httpx, pydantic models,
header building); a batch of thousands of short requests is then bound by the
client, not by the server.  This transport does only what a chat-completions
POST needs: one pre-built header block per pool, the body serialised once
(orjson), a response parser that reads a status line, headers and a
``Content-Length`` or chunked body, and connections that stay open.  TLS goes
through :mod:`ssl`; no proxy support (the caller falls back to the SDK when a
proxy is configured).  Retries are the caller's (batch/bulk.py mirrors the OpenAI backend's).
"""

from __future__ import annotations

import asyncio
import os
import ssl as _ssl
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

try:  # orjson is ~5x faster than json for these small bodies; json keeps it working without
    import orjson as _orjson

    dumps = _orjson.dumps
    loads = _orjson.loads
except ImportError:  # pragma: no cover - orjson is a dependency
    import json as _json

    def dumps(obj) -> bytes:
        return _json.dumps(obj, separators=(",", ":")).encode()

    loads = _json.loads

PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


class TransportError(Exception):
    """The connection failed (refused, reset, closed early); ``never_sent``: the request never left."""

    def __init__(self, message: str, never_sent: bool = False):
        super().__init__(message)
        self.never_sent = never_sent


class TransportTimeout(TransportError):
    """No complete answer within the timeout."""


@dataclass
class HTTPResponse:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self._head: tuple[int, dict[str, str], int] | None = None  # status, headers, body start

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True
        w = self.waiter
        if w is not None and not w.done():
            w.set_exception(TransportError(f"connection closed by the server ({exc or 'EOF'})"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        w = self.waiter
        if w is None or w.done():
            return
        try:
            resp = self._parse()
        except ValueError as e:
            self.closed = True
            w.set_exception(TransportError(f"malformed HTTP response: {e}"))
            return
        if resp is not None:
            w.set_result(resp)

    def _parse(self) -> HTTPResponse | None:
        buf = self.buf
        if self._head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return None
            lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                raise ValueError(f"bad status line {lines[0][:60]!r}")
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            self._head = (int(parts[1]), headers, end + 4)
        status, headers, start = self._head
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body, used = _dechunk(buf, start)
            if body is None:
                return None
        else:
            n = int(headers.get("content-length", "0"))
            used = start + n
            if len(buf) < used:
                return None
            body = bytes(buf[start:used])
        del buf[:used]
        self._head = None
        if headers.get("connection", "").lower() == "close":
            self.closed = True
        return HTTPResponse(status, headers, body)


def _dechunk(buf: bytearray, pos: int) -> tuple[bytes | None, int]:
    """(body, end offset) of a complete chunked body starting at ``pos``, else (None, 0)."""
    out = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None, 0
        size = int(bytes(buf[pos:eol]).split(b";")[0].strip() or b"0", 16)
        pos = eol + 2
        if size == 0:
            end = buf.find(b"\r\n\r\n", pos - 2)  # trailers (usually none) end with an empty line
            return (bytes(out), end + 4) if end >= 0 else (None, 0)
        if len(buf) < pos + size + 2:
            return None, 0
        out += buf[pos:pos + size]
        pos += size + 2


class Pool:
    """Keep-alive connections to one origin; ``post`` sends a pre-serialised JSON body."""

    def __init__(self, base_url: str, headers: dict[str, str], *, timeout_s: float = 120.0,
                 max_idle: int = 256):
        u = urlsplit(base_url)
        if u.scheme not in ("http", "https"):
            raise ValueError(f"unsupported URL scheme {u.scheme!r}")
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.ssl = _ssl.create_default_context() if u.scheme == "https" else None
        self.prefix = u.path.rstrip("/")
        host_hdr = self.host if u.port is None else f"{self.host}:{u.port}"
        fixed = {"Host": host_hdr, "Content-Type": "application/json", "Accept": "application/json",
                 "Connection": "keep-alive", **headers}
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode("latin-1")
        self.timeout_s = timeout_s
        self.max_idle = max_idle
        self._idle: deque[_Conn] = deque()
        self.opened = 0

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(_Conn, self.host, self.port, ssl=self.ssl,
                                                   server_hostname=self.host if self.ssl else None)
        except OSError as e:
            raise TransportError(f"cannot connect: {type(e).__name__}", never_sent=True) from e
        self.opened += 1
        return conn

    async def post(self, path: str, body: bytes) -> HTTPResponse:
        """POST ``body`` to ``prefix + path``; TransportError / TransportTimeout on failure."""
        head = b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n" % (
            (self.prefix + path).encode(), self._fixed, len(body))
        reused = bool(self._idle)
        conn = self._idle.pop() if reused else await self._connect()
        while conn.closed and self._idle:
            conn = self._idle.pop()
        if conn.closed:
            conn, reused = await self._connect(), False
        try:
            resp = await self._exchange(conn, head + body)
        except TransportTimeout:
            raise
        except TransportError:
            if not reused:
                raise
            # a kept-alive connection the server had already closed: one fresh try, like httpx
            resp = await self._exchange(await self._connect(), head + body)
            conn = None
        if conn is not None and not conn.closed and len(self._idle) < self.max_idle:
            self._idle.append(conn)
        return resp

    async def _exchange(self, conn: _Conn, data: bytes) -> HTTPResponse:
        loop = asyncio.get_running_loop()
        w = conn.waiter = loop.create_future()
        conn.transport.write(data)
        timer = loop.call_later(self.timeout_s, _expire, w, self.timeout_s)
        try:
            resp = await w
        except BaseException:
            conn.closed = True
            conn.transport.close()
            raise
        finally:
            timer.cancel()
            conn.waiter = None
        if conn.closed:
            conn.transport.close()
        return resp

    def close(self) -> None:
        while self._idle:
            c = self._idle.pop()
            if c.transport is not None:
                c.transport.close()


def _expire(w: asyncio.Future, timeout_s: float) -> None:
    if not w.done():
        w.set_exception(TransportTimeout(f"no answer within {timeout_s:g} s"))


def proxy_configured() -> bool:
    """True when the environment names an HTTP proxy (this transport does not speak to proxies)."""
    return any(os.environ.get(v) for v in PROXY_VARS)
