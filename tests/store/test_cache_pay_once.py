"""Pay once: the cache key pins what changes an answer, two kernels share in-flight calls, a damaged
cache is one clear error; and a paid answer is never lost."""

import os
import subprocess
import sys
import textwrap

import polars as pl
import pytest
from IPython.core.error import UsageError

import hybridnb
from hybridnb import config, errors
from hybridnb.store import ledger

from faulty_server import shell


@pytest.mark.parametrize("change", [
    {"model": "test-local-model"}, {"system": "be terse"}, {"temperature": 0.7},
    {"choices": ["yes", "no"]}, {"json_schema": {"type": "object", "properties": {"a": {"type": "string"}}}},
    {"max_tokens": 77},
])
def test_everything_that_changes_the_answer_is_in_the_cache_key(faulty, change):
    first = hybridnb.reason("same prompt, yes or no")
    again = hybridnb.reason("same prompt, yes or no")
    assert again.cached and faulty.received == 1
    other = hybridnb.reason("same prompt, yes or no", **change)
    assert not other.cached and faulty.received == 2
    assert faulty.log[1]["body"]["model"] == change.get("model", "gpt-4o-mini")
    assert first.ok and other.ok


_TWIN = textwrap.dedent("""
    import os, sys, time
    import polars as pl
    import hybridnb
    df = pl.DataFrame({"q": [f"shared question {i}" for i in range(int(sys.argv[1]))]})
    print("READY", flush=True)
    while not os.path.exists(sys.argv[2]):  # both kernels start asking at the same moment
        time.sleep(0.01)
    out = hybridnb.map(df, "{q}", route="reason", concurrency=8, progress=False, verbose=False)
    print("OK", out.filter(pl.col("error").is_null()).height, flush=True)
""")


def test_two_kernels_asking_the_same_prompts_pay_once(faulty, hybridnb_home):
    faulty.script(delay_s=0.2)  # slow enough that the second kernel finds the first one's leases
    n = 60
    go = hybridnb_home.parent / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _TWIN, str(n), str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    assert [p.stdout.readline().strip() for p in procs] == ["READY", "READY"]
    go.touch()
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [o[0].split() for o in outs] == [["OK", str(n)]] * 2
    assert faulty.received == n  # not 2n
    df = ledger.read(hybridnb_home).filter(pl.col("kind") == "call")
    assert df.filter(pl.col("status") == "ok").height == n
    assert df.filter(pl.col("status") == "cached").height == n


def test_a_damaged_cache_is_one_clear_error_and_cache_clear_recovers(faulty, hybridnb_home):
    hybridnb_home.mkdir(parents=True, exist_ok=True)
    (hybridnb_home / "cache.sqlite").write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    for _ in range(2):  # the same clear error on every call, not a traceback
        with pytest.raises(errors.CacheError, match="cache clear"):
            hybridnb.reason("after the damage")
    assert faulty.received == 0  # nothing was sent
    ip = shell()
    ip.run_line_magic("hybridnb", "cache clear")
    r = hybridnb.reason("after the damage")
    assert r.ok and faulty.received == 1
    assert hybridnb.reason("after the damage").cached
    assert list(hybridnb_home.glob("cache.sqlite.damaged-*"))


def test_an_unwritable_home_is_refused_before_anything_is_paid(faulty, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("HYBRIDNB_HOME", str(blocker / "home"))
    with pytest.raises(errors.LedgerError, match="nothing was sent"):
        hybridnb.reason("will this be paid?", cache=False)
    assert faulty.received == 0


def test_an_unencodable_row_is_that_rows_error_not_the_batchs(faulty, hybridnb_home):
    import pandas as pd

    rows = [f"row {i}" for i in range(31)]
    rows[17] = "bad \ud800 surrogate"
    out = hybridnb.map(pd.DataFrame({"t": pd.Series(rows, dtype=object)}), "{t}", route="reason", progress=False, verbose=False,
                       transport="sdk")
    assert out["error"].isna().sum() == 30
    assert "InvalidRequest" in out["error"][17]
    assert faulty.received == 30
    assert ledger.read(hybridnb_home).filter(pl.col("status") == "ok").height == 30


def test_the_batch_output_variable_is_assigned_even_when_the_bill_cannot_be_shown(faulty, hybridnb_home):
    ip = shell()
    ip.user_ns["df"] = pl.DataFrame({"t": ["a", "b", "c"]})
    ip.user_ns.pop("out", None)
    config.session.set("home", str(hybridnb_home))
    import hybridnb.store.ledger as L

    real = L.read

    def broken(*a, **kw):  # the bill's ledger read fails (e.g. the disk went away)
        raise errors.LedgerError("simulated read failure")

    L.read = broken
    try:
        ip.run_cell_magic("reason", "--over df -o out", "{t}")
    finally:
        L.read = real
    assert ip.user_ns["out"].height == 3 and faulty.received == 3


def test_settings_are_checked_where_they_are_set(hybridnb_home):
    for key, bad in [("concurrency", "-3"), ("max_retries", "-1"), ("timeout_s", "0"),
                     ("reason.max_tokens", "-5"), ("budget_usd", "nan")]:
        with pytest.raises(errors.ConfigError):
            config.session.set(key, bad)


@pytest.mark.parametrize("opts, match", [
    ({"temperature": float("nan")}, "temperature"),
    ({"temperature": 3.5}, "temperature"),
    ({"max_tokens": -5}, "max_tokens"),
    ({"json_schema": {"type": "not-a-type"}}, "not a valid schema"),
])
def test_bad_call_options_are_one_clear_error_and_nothing_is_sent(faulty, opts, match):
    with pytest.raises(errors.ConfigError, match=match):
        hybridnb.reason("check me first", **opts)
    assert faulty.received == 0


def test_a_prompt_over_the_context_window_is_refused_before_sending(faulty):
    r = hybridnb.reason("word " * 700_000, raise_errors=False)  # ~875K tokens for a 128K model
    assert isinstance(r.error, errors.InvalidRequest) and "128,000" in str(r.error)
    assert faulty.received == 0


def test_magic_flags_are_checked_too(faulty):
    ip = shell()
    for flags in ("--max-tokens -5", "--temperature nan"):
        with pytest.raises(UsageError):
            ip.run_cell_magic("reason", flags, "hello")
    assert faulty.received == 0


def test_config_output_masks_a_password_in_a_base_url(hybridnb_home, capsys):
    config.session.set("local.base_url", "https://alice:hunter2secret@gpu.example:8000/v1?api_key=sk-abcdefgh123")
    shown = repr(config.get_settings()) + repr(config.get_settings().route("local"))
    ip = shell()
    ip.run_line_magic("hybridnb", "config")
    shown += capsys.readouterr().out
    assert "hunter2secret" not in shown and "sk-abcdefgh123" not in shown
    assert "alice:***@gpu.example:8000" in shown
