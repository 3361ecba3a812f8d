"""The first-hour features in a real Jupyter kernel: {Err[-1]} after a failing cell, -f code as the
kernel's set_next_input payload (what JupyterLab turns into a new cell), -f json into -o, and
`%%reason?` answered by the kernel's inspector with the model in effect."""

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(kc, code: str):
    outputs = []
    reply = kc.execute_interactive(code, timeout=120, output_hook=outputs.append, allow_stdin=False)
    return reply["content"], outputs


@pytest.fixture
def kernel(reason_on_server, hybridnb_home, tmp_path):
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(tmp_path), startup_timeout=120)
    try:
        content, _ = _run(kc, "%load_ext hybridnb")
        assert content["status"] == "ok"
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_error_reference_code_cell_and_json_in_a_kernel(kernel, reason_on_server):
    content, _ = _run(kernel, "rows = [1, 2]\nrows[5]")
    assert content["status"] == "error" and content["ename"] == "IndexError"
    content, _ = _run(kernel, "%%reason -q\nExplain: {Err[-1]}")
    assert content["status"] == "ok"
    sent = reason_on_server.log[-1]["body"]["messages"][-1]["content"]
    assert "IndexError: list index out of range" in sent and "rows[5]" in sent

    reason_on_server.script(queue=[{"content": "```python\nprint('hi')\n```"}])
    content, _ = _run(kernel, "%%reason -f code\nprint hi")
    payloads = [p for p in content.get("payload", []) if p.get("source") == "set_next_input"]
    assert [(p["text"], p["replace"]) for p in payloads] == [("print('hi')", False)]

    reason_on_server.script(queue=[{"content": '{"a": [1, 2]}'}])
    content, outputs = _run(kernel, "%%reason -f json -o obj\nJSON please")
    assert content["status"] == "ok"
    content, outputs = _run(kernel, "import json; print(json.dumps(obj))")
    text = "".join(o["content"].get("text", "") for o in outputs if o["msg_type"] == "stream")
    assert json.loads(text) == {"a": [1, 2]}


def test_cell_magic_help_from_the_kernel_inspector(kernel, reason_on_server):
    msg_id = kernel.inspect("%%reason", cursor_pos=len("%%reason"), detail_level=0)
    reply = kernel.get_shell_msg(timeout=60)
    assert reply["parent_header"]["msg_id"] == msg_id
    text = reply["content"]["data"]["text/plain"]
    assert "%%reason [-o NAME]" in text
    assert f"gpt-4o-mini · {reason_on_server.base_url}" in text
