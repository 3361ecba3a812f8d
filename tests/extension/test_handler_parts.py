"""The summary handler's parts on their own: settings fallback, the change signature, the throttle and
the state cache (real ledger files, no server). Written from mutants of notebook/server/_handlers.py
(issue 17)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from hybridnb.notebook.server import _handlers
from hybridnb.notebook.server._handlers import _fresh, _settings, _signature, compute
from hybridnb.store import ledger
from hybridnb.store.ledger import LedgerWriter, Record


@pytest.fixture(autouse=True)
def _empty_cache():
    _handlers._cache.clear()
    yield
    _handlers._cache.clear()


def _spend(home: Path, session: str, cost: float) -> None:
    w = LedgerWriter(home, session=session)
    w.append(Record(ts=1.0, route="reason", backend="openai", model="gpt-4o-mini", status="ok", cost_usd=cost))
    w.close()


def test_settings_come_from_the_servers_root_dir(ledger_home, tmp_path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    (root / "hybridnb.toml").write_text("budget_usd = 2.5\nbudget_per = 'day'\nbudget_warn_fraction = 0.5\n")
    home, budget, note = _settings(str(root))
    assert (home, budget, note) == (ledger_home, (2.5, "day", 0.5), "")
    monkeypatch.chdir(root)
    assert _settings(None)[1] == (2.5, "day", 0.5)  # no root dir: the working directory's settings


def test_unreadable_settings_fall_back_to_the_home_and_say_so(ledger_home, tmp_path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    (root / "hybridnb.toml").write_text("budget_usd = = broken")
    home, budget, note = _settings(str(root))
    assert (home, budget) == (ledger_home, (None, "session", 0.8))
    assert note.startswith("settings unreadable: ") and "hybridnb.toml" in note
    monkeypatch.setenv("HYBRIDNB_HOME", "~/elsewhere")
    assert _settings(str(root))[0] == Path("~/elsewhere").expanduser()


def test_the_signature_changes_with_the_ledger_and_the_kernels_files(tmp_path):
    assert _signature(tmp_path) == ()  # neither folder exists yet
    _spend(tmp_path, "s1", 1.0)
    one = _signature(tmp_path)
    assert [name for name, _, _ in one] == ["s1.jsonl"]
    _spend(tmp_path, "s1", 1.0)
    two = _signature(tmp_path)
    assert two != one and two[0][1] > one[0][1]  # the same file, grown
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "k.json").write_text("{}")
    assert [name for name, _, _ in _signature(tmp_path)] == ["s1.jsonl", "k.json"]


@pytest.mark.parametrize("age, took, same, fresh", [
    (29.9, 0.0, True, True), (30.0, 0.0, True, False),  # unchanged: re-read after IDLE_TTL_S
    (1.9, 0.0, False, True), (2.0, 0.0, False, False),  # changed: after BUSY_MIN_S ...
    (4.9, 1.0, False, True), (5.0, 1.0, False, False),  # ... or BUSY_FACTOR x the last build time
])
def test_the_throttle_boundaries(monkeypatch, age, took, same, fresh):
    monkeypatch.setattr(_handlers, "IDLE_TTL_S", 30.0)
    monkeypatch.setattr(_handlers, "BUSY_MIN_S", 2.0)
    monkeypatch.setattr(_handlers, "BUSY_FACTOR", 5.0)
    entry = (100.0, took, ("sig",), {})
    assert _fresh(entry, ("sig",) if same else ("other",), 100.0 + age) is fresh


def test_compute_serves_a_cached_state_until_the_ledger_changes(ledger_home):
    budget, scope = (None, "session", 0.8), {"kernel": None, "notebook": None}
    _spend(ledger_home, "s1", 1.0)
    first = compute(ledger_home, budget, "", scope, {})
    assert first["all"]["cost_usd"] == 1.0 and first["note"] == ""
    assert compute(ledger_home, budget, "", scope, {}) is first  # unchanged ledger: the same state
    assert compute(ledger_home, budget, "", scope, {}, fresh=True) is not first
    _spend(ledger_home, "s2", 2.0)
    assert compute(ledger_home, budget, "", scope, {})["all"]["cost_usd"] == 3.0
    other = compute(ledger_home, budget, "", {"kernel": "k", "notebook": None}, {})
    assert other is not compute(ledger_home, budget, "", scope, {})  # one cache entry per scope


def test_a_settings_note_is_appended_to_the_states_own_note(ledger_home):
    budget, scope = (None, "session", 0.8), {"kernel": None, "notebook": None}
    s = compute(ledger_home, budget, "settings unreadable: x", scope, {})
    assert s["note"].endswith("; settings unreadable: x") and len(s["note"]) > len("; settings unreadable: x")
    _spend(ledger_home, "s1", 1.0)
    assert compute(ledger_home, budget, "settings unreadable: x", scope, {}, fresh=True)["note"] \
        == "settings unreadable: x"


def test_an_unreadable_ledger_gives_an_empty_state_that_says_why(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setattr(ledger, "ROTATE_ROWS", 2)
    w = LedgerWriter(home, session="s")
    w.extend([Record(ts=1.0 + i, route="reason", backend="openai", model="m", status="ok", cost_usd=0.5)
              for i in range(2)])  # sealed into a Parquet segment
    w.close()
    assert ledger.read(home).height == 2  # the segment is checked (and remembered) here
    (seg,) = ledger.ledger_files(home)[1]
    st = seg.stat()
    seg.write_bytes(b"\0" * st.st_size)  # then rewritten in place, size and time kept: DuckDB cannot read it
    os.utime(seg, ns=(st.st_atime_ns, st.st_mtime_ns))
    s = compute(home, (None, "session", 0.8), "", {"kernel": None, "notebook": None}, {})
    assert re.fullmatch(r"ledger unreadable: \w*(Error|Exception): .+", s["note"], re.S), s["note"]
    assert "NoneType" not in s["note"] and s["all"]["cost_usd"] == 0 and s["home"] == str(home)
    assert "ledger unreadable" in s["markdown"]


def test_running_kernels_mark_their_sessions(ledger_home):
    kid = "6f1c2a0e-1111-4aaa-8bbb-000000000001"
    _spend(ledger_home, f"k-{kid}", 1.0)
    _spend(ledger_home, "k-other", 2.0)
    s = compute(ledger_home, (None, "session", 0.8), "", {"kernel": None, "notebook": None}, {kid: "w/nb.ipynb"})
    marks = {x["session"]: (x["running"], x["kernel"]) for x in s["sessions"]}
    assert marks == {f"k-{kid}": (True, kid), "k-other": (False, None)}


def test_the_cached_state_records_how_long_it_took_to_build(ledger_home):
    _spend(ledger_home, "s1", 1.0)
    before = time.monotonic()
    compute(ledger_home, (None, "session", 0.8), "", {"kernel": None, "notebook": None}, {})
    after = time.monotonic()
    [(at, took, _, _)] = _handlers._cache.values()
    assert before <= at <= after and 0.0 <= took <= after - before


def test_the_state_cache_is_bounded(ledger_home):
    budget = (None, "session", 0.8)
    for i in range(70):
        compute(ledger_home, budget, "", {"kernel": f"k{i}", "notebook": None}, {})
        assert len(_handlers._cache) <= 65
    assert len(_handlers._cache) < 70


async def test_a_broken_toml_in_the_servers_root_dir_is_a_note_on_the_served_page(jp_fetch, jp_root_dir, ledger_home):
    import json

    _spend(ledger_home, "s1", 1.0)
    (jp_root_dir / "hybridnb.toml").write_text("budget_usd = = broken")
    for path in ("summary", "summary.md"):
        r = await jp_fetch("hybridnb", path, params={"fresh": "1"})
        assert r.code == 200
    s = json.loads((await jp_fetch("hybridnb", "summary", params={"fresh": "1"})).body)
    assert s["all"]["cost_usd"] == 1.0 and s["report"]["budget"]["state"] == "none"
    assert "settings unreadable: " in s["note"] and "hybridnb.toml" in s["note"]
    (jp_root_dir / "hybridnb.toml").write_text("budget_usd = 2.0\nbudget_per = 'total'\n")  # fixed: the note goes
    s = json.loads((await jp_fetch("hybridnb", "summary", params={"fresh": "1"})).body)
    assert "settings unreadable" not in s["note"] and s["report"]["budget"]["limit_usd"] == 2.0


def _writing_during_builds(monkeypatch, home: Path, writes: int) -> list[int]:
    """The real build, with a kernel appending a real ledger record right after each of the first ``writes`` builds."""
    real, builds = _handlers._summary.build_state, []

    def build_while_a_kernel_writes(*a, **kw):
        state = real(*a, **kw)
        builds.append(1)
        if len(builds) <= writes:
            _spend(home, f"k-writer-{len(builds)}", 0.5)
        return state

    monkeypatch.setattr(_handlers._summary, "build_state", build_while_a_kernel_writes)
    return builds


def test_a_state_built_while_a_kernel_wrote_is_built_again_from_one_ledger(ledger_home, monkeypatch):
    _spend(ledger_home, "s1", 1.0)
    builds = _writing_during_builds(monkeypatch, ledger_home, writes=1)
    s = compute(ledger_home, (None, "session", 0.8), "", {"kernel": None, "notebook": None}, {})
    assert len(builds) == 2 and s["all"]["cost_usd"] == 1.5  # the record written during the first build is in
    [(_, _, sig, cached)] = _handlers._cache.values()
    assert cached is s and sig == _signature(ledger_home)  # served from cache until the ledger changes again
    assert compute(ledger_home, (None, "session", 0.8), "", {"kernel": None, "notebook": None}, {}) is s


def test_a_ledger_that_never_settles_is_built_at_most_build_tries_times_and_read_again_next_time(
        ledger_home, monkeypatch):
    _spend(ledger_home, "s1", 1.0)
    builds = _writing_during_builds(monkeypatch, ledger_home, writes=10)
    s = compute(ledger_home, (None, "session", 0.8), "", {"kernel": None, "notebook": None}, {})
    assert len(builds) == _handlers.BUILD_TRIES == 3
    assert s["all"]["cost_usd"] == 2.0  # what the last build saw: two of the three writes
    [(_, _, sig, _)] = _handlers._cache.values()
    assert sig != _signature(ledger_home)  # kept as out of date: the next poll past the throttle reads again
    again = compute(ledger_home, (None, "session", 0.8), "", {"kernel": None, "notebook": None}, {}, fresh=True)
    assert again["all"]["cost_usd"] >= 2.5
