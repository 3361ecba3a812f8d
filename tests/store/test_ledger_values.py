"""The ledger value by value: every field of a record comes back as written, from the live file and
from a sealed segment, and the summary's sums are the ones a hand count gives (real DuckDB over real
files). Written from mutants of store/ledger.py (issue 17)."""

import os
import re
from dataclasses import fields

import pytest

from hybridnb.errors import LedgerError
from hybridnb.store import ledger
from hybridnb.store.ledger import COLUMNS, LedgerWriter, Record


def full_record(i: int) -> Record:
    return Record(ts=1000.5 + i, route="local", backend="vllm", model="qwen", status="ok", input_tokens=11 + i,
                  output_tokens=7, cached_tokens=3, cost_usd=0.25, saved_usd=0.125, latency_s=1.5, held_s=2.5,
                  busy_s=1.25, gpus=2.0, pricing="compute", cached=False, unpriced=True, simulated=True,
                  reference_model="gpt-4o", error_class="", error="", notebook="nb.ipynb", cell="c7",
                  batch="b1", template="t1", prompt_hash="ph", answer_hash="ah", session="", kind="call",
                  rows=4, user="ann", via="auto", confidence=0.875, escalated=True, similarity=None,
                  attempts=2, maybe_billed=1, usage_estimated=True, forced=True, reserved_usd=0.5,
                  prompt_norm="pn", choice_probs='{"a": 0.875}', id=f"id-{i}")


def test_columns_follow_the_record_fields_with_their_duckdb_types():
    assert list(COLUMNS) == [f.name for f in fields(Record)]
    assert (COLUMNS["ts"], COLUMNS["input_tokens"], COLUMNS["cached"], COLUMNS["model"], COLUMNS["confidence"]) \
        == ("DOUBLE", "BIGINT", "BOOLEAN", "VARCHAR", "DOUBLE")


@pytest.mark.parametrize("sealed", [False, True])
def test_every_field_comes_back_as_written(tmp_path, monkeypatch, sealed):
    monkeypatch.setattr(ledger, "ROTATE_ROWS", 2 if sealed else 1000)
    w = LedgerWriter(tmp_path, session="kernel-1")
    w.extend([full_record(0), full_record(1)])
    w.close()
    live, segs = ledger.ledger_files(tmp_path)
    assert (len(live), len(segs)) == ((0, 1) if sealed else (1, 0))
    rows = ledger.read(tmp_path).to_dicts()
    want = [vars(full_record(0)), vars(full_record(1))]
    for w_ in want:
        w_["session"] = "kernel-1"  # the writer's session fills an empty one
    assert rows == want


def test_a_row_keeps_its_own_session_and_the_file_is_named_after_the_writers(tmp_path):
    w = LedgerWriter(tmp_path, session="s-9")
    r = full_record(0)
    r.session = "from-elsewhere"
    w.append(r)
    assert w.live_path == tmp_path / "ledger" / "s-9.jsonl"
    assert ledger.read(tmp_path)["session"].to_list() == ["from-elsewhere"]


def test_read_filters_and_orders_by_time(tmp_path):
    w = LedgerWriter(tmp_path, session="s")
    w.extend([Record(ts=t, route="reason", backend="openai", model=m, status="ok")
              for t, m in [(3.0, "a"), (1.0, "b"), (2.0, "a")]])
    assert ledger.read(tmp_path)["ts"].to_list() == [1.0, 2.0, 3.0]
    assert ledger.read(tmp_path, "model = 'a'")["ts"].to_list() == [2.0, 3.0]


def test_summary_sums_are_the_hand_counted_ones(tmp_path):
    rows = [
        Record(ts=10.0, route="local", backend="vllm", model="q", status="ok", input_tokens=100, output_tokens=10,
               cost_usd=0.5, held_s=3600.0, busy_s=1800.0, gpus=2.0, pricing="compute"),
        Record(ts=20.0, route="local", backend="vllm", model="q", status="error", cost_usd=0.25, held_s=1800.0,
               gpus=2.0, pricing="compute", maybe_billed=2, reference_model="gpt-4o"),
        Record(ts=30.0, route="local", backend="vllm", model="q", status="cached", saved_usd=0.5,
               pricing="compute"),
        Record(ts=40.0, route="local", backend="vllm", model="q", status="ok", kind="setup", cost_usd=0.125,
               held_s=900.0, gpus=1.0, pricing="compute"),
        Record(ts=5.0, route="local", backend="vllm", model="q", status="unsettled", kind="batch-job",
               pricing="compute", simulated=True),
        Record(ts=50.0, route="reason", backend="openai", model="gpt-4o-mini", status="ok", input_tokens=7,
               output_tokens=3, cost_usd=2.0, held_s=99.0, busy_s=99.0, unpriced=True),
    ]
    w = LedgerWriter(tmp_path, session="s")
    w.extend(rows)
    got = ledger.summarize(tmp_path).to_dicts()
    assert [(g["route"], g["model"]) for g in got] == [("reason", "gpt-4o-mini"), ("local", "q")]  # dearest first
    api, local = got
    assert local == {
        "route": "local", "backend": "vllm", "model": "q",
        "calls": 2, "cache_hits": 1, "errors": 1, "input_tokens": 100, "output_tokens": 10,
        "cost_usd": 0.875, "saved_usd": 0.5, "gpu_hours": (3600 * 2 + 1800 * 2 + 900) / 3600,
        "held_s": 6300.0, "busy_s": 1800.0, "unsettled": 1, "maybe_billed": 2,
        "simulated": True, "unpriced": False, "reference_model": "gpt-4o", "compute": True,
        "compute_usd": 0.875, "first_ts": 5.0, "last_ts": 40.0,
    }
    # a token-priced API: no held time, no compute cost, however its rows were filled in
    assert (api["calls"], api["held_s"], api["busy_s"], api["compute"], api["compute_usd"], api["unpriced"],
            api["reference_model"], api["cost_usd"]) == (1, 0.0, 0.0, False, 0.0, True, "", 2.0)
    assert ledger.summarize(tmp_path, "route = 'reason'")["route"].to_list() == ["reason"]


def test_a_session_id_is_time_pid_and_a_random_suffix(tmp_path):
    a, b = ledger.default_session(), ledger.default_session()
    assert re.fullmatch(rf"\d{{8}}T\d{{6}}-{os.getpid()}-[0-9a-f]{{6}}", a) and a != b
    assert LedgerWriter(tmp_path).session != LedgerWriter(tmp_path).session


def test_an_unwritable_home_is_one_ledger_error_naming_the_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    w = LedgerWriter(blocker)
    with pytest.raises(LedgerError) as e:
        w.check_writable()
    assert str(e.value).startswith(f"cannot write the ledger at {blocker / 'ledger'}: ")
    assert str(e.value).endswith(" — nothing was sent; set HYBRIDNB_HOME to a writable folder")
    with pytest.raises(LedgerError, match=re.escape(f"cannot write the ledger at {blocker / 'ledger'}: ")):
        w.append(full_record(0))
    w.close()


def test_a_writer_closed_twice_and_reopened_appends_to_the_same_file(tmp_path):
    w = LedgerWriter(tmp_path, session="s")
    w.append(full_record(0))
    w.close()
    w.close()
    w.append(full_record(1))
    assert w.live_path.read_text().count("\n") == 2
    assert ledger.read(tmp_path).height == 2


def _in_zone(tz: str):
    import contextlib
    import time

    @contextlib.contextmanager
    def zone():
        old = os.environ.get("TZ")
        os.environ["TZ"] = tz
        time.tzset()
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("TZ", None)
            else:
                os.environ["TZ"] = old
            time.tzset()
    return zone()


def _costs_at(home, stamps_costs):
    w = LedgerWriter(home, session="s")
    w.extend(Record(ts=ts, route="reason", backend="openai", model="m", status="ok", cost_usd=c, id=f"r{i}")
             for i, (ts, c) in enumerate(stamps_costs))
    w.close()


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_a_day_is_the_local_calendar_day_start_included_end_excluded(tmp_path, tz):
    import datetime as dt

    from hybridnb.store import scopes

    with _in_zone(tz):
        start, end = scopes.start_of_day("2026-11-30")
        assert dt.datetime.fromtimestamp(start).timetuple()[:6] == (2026, 11, 30, 0, 0, 0)
        assert dt.datetime.fromtimestamp(end).timetuple()[:6] == (2026, 12, 1, 0, 0, 0)
        assert end - start == 86400
        _costs_at(tmp_path, [(start - 0.001, 1.0), (start, 0.5), (end - 0.001, 0.25), (end, 2.0)])
        assert scopes.spent_usd(tmp_path, "day", day="2026-11-30") == 0.75
        assert scopes.spent_usd(tmp_path, "day", day=dt.date(2026, 11, 29)) == 1.0
        assert scopes.spent_usd(tmp_path, "day", day=dt.datetime(2026, 12, 1, 23, 59)) == 2.0
        assert scopes.spent_usd(tmp_path, "total") == 3.75


def test_spend_after_utc_midnight_counts_to_the_local_day_it_was_made_on(tmp_path):
    import datetime as dt

    from hybridnb.store import scopes

    utc = dt.timezone.utc
    late = dt.datetime(2026, 12, 1, 2, 30, tzinfo=utc).timestamp()  # 21:30 on Nov 30 in New York
    early = dt.datetime(2026, 11, 30, 3, 0, tzinfo=utc).timestamp()  # 22:00 on Nov 29 in New York
    _costs_at(tmp_path, [(late, 0.5), (early, 0.125)])
    with _in_zone("America/New_York"):
        assert scopes.spent_usd(tmp_path, "day", day="2026-11-30") == 0.5
        assert scopes.spent_usd(tmp_path, "day", day="2026-11-29") == 0.125
        assert scopes.spent_usd(tmp_path, "day", day="2026-12-01") == 0.0
    with _in_zone("UTC"):
        assert scopes.spent_usd(tmp_path, "day", day="2026-11-30") == 0.125
        assert scopes.spent_usd(tmp_path, "day", day="2026-12-01") == 0.5


def test_a_day_with_a_clock_change_is_23_or_25_hours_long():
    from hybridnb.store import scopes

    with _in_zone("America/New_York"):
        spring, autumn = scopes.start_of_day("2026-03-08"), scopes.start_of_day("2026-11-01")
        assert (spring[1] - spring[0], autumn[1] - autumn[0]) == (23 * 3600, 25 * 3600)


def test_every_scope_sums_only_its_own_rows_also_across_a_seal(tmp_path, monkeypatch):
    from hybridnb.store import scopes

    monkeypatch.setattr(ledger, "ROTATE_ROWS", 2)
    now = 1_790_000_000.0
    a, b = LedgerWriter(tmp_path, session="k-a"), LedgerWriter(tmp_path, session="k-b")
    a.extend([Record(ts=now, route="reason", backend="o", model="m", status="ok", cost_usd=0.5,
                     notebook="/lab/w/nb.ipynb", user="ann"),
              Record(ts=now, route="local", backend="v", model="q", status="ok", cost_usd=0.25,
                     notebook="/lab/w/nb.ipynb", user="ann")])  # sealed
    a.append(Record(ts=now, route="reason", backend="o", model="m", status="cached", saved_usd=0.5,
                    notebook="/lab/w/nb.ipynb", user="ann"))
    b.append(Record(ts=now, route="reason", backend="o", model="m", status="ok", cost_usd=0.125,
                    notebook="other.ipynb", user="bob"))
    assert len(ledger.ledger_files(tmp_path)[1]) == 1
    assert scopes.spent_usd(tmp_path, "session", session="k-a") == 0.75
    assert scopes.spent_usd(tmp_path, "session", session="k-b") == 0.125
    assert scopes.spent_usd(tmp_path, "notebook", notebook="w/nb.ipynb") == 0.75
    assert scopes.spent_usd(tmp_path, "notebook", notebook="other.ipynb") == 0.125
    assert scopes.spent_usd(tmp_path, "total") == 0.875
    by_user = {r["route"]: (r["cost_usd"], r["saved_usd"], r["calls"], r["cache_hits"])
               for r in ledger.summarize(tmp_path, "\"user\" = 'ann'").to_dicts()}
    assert by_user == {"reason": (0.5, 0.5, 1, 1), "local": (0.25, 0.0, 1, 0)}
    assert ledger.summarize(tmp_path, "\"user\" = 'bob'")["cost_usd"].to_list() == [0.125]


def test_a_garbled_line_inside_a_live_file_costs_only_itself(tmp_path):
    w = LedgerWriter(tmp_path, session="s")
    w.append(full_record(0))
    w.close()
    with open(w.live_path, "a", encoding="utf-8") as fh:
        fh.write('{"ts": 3.0, "route": "reason", "model": }\n')  # not JSON
        fh.write('{"ts": 4.0, "cost_usd": 9.0}\n')  # JSON, but no id or route: not a ledger row
        fh.write('[1, 2, 3]\n')
    w.append(full_record(1))
    df = ledger.read(tmp_path)
    assert df["id"].to_list() == ["id-0", "id-1"] and df["cost_usd"].sum() == 0.5
    assert ledger.summarize(tmp_path)["calls"].to_list() == [2]
