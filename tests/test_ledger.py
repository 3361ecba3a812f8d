"""The ledger: append-only, survives restarts, two writers lose nothing."""

import json
import subprocess
import sys
import textwrap

from hybridnb.store import ledger
from hybridnb.store.ledger import LedgerWriter, Record


def rec(i: int, cost: float = 0.01, route: str = "reason") -> Record:
    return Record(ts=1000.0 + i, route=route, backend="openai", model="m", status="ok",
                  input_tokens=10, output_tokens=5, cost_usd=cost)


def test_append_then_read_back_in_a_new_writer(tmp_path):
    w = LedgerWriter(tmp_path, session="s1")
    w.extend([rec(i) for i in range(3)])
    w.close()
    w2 = LedgerWriter(tmp_path, session="s1")  # a restarted kernel with the same id
    w2.append(rec(3))
    df = ledger.read(tmp_path)
    assert df.height == 4
    assert df["session"].unique().to_list() == ["s1"]
    assert abs(df["cost_usd"].sum() - 0.04) < 1e-12


def test_empty_and_missing_ledger_read_as_no_rows(tmp_path):
    assert ledger.read(tmp_path / "nope").height == 0
    assert ledger.summarize(tmp_path / "nope").height == 0


def test_half_written_last_line_is_skipped_not_fatal(tmp_path):
    w = LedgerWriter(tmp_path, session="s")
    w.extend([rec(0), rec(1)])
    with open(w.live_path, "a") as fh:
        fh.write('{"ts": 5, "route": "reason", "backe')  # a kernel killed mid-write
    assert ledger.read(tmp_path).height == 2


def test_rotation_seals_parquet_and_keeps_every_row(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger, "ROTATE_ROWS", 100)
    w = LedgerWriter(tmp_path, session="s")
    for i in range(250):
        w.append(rec(i))
    live, sealed = ledger.ledger_files(tmp_path)
    assert len(sealed) == 2 and len(live) == 1
    df = ledger.read(tmp_path)
    assert df.height == 250
    assert df["ts"].to_list() == sorted(df["ts"].to_list())


def test_summary_matches_a_direct_duckdb_query(tmp_path):
    w = LedgerWriter(tmp_path, session="s")
    w.extend([rec(i, cost=0.5, route="reason") for i in range(4)] + [rec(i, 0.1, "local") for i in range(6)])
    s = ledger.summarize(tmp_path)
    by_route = {r["route"]: r for r in s.to_dicts()}
    assert by_route["reason"]["calls"] == 4 and abs(by_route["reason"]["cost_usd"] - 2.0) < 1e-9
    assert by_route["local"]["input_tokens"] == 60


def test_two_processes_append_at_once_and_lose_nothing(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from hybridnb.store.ledger import LedgerWriter, Record
        w = LedgerWriter({str(tmp_path)!r}, session=sys.argv[1])
        for i in range(2000):
            w.append(Record(ts=float(i), route="local", backend="b", model=sys.argv[1], status="ok",
                            cost_usd=0.001))
        w.close()
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, name]) for name in ("kernel-a", "kernel-b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    df = ledger.read(tmp_path)
    assert df.height == 4000
    counts = dict(df.group_by("model").len().iter_rows())
    assert counts == {"kernel-a": 2000, "kernel-b": 2000}
    # every line is complete JSON
    for p in (tmp_path / "ledger").glob("*.jsonl"):
        for line in p.read_text().splitlines():
            json.loads(line)
