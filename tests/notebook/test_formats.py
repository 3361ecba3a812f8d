"""-f/--format on %%reason / %%local, through a real shell and the loopback server."""

import json

import pytest
from IPython.core.error import UsageError

import hybridnb


def _sent(server) -> str:
    return server.log[-1]["body"]["messages"][-1]["content"]


def test_markdown_stays_the_default_and_asks_nothing_extra(ip, reason_on_server, outputs):
    ip.run_cell_magic("reason", "-o a", "plain question")
    assert _sent(reason_on_server) == "plain question"
    assert "text/markdown" in outputs[-1]["data"]


def test_json_returns_the_parsed_object_in_o(ip, reason_on_server, outputs):
    value = {"name": "Ada", "years": [1815, 1852]}
    reason_on_server.script(queue=[{"content": "```json\n" + json.dumps(value) + "\n```"}])
    ip.run_cell_magic("reason", "-f json -o facts", "Facts about Ada as JSON")
    assert ip.user_ns["facts"] == value
    assert "JSON only" in _sent(reason_on_server)
    data = outputs[-1]["data"]
    assert json.loads(data["text/plain"].split("\n-- ")[0]) == value
    assert outputs[-1]["metadata"]["hybridnb"]["cost_usd"] == pytest.approx(hybridnb.ledger()["cost_usd"].sum())


def test_json_that_does_not_parse_is_one_error_and_keeps_the_response(ip, reason_on_server):
    reason_on_server.script(queue=[{"content": "sure! here it is"}])
    with pytest.raises(UsageError, match=r"-f json: the answer is not JSON .* it starts 'sure! here it is'"):
        ip.run_cell_magic("reason", "-f json -o facts", "Facts as JSON")
    assert ip.user_ns["facts"].text == "sure! here it is"
    assert hybridnb.ledger().height == 1


def test_code_goes_into_a_new_cell_below(ip, reason_on_server, outputs):
    code = "import polars as pl\ndf.group_by('day').len()"
    reason_on_server.script(queue=[{"content": f"```python\n{code}\n```"}])
    ip.rl_next_input = None
    ip.run_cell_magic("reason", "-f code", "count rows per day")
    assert ip.rl_next_input == code
    assert "inserted below" in outputs[-1]["data"]["text/plain"]


@pytest.mark.parametrize("fmt,mime,body", [
    ("html", "text/html", "<b>bold</b>"),
    ("math", "text/latex", r"\frac{a}{b}"),
    ("text", "text/plain", "just text"),
])
def test_html_math_and_text_render_with_their_mime_type(ip, reason_on_server, outputs, fmt, mime, body):
    reason_on_server.script(queue=[{"content": body}])
    ip.run_cell_magic("reason", f"-f {fmt} -o r", "render this")
    data = outputs[-1]["data"]
    assert body in data[mime] and "%%reason · openai · gpt-4o-mini" in data["text/plain"]
    if fmt == "text":
        assert set(data) == {"text/plain"}
    assert ip.user_ns["r"].text == body


def test_format_is_refused_on_batches(ip, reason_on_server):
    import polars as pl

    ip.user_ns["rows"] = pl.DataFrame({"text": ["a", "b"]})
    with pytest.raises(UsageError, match="-f code applies to one-prompt cells"):
        ip.run_cell_magic("reason", "--over rows -f code", "{text}")
    assert reason_on_server.log == []
