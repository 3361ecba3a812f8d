"""A real kernel interrupt (SIGINT via jupyter_client) in the middle of a %%local batch."""

import ast
import json
import os
import time
from pathlib import Path

import pytest

import hybridnb
from hybridnb.store.cache import Cache

ROOT = Path(__file__).resolve().parent.parent
ROWS = 300

pytest.importorskip("jupyter_client")


def _run(kc, code, timeout=120):
    out = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    return reply["content"], "".join(out)


def _value(kc, expression: str):
    """Evaluate ``expression`` in the kernel (user_expressions: no reliance on stdout streams)."""
    for _ in range(20):  # right after an error the kernel aborts requests for a moment (stop_on_error)
        reply = kc.execute_interactive("", user_expressions={"v": f"__import__('json').dumps({expression})"},
                                       timeout=60)
        if reply["content"]["status"] != "aborted":
            break
        time.sleep(0.1)
    result = reply["content"]["user_expressions"]["v"]
    assert result["status"] == "ok", result
    return json.loads(ast.literal_eval(result["data"]["text/plain"]))


def test_kernel_interrupt_keeps_finished_rows_and_rerun_pays_once(openai_server, hybridnb_home, tmp_path):
    from jupyter_client.manager import start_new_kernel

    openai_server.script(delay_s=0.05)
    env = {**os.environ, "HYBRIDNB_HOME": str(hybridnb_home), "HYBRIDNB_LOCAL_BASE_URL": openai_server.base_url,
           "HYBRIDNB_LOCAL_MODEL": "test-local-model",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(tmp_path), startup_timeout=120)
    try:
        content, _ = _run(kc, "%load_ext hybridnb\nimport polars as pl\n"
                              f"segments = pl.DataFrame({{'text': [f'segment {{i}}' for i in range({ROWS})]}})")
        assert content["status"] == "ok"
        cell = "%%local --over segments -o labeled -q --concurrency 4\nLabel: {text}"
        msg_id = kc.execute(cell)
        deadline = time.time() + 120
        while len(openai_server.log) < 40 and time.time() < deadline:
            time.sleep(0.05)
        assert len(openai_server.log) >= 40, "the batch never got going"
        km.interrupt_kernel()
        while True:
            reply = kc.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "BatchInterrupted"
        assert "finished rows are in `labeled`" in reply["content"]["evalue"]

        kept = _value(kc, "{'n': labeled.height, 'failed': labeled['error'].null_count() != labeled.height}")
        assert 0 < kept["n"] < ROWS and kept["failed"] is False
        led = hybridnb.ledger()
        ok = led.filter(led["status"] == "ok")
        assert ok.height >= kept["n"]  # every finished row was billed and ledgered
        assert len(Cache(hybridnb_home)) == ok.height  # … and cached

        content, text = _run(kc, cell.replace(" -q", ""))
        assert content["status"] == "ok", text
        assert f"labeled: %%local batch done: {ROWS}/{ROWS} rows" in text
        led = hybridnb.ledger()
        ok = led.filter(led["status"] == "ok")
        assert ok.height == ROWS and ok["prompt_hash"].n_unique() == ROWS  # nobody paid twice
        cached_now = led.filter((led["status"] == "cached"))
        assert cached_now.height >= kept["n"]
        assert len(openai_server.log) <= ROWS + 4  # at most the 4 in-flight calls were resent
        assert _value(kc, "[labeled.height, labeled['error'].null_count()]") == [ROWS, ROWS]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
