"""{In[n]}, {Out[n]}, {Err[n]} and relative {In[-1]} in templates, from a real shell's history."""

def _run(ip, code):
    return ip.run_cell(code, store_history=True)


def _sent(server) -> str:
    return server.log[-1]["body"]["messages"][-1]["content"]


def test_references_resolve_from_the_history(ip, reason_on_server):
    _run(ip, "total = 21 * 2\ntotal")
    n_out = ip.history_manager.input_hist_raw.__len__() - 1
    _run(ip, "1 / 0")
    n_err = n_out + 1
    r = _run(ip, f"%%reason -q\nWhy: {{Err[-1]}}\nWas {{Out[{n_out}]}} right? Code: {{In[{n_out}]}}")
    assert r.error_in_exec is None
    sent = _sent(reason_on_server)
    assert "ZeroDivisionError: division by zero" in sent and "1 / 0" in sent
    assert "interactiveshell.py" not in sent  # the traceback starts at the user's cell
    assert f"Was {21 * 2} right? Code: total = 21 * 2\ntotal" in sent
    assert set(ip.user_ns["Err"]) >= {n_err}


def test_a_missing_reference_is_one_line_naming_it(ip, reason_on_server):
    _run(ip, "x = 1")  # no value, no error
    r = _run(ip, "%%reason -q\nExplain {Err[-1]}")
    msg = str(r.error_in_exec)
    assert "{Err[-1]} does not exist" in msg and "raised no error" in msg and "\n" not in msg
    r = _run(ip, "%%reason -q\nShow {In[99999]}")
    assert "{In[99999]} does not exist" in str(r.error_in_exec)
    assert reason_on_server.log == []


def test_literal_braces_and_variables_still_work_beside_references(ip, reason_on_server):
    _run(ip, "name = 'Ada'")
    _run(ip, "%%reason -q\n{{\"who\": \"{name}\"}} after {In[-1]}")
    assert _sent(reason_on_server) == "{\"who\": \"Ada\"} after name = 'Ada'"


def test_a_batch_template_may_cite_cells_once_for_every_row(ip, reason_on_server):
    import polars as pl

    ip.user_ns["rows"] = pl.DataFrame({"text": ["late parcel", "double charge"]})
    _run(ip, "rule = 'label {x} by cause'")  # braces in the cited cell stay literal
    r = _run(ip, "%%reason --over rows -o labeled -q\nApply {In[-1]} to: {text}")
    assert r.error_in_exec is None
    sent = sorted(e["body"]["messages"][-1]["content"] for e in reason_on_server.log)
    assert sent == ["Apply rule = 'label {x} by cause' to: double charge",
                    "Apply rule = 'label {x} by cause' to: late parcel"]


def test_an_answer_is_the_output_of_its_cell(ip, reason_on_server):
    reason_on_server.script(queue=[{"content": "three bullet points"}])
    _run(ip, "%%reason -q\nSummarise the report")
    n = len(ip.history_manager.input_hist_raw) - 1
    assert str(ip.user_ns["Out"][n]) == "three bullet points"
    _run(ip, "%%reason -q\nShorten: {Out[-1]}")
    assert _sent(reason_on_server) == "Shorten: three bullet points"
