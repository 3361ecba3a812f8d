"""The bulk transport of hybridnb.map: same answers, retries, errors and ledger as the SDK path."""

import asyncio
import socket

import polars as pl
import pytest

import hybridnb
from hybridnb.backends import _fast_http as fh
from hybridnb.batch.bulk import BulkBackend, bulk_target
from hybridnb.batch.runner import run_batch
from hybridnb.core.dispatcher import get_dispatcher
from hybridnb.core.loop import get_loop
from hybridnb.store.cache import Cache
from hybridnb.types import Request

KEY = "sk-test-SECRET-0123456789"


def _run(frame, transport, **kw):
    kw.setdefault("route", "reason")
    return run_batch(frame, kw.pop("template", "Label: {text}"), progress=False, verbose=False,
                     transport=transport, **kw)


def test_bulk_gives_the_sdk_answers_tokens_costs_and_ledger(reason_on_server, hybridnb_home):
    texts = [f"parcel {i} was late, price fine" for i in range(40)] + ["parcel 0 was late, price fine"]
    df = pl.DataFrame({"text": texts})
    sdk = _run(df, "sdk", template="A: {text}", choices=["late", "price"])
    bulk = _run(df, "bulk", template="B: {text}", choices=["late", "price"])
    for col in ("answer", "input_tokens", "output_tokens", "cost_usd", "cached", "error"):
        assert bulk.frame[col].to_list() == sdk.frame[col].to_list(), col
    assert bulk.stats.ok == 40 and bulk.stats.cached == 1 and bulk.stats.failed == 0
    # the wire bodies are the SDK's (apart from the prompt)
    log = reason_on_server.log
    a = next(e["body"] for e in log if "A: parcel" in e["body"]["messages"][-1]["content"])
    b = next(e["body"] for e in log if "B: parcel" in e["body"]["messages"][-1]["content"])
    assert {k: v for k, v in a.items() if k != "messages"} == {k: v for k, v in b.items() if k != "messages"}
    assert all(e["auth"] for e in log)
    led = hybridnb.ledger()
    mine = led.filter(pl.col("batch") == bulk.stats.batch_id)
    assert mine.height == 41 and mine.filter(pl.col("status") == "ok").height == 40
    assert mine["cost_usd"].sum() == pytest.approx(bulk.frame["cost_usd"].sum())
    # a second run is served by the cache: nothing sent
    n = len(reason_on_server.log)
    again = _run(df, "bulk", template="B: {text}", choices=["late", "price"])
    assert len(reason_on_server.log) == n and again.frame["cached"].all()


def test_json_schema_rows_parse_on_the_bulk_path(reason_on_server, hybridnb_home):
    schema = {"type": "object", "properties": {"topic": {"type": "string"}, "n": {"type": "integer"}},
              "required": ["topic", "n"]}
    df = pl.DataFrame({"text": ["alpha beta gamma", "one two"]})
    out = _run(df, "bulk", json_schema=schema).frame
    assert out["topic"].to_list() == ["Label: alpha beta", "Label: one two"]
    assert out["n"].to_list() == [4, 3]


def test_retries_with_retry_after_then_one_ledger_row(reason_on_server, hybridnb_home):
    reason_on_server.script(queue=[{"status": 429, "retry_after": 0.01}, {"status": 503, "retry_after": 0.01}])
    out = _run(pl.DataFrame({"text": ["just one row"]}), "bulk")
    assert out.stats.ok == 1 and out.frame["error"][0] is None
    assert [e["script"].get("status", 200) for e in reason_on_server.log] == [429, 503, 200]
    led = hybridnb.ledger()
    assert led.height == 1 and led["attempts"][0] == 3  # a retried call is one call, its attempts counted


FAILURES = {
    "auth": ([{"status": 401}], "AuthenticationError"),
    "bad request": ([{"status": 400, "message": f"no such parameter (key {KEY})"}], "BackendError"),
    "rate limited": ([{"status": 429, "retry_after": 0.01}] * 3, "RateLimited"),
    "server error": ([{"status": 503, "retry_after": 0.01}] * 3, "ServerError"),
    "conflict then 400": ([{"status": 409, "retry_after": 0.01}, {"status": 400}], "BackendError"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_errors_have_the_sdk_classes_and_messages(reason_on_server, hybridnb_home, case):
    queue, cls = FAILURES[case]
    errs = {}
    for transport in ("sdk", "bulk"):
        reason_on_server.script(queue=list(queue))
        out = _run(pl.DataFrame({"text": [f"{transport} row"]}), transport)
        errs[transport] = out.frame["error"][0]
        assert out.stats.failed == 1
    assert errs["bulk"] == errs["sdk"]
    assert errs["bulk"].startswith(f"{cls}: ")
    assert "SECRET" not in errs["bulk"]
    led = hybridnb.ledger()
    failed = led.filter(pl.col("status") == "error")
    assert failed.height == 2 and failed["attempts"].n_unique() == 1  # the same attempts on both paths
    assert not led["error"].str.contains("SECRET").any()


def test_unknown_model_garbage_and_unreachable(reason_on_server, hybridnb_home, monkeypatch):
    df = pl.DataFrame({"text": ["x y"]})
    sdk = _run(df, "sdk", model="no-such-model").frame["error"][0]
    bulk = _run(df, "bulk", model="no-such-model").frame["error"][0]
    assert bulk == sdk and bulk.startswith("NotFoundError: ")
    reason_on_server.script(queue=[{"garbage": True}])
    err = _run(df, "bulk").frame["error"][0]
    assert err.startswith(f"MalformedResponse: malformed response from {reason_on_server.base_url}")
    assert hybridnb.ledger().filter(pl.col("error_class") == "MalformedResponse").height == 1
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    monkeypatch.setenv("HYBRIDNB_MAX_RETRIES", "0")
    errs = [_run(df, t, base_url=dead).frame["error"][0] for t in ("sdk", "bulk")]
    assert errs[0] == errs[1] and errs[1].startswith("BackendUnavailable: cannot reach http://127.0.0.1:")


def test_timeout_is_backend_timeout(reason_on_server, hybridnb_home, monkeypatch):
    monkeypatch.setenv("HYBRIDNB_MAX_RETRIES", "0")
    monkeypatch.setenv("HYBRIDNB_TIMEOUT_S", "0.3")
    monkeypatch.setenv("HYBRIDNB_MAX_RETRIES", "2")  # a timeout is not retried: the provider may have billed it
    errs = []
    for t in ("sdk", "bulk"):
        reason_on_server.script(queue=[{"hang": 1.0}])
        errs.append(_run(pl.DataFrame({"text": [t]}), t).frame["error"][0])
    assert errs[0] == errs[1] and errs[1].startswith("BackendTimeout: no answer from")
    failed = hybridnb.ledger().filter(pl.col("status") == "error")
    assert failed["attempts"].to_list() == [1, 1] and failed["maybe_billed"].to_list() == [1, 1]
    assert len(reason_on_server.log) == 2


def test_cancel_mid_chunk_ledgers_and_caches_every_finished_row(reason_on_server, hybridnb_home):
    reason_on_server.script(delay_s=0.03)
    d = get_dispatcher()
    target = bulk_target(d.resolve("reason"), 16)
    assert isinstance(target.backend, BulkBackend) and target.backend.batch_size == 16
    reqs = [Request(f"row {i} to label", "gpt-4o-mini") for i in range(400)]
    async def go():
        task = asyncio.ensure_future(d.arun(reqs, target, cache=True))
        while reason_on_server.state.served < 40 and not task.done():
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run_coroutine_threadsafe(go(), get_loop()).result(60)
    served = reason_on_server.state.served
    led = hybridnb.ledger()
    ok = led.filter(pl.col("status") == "ok")
    assert 40 <= served < 400
    # every answer the server sent was ledgered and cached, except at most the requests in flight
    assert ok.height >= served - 16
    assert len(Cache(hybridnb_home)) == ok.height
    interrupted = led.filter(pl.col("error_class") == "KeyboardInterrupt")
    assert ok.height + interrupted.height == led.height


def test_bulk_is_used_only_where_it_can_be(reason_on_server, hybridnb_home, monkeypatch):
    d = get_dispatcher()
    t = d.resolve("reason")
    assert isinstance(bulk_target(t, 8).backend, BulkBackend)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert bulk_target(t, 8) is t  # the bulk client does not speak to proxies: the SDK does
    monkeypatch.delenv("HTTPS_PROXY")
    from hybridnb.errors import HybridnbError

    with pytest.raises(HybridnbError, match="unknown transport"):
        run_batch(pl.DataFrame({"text": ["a"]}), "{text}", "reason", transport="carrier-pigeon")


# ---- the HTTP client itself ------------------------------------------------------------
def _raw_server(replies):
    """A raw asyncio server that sends ``replies`` (bytes, one per request) and counts connections."""
    state = {"conns": 0}

    async def handle(reader, writer):
        state["conns"] += 1
        try:
            while replies:
                head = await reader.readuntil(b"\r\n\r\n")
                n = int([ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0])
                await reader.readexactly(n)
                reply = replies.pop(0)
                for piece in (reply[:7], reply[7:30], reply[30:]):  # split at awkward places
                    writer.write(piece)
                    await writer.drain()
                if b"Connection: close" in reply:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    return handle, state


def test_pool_reads_chunked_and_content_length_and_reconnects():
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
               b"5\r\n{\"a\":\r\n3;ext=1\r\n 12\r\n1\r\n}\r\n0\r\n\r\n")
    plain = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\nRetry-After: 1\r\n\r\nno"
    closing = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nlast"
    after = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nagain"

    async def main():
        handle, state = _raw_server([chunked, plain, closing, after])
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = fh.Pool(f"http://127.0.0.1:{port}/v1", {"Authorization": "Bearer x"}, timeout_s=5)
        got = [await pool.post("/chat/completions", b"{}") for _ in range(4)]
        pool.close()
        server.close()
        return got, state["conns"], pool.opened

    got, conns, opened = asyncio.run(main())
    assert fh.loads(got[0].body) == {"a": 12}
    assert (got[1].status, got[1].body, got[1].headers["retry-after"]) == (503, b"no", "1")
    assert got[2].body == b"last" and got[3].body == b"again"
    assert conns == 2 and opened == 2  # kept alive until the server said close
