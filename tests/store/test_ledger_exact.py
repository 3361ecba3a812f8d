"""The ledger's edges, value by value: segment numbering across restarts and a crashed seal, calls in
flight across a seal, the exact rotation point, text a strict encoder refuses, paths with quotes, the
reader's retries and its clean-up (real DuckDB over real files). Written from mutants of
store/ledger.py (issue 17)."""

import getpass
import os
from pathlib import Path

import duckdb
import polars as pl
import pytest

from hybridnb.errors import LedgerError
from hybridnb.store import ledger, scopes
from hybridnb.store.ledger import LedgerWriter, Record


def rec(i: int, cost: float = 0.125, **kw) -> Record:
    kw = {"route": "reason", "backend": "openai", "model": "m", "status": "ok", "id": f"r{i}", **kw}
    return Record(ts=100.0 + i, cost_usd=cost, **kw)


def names(home: Path) -> list[str]:
    return [p.name for p in ledger.ledger_files(home)[1]]


@pytest.mark.parametrize("first,second", [(1, 2), (2, 1)])
def test_a_restarted_kernel_numbers_its_segments_after_the_ones_on_disk(tmp_path, monkeypatch, first, second):
    monkeypatch.setattr(ledger, "ROTATE_ROWS", 3)
    a = LedgerWriter(tmp_path, session="k")
    for i in range(3 * first):
        a.append(rec(i))
    a.close()
    b = LedgerWriter(tmp_path, session="k")  # the same kernel id after a restart
    for i in range(3 * first, 3 * (first + second)):
        b.append(rec(i))
    b.close()
    assert names(tmp_path) == [f"k-{n}.parquet" for n in range(first + second)]
    assert [pl.read_parquet(p).height for p in ledger.ledger_files(tmp_path)[1]] == [3] * (first + second)
    df = ledger.read(tmp_path)
    assert df["id"].to_list() == [f"r{i}" for i in range(3 * (first + second))]


def test_a_seal_cut_short_by_a_kill_loses_nothing_when_the_kernel_seals_again(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger, "ROTATE_ROWS", 3)
    a = LedgerWriter(tmp_path, session="k")
    a.extend([rec(0), rec(1)])
    a.close()
    os.replace(a.live_path, tmp_path / "ledger" / "k-0.jsonl")  # renamed for sealing, then killed
    assert ledger.read(tmp_path).height == 2  # a pending file without its Parquet is read as live
    b = LedgerWriter(tmp_path, session="k")
    b.extend([rec(2), rec(3), rec(4)])
    assert names(tmp_path) == ["k-1.parquet"]
    df = ledger.read(tmp_path)
    assert df["id"].to_list() == [f"r{i}" for i in range(5)] and df["cost_usd"].sum() == 5 * 0.125


def test_two_calls_in_flight_across_a_seal_both_stay_visible_then_settle(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger, "ROTATE_ROWS", 4)
    w = LedgerWriter(tmp_path, session="s")
    w.extend([rec(0, 0.0, status="unsettled"), rec(1, 0.0, status="unsettled"), rec(2), rec(3)])
    assert names(tmp_path) == ["s-0.parquet"]
    assert sorted(pl.read_parquet(ledger.ledger_files(tmp_path)[1][0])["id"]) == ["r2", "r3"]
    df = ledger.read(tmp_path)
    assert dict(zip(df["id"], df["status"])) == {"r0": "unsettled", "r1": "unsettled", "r2": "ok", "r3": "ok"}
    w.extend([rec(0, 0.5), rec(1, 0.25)])
    df = ledger.read(tmp_path)
    assert df.height == 4 and set(df["status"]) == {"ok"} and df["cost_usd"].sum() == 0.5 + 0.25 + 2 * 0.125


def test_a_settled_call_is_not_carried_into_the_next_live_file(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger, "ROTATE_ROWS", 3)
    w = LedgerWriter(tmp_path, session="s")
    w.append(rec(0, 0.0, status="unsettled"))
    w.append(rec(0, 0.5))  # settled before the seal
    w.append(rec(1))  # third row: the seal
    w.append(rec(2))
    assert w.live_path.read_text().count("\n") == 1  # only r2: nothing carried over
    df = ledger.read(tmp_path)
    assert df["id"].to_list() == ["r0", "r1", "r2"] and set(df["status"]) == {"ok"}
    assert df["cost_usd"].sum() == 0.75


def test_a_live_file_is_sealed_at_exactly_rotate_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger, "ROTATE_ROWS", 3)
    w = LedgerWriter(tmp_path, session="s")
    w.append(rec(0))
    w.append(rec(1))
    assert names(tmp_path) == [] and w.live_path.read_text().count("\n") == 2
    w.append(rec(2))
    assert names(tmp_path) == ["s-0.parquet"]
    w.extend([rec(3), rec(4)])
    w.append(rec(5))
    assert names(tmp_path) == ["s-0.parquet", "s-1.parquet"]
    assert [sorted(pl.read_parquet(p)["id"]) for p in ledger.ledger_files(tmp_path)[1]] == \
        [["r0", "r1", "r2"], ["r3", "r4", "r5"]]


def test_a_writer_makes_a_home_that_does_not_exist_yet(tmp_path):
    home = tmp_path / "new" / "deeper"
    w = LedgerWriter(home, session="s")
    w.append(rec(0))
    assert w.live_path == home / "ledger" / "s.jsonl" and ledger.read(home)["id"].to_list() == ["r0"]


def test_a_lone_surrogate_becomes_a_question_mark_and_the_batch_keeps_every_row(tmp_path):
    w = LedgerWriter(tmp_path, session="s")
    w.extend([rec(0, error="bad \ud800 byte", model="m-\u00e9"), rec(1, error="fine \u2603")])
    df = ledger.read(tmp_path)
    assert df["error"].to_list() == ["bad ? byte", "fine \u2603"]
    assert df["model"].to_list() == ["m-\u00e9", "m"] and df["cost_usd"].sum() == 0.25


def test_a_kernel_under_an_ascii_locale_writes_non_ascii_text_intact(tmp_path):
    import locale

    old = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")  # a kernel started with LANG=C: the default encoding is ASCII
    try:
        w = LedgerWriter(tmp_path, session="c")
        w.append(rec(0, model="mod\u00e8le", error="na\u00efve \u2603"))
        w.close()
    finally:
        locale.setlocale(locale.LC_CTYPE, old)
    assert ledger.read(tmp_path).select("model", "error").rows() == [("mod\u00e8le", "na\u00efve \u2603")]
    assert "mod\u00e8le".encode() in w.live_path.read_bytes()  # raw UTF-8 on disk


def test_a_home_whose_path_has_quotes_reads_live_and_sealed_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger, "ROTATE_ROWS", 2)
    home = tmp_path / "o'brien's ''home"
    a, b = LedgerWriter(home, session="a"), LedgerWriter(home, session="b")
    a.extend([rec(0), rec(1)])
    a.extend([rec(2), rec(3)])
    a.append(rec(4))
    b.append(rec(5, 1.0))
    assert len(ledger.ledger_files(home)[0]) == 2 and len(ledger.ledger_files(home)[1]) == 2
    assert ledger.read(home)["id"].to_list() == [f"r{i}" for i in range(6)]
    assert ledger.summarize(home)["cost_usd"].to_list() == [5 * 0.125 + 1.0]
    assert scopes.spent_usd(home, "session", session="b") == 1.0


def test_a_read_leaves_no_snapshot_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger, "ROTATE_ROWS", 2)
    w = LedgerWriter(tmp_path, session="s")
    w.extend([rec(0), rec(1), rec(2)])
    w.append(rec(3))
    assert ledger.read(tmp_path).height == 4 and ledger.summarize(tmp_path)["calls"].to_list() == [4]
    assert sorted(p.name for p in (tmp_path / "ledger").iterdir()) == ["s-0.jsonl", "s-0.parquet", "s.jsonl"]


def test_query_retries_a_file_that_appears_and_gives_one_ledger_error_for_one_that_never_does(tmp_path):
    seg = tmp_path / "late.parquet"
    calls = []

    def fn(con):
        calls.append(1)
        if len(calls) == 3:
            con.execute(f"COPY (SELECT 42 AS x) TO '{seg}' (FORMAT parquet)")
        return con.sql(f"SELECT x FROM read_parquet('{seg}')").fetchall()

    assert ledger.query(tmp_path, fn, tries=4) == [(42,)] and len(calls) == 3
    calls.clear()
    missing = tmp_path / "never.parquet"

    def never(con):
        calls.append(1)
        return con.sql(f"SELECT * FROM read_parquet('{missing}')").fetchall()

    with pytest.raises(LedgerError) as e:
        ledger.query(tmp_path, never, tries=3)
    assert len(calls) == 3 and isinstance(e.value.__cause__, duckdb.IOException)
    assert str(e.value).startswith(f"cannot read the ledger under {tmp_path}: IO Error: ")
    calls.clear()
    with pytest.raises(LedgerError):
        ledger.query(tmp_path, never)
    assert len(calls) == 6  # the default: six tries


def test_folders_named_like_segments_are_not_segments(tmp_path, monkeypatch):
    """A folder ``x.parquet`` or ``y.jsonl`` (a user's, a sync tool's) is skipped: the ledger still reads."""
    monkeypatch.setattr(ledger, "ROTATE_ROWS", 2)
    w = LedgerWriter(tmp_path, session="s")
    w.extend([rec(0), rec(1)])  # sealed
    w.append(rec(2))  # live
    (tmp_path / "ledger" / "x.parquet").mkdir()
    (tmp_path / "ledger" / "y.jsonl").mkdir()
    (tmp_path / "ledger" / "y.jsonl" / "z.json").write_text("{}")
    live, sealed = ledger.ledger_files(tmp_path)
    assert [p.name for p in live] == ["s.jsonl"] and len(sealed) == 1 and sealed[0].is_file()
    assert ledger.read(tmp_path)["ts"].sort().to_list() == [rec(i).ts for i in range(3)]
    assert (tmp_path / "ledger" / "x.parquet").is_dir()  # not ours: left where it is, not quarantined


def test_a_segment_changed_after_its_check_is_one_ledger_error(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger, "ROTATE_ROWS", 2)
    w = LedgerWriter(tmp_path, session="s")
    w.extend([rec(0), rec(1)])
    w.append(rec(2))
    assert ledger.read(tmp_path).height == 3  # the segment is checked (and remembered) here
    (seg,) = ledger.ledger_files(tmp_path)[1]
    st = seg.stat()
    seg.write_bytes(b"\0" * st.st_size)  # rewritten in place, size and time kept (a copy tool)
    os.utime(seg, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(LedgerError) as e:
        ledger.read(tmp_path)
    assert isinstance(e.value.__cause__, duckdb.Error) and not isinstance(e.value.__cause__, duckdb.IOException)
    assert str(e.value).startswith(f"cannot read the ledger under {tmp_path}: ")


def test_read_all_reads_the_settings_home_with_its_filter(hybridnb_home):
    w = LedgerWriter(hybridnb_home, session="s")
    w.extend([rec(0, model="a"), rec(1, model="b"), rec(2, model="a")])
    assert ledger.read_all()["id"].to_list() == ["r0", "r1", "r2"]
    assert ledger.read_all("model = 'a'")["id"].to_list() == ["r0", "r2"]


def test_as_dict_is_every_field_by_name():
    r = rec(3, model="q", confidence=0.5)
    d = ledger.as_dict(r)
    assert list(d) == list(ledger.COLUMNS) and d == vars(r) and d is not vars(r)
    assert (d["model"], d["confidence"], d["cost_usd"], d["id"]) == ("q", 0.5, 0.125, "r3")


def test_the_user_is_hybridnb_user_else_the_login_name(monkeypatch):
    monkeypatch.setattr(ledger, "_USER", [])
    monkeypatch.setenv("HYBRIDNB_USER", "team-ann")
    assert ledger.os_user() == "team-ann"
    monkeypatch.delenv("HYBRIDNB_USER")
    assert ledger.os_user() == "team-ann"  # read once per process
    assert Record(ts=1.0, route="local", backend="b", model="m", status="ok").user == "team-ann"
    monkeypatch.setattr(ledger, "_USER", [])
    assert ledger.os_user() == getpass.getuser() != ""


def test_a_uid_without_a_passwd_entry_is_named_by_its_number(monkeypatch):
    # the real case (a container's uid with no passwd entry) cannot be set up in a test run: the
    # interpreter is not readable by another uid; getpass fails there as it does here
    def no_entry():
        raise KeyError("getpwuid(): uid not found: 54321")

    monkeypatch.setattr(ledger, "_USER", [])
    monkeypatch.delenv("HYBRIDNB_USER", raising=False)
    monkeypatch.setattr(getpass, "getuser", no_entry)
    assert ledger.os_user() == str(os.getuid())
