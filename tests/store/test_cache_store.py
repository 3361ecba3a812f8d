"""The answer cache on its own: what a key depends on, what an answer keeps, how leases are shared
(a real SQLite file; other owners are real processes). Written from mutants of store/cache.py (issue 17)."""

import re
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hybridnb.errors import CacheError
from hybridnb.store import cache as cache_module
from hybridnb.store.cache import Cache, cache_key, normalise
from hybridnb.types import Request, Usage

REQ = Request("What is 2+2?", "gpt-4o-mini", system="terse", max_tokens=5, temperature=0.0)


def test_a_key_is_a_stable_sha256_of_everything_that_shapes_the_answer():
    key = cache_key("reason", "openai", "http://127.0.0.1:1/v1", REQ)
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == cache_key("reason", "openai", "http://127.0.0.1:1/v1",
                            Request("What is 2+2?", "gpt-4o-mini", system="terse", max_tokens=5,
                                    tags={"cell": "7"}))  # tags are not part of the key
    others = {
        cache_key("local", "openai", "http://127.0.0.1:1/v1", REQ),
        cache_key("reason", "vllm", "http://127.0.0.1:1/v1", REQ),
        cache_key("reason", "openai", "http://127.0.0.1:2/v1", REQ),
        cache_key("reason", "openai", "http://127.0.0.1:1/v1", Request("What is 2+3?", "gpt-4o-mini",
                                                                        system="terse", max_tokens=5)),
        cache_key("reason", "openai", "http://127.0.0.1:1/v1", Request("What is 2+2?", "gpt-4o",
                                                                        system="terse", max_tokens=5)),
        cache_key("reason", "openai", "http://127.0.0.1:1/v1", Request("What is 2+2?", "gpt-4o-mini",
                                                                        system="terse", max_tokens=6)),
    }
    assert key not in others and len(others) == 6
    # no endpoint and an empty endpoint are the same place; a lone surrogate in a prompt still hashes
    assert cache_key("reason", "openai", None, REQ) == cache_key("reason", "openai", "", REQ)
    assert len(cache_key("reason", "openai", None, Request("bad \udc80 text", "m"))) == 64


def test_an_answer_comes_back_with_its_usage_cost_model_and_label_probabilities(tmp_path):
    c = Cache(tmp_path)
    assert c.get("k1") is None and len(c) == 0 and bool(c)  # an empty cache is still a cache
    c.put("k1", "four", Usage(12, 3, 4), 0.0025, "gpt-4o-mini", {"yes": 0.75, "no": 0.25})
    c.put("k2", "lone \udc80 surrogate", Usage(1, 2), 0.5, "m")
    a = c.get("k1")
    assert (a.text, a.usage, a.cost_usd, a.model, a.probs) == (
        "four", Usage(12, 3, 4), 0.0025, "gpt-4o-mini", {"yes": 0.75, "no": 0.25})
    b = c.get("k2")
    assert (b.text, b.usage, b.cost_usd, b.model, b.probs) == ("lone ? surrogate", Usage(1, 2, 0), 0.5, "m", None)
    c.put("k1", "five", Usage(1, 1), 0.1, "gpt-4o")  # a newer answer replaces the old one
    assert (c.get("k1").text, c.get("k1").model, c.get("k1").probs, len(c)) == ("five", "gpt-4o", None, 2)
    assert Cache(tmp_path).get("k1").text == "five"  # persistent: another instance reads the same file


def test_many_answers_are_written_and_read_in_chunks_without_losing_one(tmp_path):
    c = Cache(tmp_path)
    keys = [f"key-{i}" for i in range(1203)]
    c.put_many([])  # nothing to write is not an error
    c.put_many([(k, f"answer {i}", Usage(i, 1), i / 100, "m") for i, k in enumerate(keys)])
    assert len(c) == 1203
    got = c.get_many(keys + ["missing"])
    assert sorted(got) == sorted(keys)
    assert all(got[k].text == f"answer {i}" and got[k].usage.input_tokens == i for i, k in enumerate(keys))
    assert c.get_many([]) == {}
    assert c.clear() == 1203 and len(c) == 0 and c.get("key-0") is None


def _other_process_takes(tmp_path, keys, ttl):
    code = textwrap.dedent(f"""
        from hybridnb.store.cache import Cache
        print(sorted(Cache({str(tmp_path)!r}).acquire({keys!r}, "other", {ttl!r})[0]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_lease_of_a_live_owner_is_respected_and_released(tmp_path):
    c = Cache(tmp_path)
    keys = [f"k{i}" for i in range(1100)]
    assert c.acquire([], "me", 60) == (set(), set())
    mine, held = c.acquire(keys, "me", 60)
    assert (mine, held) == (set(keys), set())
    assert c.acquire(keys[:3], "me", 60) == (set(keys[:3]), set())  # my own lease is mine again
    assert c.acquire(keys + ["free"], "you", 60) == ({"free"}, set(keys))  # every chunk is checked
    c.release(keys[:1050], "you")  # not yours: nothing is released
    assert c.acquire(["k0"], "you", 60) == (set(), {"k0"})
    c.release(keys, "me")
    assert c.acquire(keys, "you", 60) == (set(keys), set())
    c.release([], "you")


def test_an_expired_lease_or_one_whose_process_is_gone_is_taken_over(tmp_path):
    c = Cache(tmp_path)
    assert c.acquire(["old"], "me", -1.0) == ({"old"}, set())  # expired at once
    assert c.acquire(["old"], "you", 60) == ({"old"}, set())
    # a lease taken by a process that has exited (same host): its owner is gone
    assert _other_process_takes(tmp_path, ["orphan"], 600.0) == "['orphan']"
    assert c.acquire(["orphan"], "me", 60) == ({"orphan"}, set())


def test_a_lease_from_another_machine_is_trusted_until_it_expires(tmp_path):
    c = Cache(tmp_path)
    c.acquire(["x"], "me", 60)  # creates the tables
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    pid = int(gone.stdout)  # a process id no longer in use here: on another host it means nothing
    with sqlite3.connect(tmp_path / "cache.sqlite") as con:  # a kernel on another host sharing the home
        con.execute("INSERT INTO leases VALUES ('remote', 'them', ?, 'some-other-host', 9e99)", (pid,))
        con.execute("INSERT INTO leases VALUES ('remote-no-pid', 'them', NULL, NULL, 9e99)")
        con.execute("INSERT INTO leases VALUES ('remote-expired', 'them', ?, 'some-other-host', 1.0)", (pid,))
    assert c.acquire(["remote", "remote-no-pid", "remote-expired"], "me", 60) == (
        {"remote-expired"}, {"remote", "remote-no-pid"})


def _same_second(monkeypatch):
    """Every time stamp of the test is taken at 2026-11-30 12:00:00 (the real strftime, a fixed time)."""
    real, noon = time.strftime, time.struct_time((2026, 11, 30, 12, 0, 0, 0, 334, 0))
    monkeypatch.setattr("time.strftime", lambda fmt, *a: real(fmt, noon))


def _damage_and_clear(home: Path, junk: bytes) -> None:
    for p in home.glob("cache.sqlite*"):
        if ".damaged-" not in p.name:
            p.unlink()  # the fresh cache the last clear() started
    (home / "cache.sqlite").write_bytes(junk)
    c = Cache(home)
    with pytest.raises(CacheError):
        c.get("k")
    assert c.clear() == 0


def test_two_damaged_caches_in_one_second_keep_both(tmp_path, monkeypatch, capsys):
    """A second damaged cache moved aside in the same second does not overwrite the first one kept."""
    _same_second(monkeypatch)
    for junk in (b"first damage " * 200, b"second damage " * 200, b"third " * 200):
        _damage_and_clear(tmp_path, junk)
    kept = {p.name: p.read_bytes() for p in tmp_path.iterdir() if ".damaged-" in p.name and p.stat().st_size}
    assert {k: v[:6] for k, v in kept.items() if not k.endswith(("-wal", "-shm"))} == {
        "cache.sqlite.damaged-20261130T120000": b"first ",
        "cache.sqlite.damaged-20261130T120000-2": b"second",
        "cache.sqlite.damaged-20261130T120000-3": b"third ",
    }
    assert "moved to cache.sqlite.damaged-20261130T120000-3;" in capsys.readouterr().err


@pytest.mark.parametrize("left", ["-wal", "-shm"])
def test_a_stamp_taken_by_a_left_over_wal_or_shm_file_is_not_reused(tmp_path, monkeypatch, left):
    """A damaged copy's -wal or -shm file alone (its database deleted by hand) still holds the name."""
    _same_second(monkeypatch)
    (tmp_path / f"cache.sqlite.damaged-20261130T120000{left}").write_bytes(b"left over")
    _damage_and_clear(tmp_path, b"junk " * 200)
    assert (tmp_path / "cache.sqlite.damaged-20261130T120000-2").read_bytes() == b"junk " * 200
    assert (tmp_path / f"cache.sqlite.damaged-20261130T120000{left}").read_bytes() == b"left over"


def test_clear_drops_answers_and_leases(tmp_path):
    c = Cache(tmp_path)
    c.put("a", "x", Usage(), 0.0, "m")
    c.acquire(["a"], "them", 600)
    assert c.clear() == 1
    assert c.acquire(["a"], "me", 60) == ({"a"}, set())


def test_a_damaged_cache_names_itself_and_is_moved_aside_by_clear(tmp_path, capsys):
    (tmp_path / "cache.sqlite").write_bytes(b"this is not a database" * 100)
    c = Cache(tmp_path)
    with pytest.raises(CacheError) as e:
        c.get("k")
    assert str(e.value).startswith(f"the answer cache {tmp_path / 'cache.sqlite'} is damaged or unreadable "
                                   "(DatabaseError: file is not a database); nothing was sent.")
    c.release(["k"], "me")  # best effort: no error
    assert c.clear() == 0
    aside = sorted(p.name for p in tmp_path.iterdir() if ".damaged-" in p.name)
    assert len(aside) == 1 and re.fullmatch(r"cache\.sqlite\.damaged-\d{8}T\d{6}", aside[0])
    assert (tmp_path / aside[0]).read_bytes() == b"this is not a database" * 100  # kept for a look
    assert f"the damaged cache was moved to {aside[0]}; a fresh cache starts now" in capsys.readouterr().err
    c.put("k", "fresh", Usage(), 0.0, "m")
    assert c.get("k").text == "fresh" and len(c) == 1


def test_a_cache_from_before_label_probabilities_gains_the_column(tmp_path):
    with sqlite3.connect(tmp_path / "cache.sqlite") as con:
        con.execute("CREATE TABLE answers (key TEXT PRIMARY KEY, text TEXT NOT NULL, input_tokens INTEGER, "
                    "output_tokens INTEGER, cached_tokens INTEGER, cost_usd REAL, model TEXT, created REAL)")
        con.execute("INSERT INTO answers VALUES ('old', 'kept', 1, 2, 0, 0.5, 'm', 0)")
    c = Cache(tmp_path)
    assert (c.get("old").text, c.get("old").probs) == ("kept", None)
    c.put("new", "t", Usage(), 0.0, "m", {"a": 1.0})
    assert c.get("new").probs == {"a": 1.0}


@pytest.mark.parametrize("text, norm", [
    ("What is  2+2?", "what is 2 2"),
    ("  Hello, WORLD!!  ", "hello world"),
    ("naïve café_bar", "naïve café_bar"),  # letters and underscores are word characters
    ("a\tb\nc", "a b c"),
])
def test_normalise_keeps_only_what_a_near_duplicate_may_not_differ_in(text, norm):
    assert normalise(text) == norm


def test_the_key_format_is_stable_so_answers_cached_by_an_earlier_run_still_hit():
    import hashlib
    import json

    req = Request("q", "m", system="s", max_tokens=3, temperature=0.5, choices=("a", "b"), json_schema={"t": 1})
    canonical = json.dumps(["reason", "openai", "", "m", {"choices": ["a", "b"], "json_schema": {"t": 1},
                                                          "max_tokens": 3, "system": "s", "temperature": 0.5}, "q"],
                           separators=(",", ":"))  # keys sorted, no spaces: the persisted format
    assert cache_key("reason", "openai", None, req) == hashlib.sha256(canonical.encode()).hexdigest()


def test_a_batch_of_answers_is_written_all_or_nothing(tmp_path):
    c = Cache(tmp_path)
    with pytest.raises(Exception):
        c.put_many([("good", "kept?", Usage(), 0.0, "m"), ("bad", "x", Usage(), object(), "m")])
    assert c.get("good") is None  # rolled back with the bad row
    c.put("after", "fine", Usage(), 0.0, "m")  # and the cache is usable again
    assert c.get("after").text == "fine"
    with pytest.raises(Exception):
        c.acquire(["k", object()], "me", 60)
    assert c.acquire(["k"], "you", 60) == ({"k"}, set())  # nothing was leased by the failed call


def test_a_cache_under_a_home_that_does_not_exist_yet_creates_it(tmp_path):
    c = Cache(tmp_path / "not" / "yet" / "there")
    c.put("k", "v", Usage(), 0.0, "m")
    assert c.get("k").text == "v" and (tmp_path / "not" / "yet" / "there" / "cache.sqlite").is_file()


def test_a_cache_file_with_a_foreign_answers_table_is_one_clear_error(tmp_path):
    with sqlite3.connect(tmp_path / "cache.sqlite") as con:  # some other tool's table under our name
        con.execute("CREATE TABLE answers (key TEXT PRIMARY KEY, text TEXT)")
    with pytest.raises(CacheError) as e:
        Cache(tmp_path).get("k")
    assert str(e.value).startswith(f"the answer cache {tmp_path / 'cache.sqlite'} is damaged or unreadable "
                                   "(OperationalError: no such column: input_tokens); nothing was sent.")


_OPENER = """
import os, sys, time
from hybridnb.store.cache import Cache
go = sys.argv[2]
print("READY", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
Cache(sys.argv[1]).get("no such key")
print("OK", flush=True)
"""


def test_kernels_opening_a_new_cache_at_the_same_instant_all_get_it(tmp_path):
    """Switching a brand-new database to WAL can answer "locked" at once: that is waiting, not damage."""
    import subprocess
    import sys

    for attempt in range(3):
        home, go = tmp_path / f"home{attempt}", tmp_path / f"go{attempt}"
        procs = [subprocess.Popen([sys.executable, "-c", _OPENER, str(home), str(go)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(6)]
        assert [p.stdout.readline().strip() for p in procs] == ["READY"] * 6
        go.touch()
        outs = [p.communicate(timeout=120) for p in procs]
        assert [(p.returncode, o[0].strip()) for p, o in zip(procs, outs)] == [(0, "OK")] * 6, outs


def _damage_in_place(path) -> None:
    """Checkpoint the WAL into the file (a real second connection), then overwrite the file with zeros:
    every connection still open on it now reads a page that is not a database."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    path.write_bytes(b"\0" * path.stat().st_size)


def test_a_cache_damaged_while_open_is_replaced_for_every_thread_twice_over(tmp_path, capsys):
    from concurrent.futures import ThreadPoolExecutor

    c = Cache(tmp_path)
    path = tmp_path / "cache.sqlite"
    with ThreadPoolExecutor(1) as worker:  # one long-lived thread: its own connection, kept between calls
        def in_worker(fn):
            return worker.submit(fn).result()

        c.put("a", "x", Usage(), 0.0, "m")
        assert in_worker(lambda: c.get("a").text) == "x"  # both threads hold a connection now
        for n, key in enumerate(["b", "c"]):
            _damage_in_place(path)
            with pytest.raises(CacheError, match="file is not a database"):
                c.get("a")
            assert c.clear() == 0  # the damaged file goes aside, with its WAL and shared memory
            stamp = re.search(r"moved to cache\.sqlite\.damaged-(\d{8}T\d{6})", capsys.readouterr().err)[1]
            assert {p.name for p in tmp_path.iterdir() if ".damaged-" in p.name} >= \
                {f"cache.sqlite.damaged-{stamp}{s}" for s in ("", "-wal", "-shm")}
            in_worker(lambda: c.put(key, f"fresh {n}", Usage(1, 2), 0.5, "m"))  # the worker reopens too
            assert c.get(key).text == f"fresh {n}" and len(c) == 1 and c.get("a") is None
            assert in_worker(lambda: (c.get(key).text, len(c))) == (f"fresh {n}", 1)


@pytest.mark.parametrize("error,waited", [
    (sqlite3.OperationalError("database is locked"), True),
    (sqlite3.OperationalError("database table is locked"), True),
    (sqlite3.OperationalError("database is busy"), True),
    (sqlite3.OperationalError("duplicate column name: probs"), True),
    (sqlite3.OperationalError("no such column: input_tokens"), False),
    (sqlite3.DatabaseError("database is locked"), False),  # not an OperationalError: damage
    (sqlite3.DatabaseError("file is not a database"), False),
])
def test_which_errors_opening_the_cache_are_waited_for(error, waited):
    assert cache_module._transient(error) is waited


def test_a_kernel_adding_the_probs_column_first_is_waited_for_not_damage(tmp_path, monkeypatch):
    """An old cache (no ``probs`` column) opened by two kernels: the other adds the column between our check
    and our ALTER (a real second connection, run as our ALTER starts); ours retries and finds it there."""
    path = tmp_path / "cache.sqlite"
    old = cache_module._open_with_retry(path)
    old.execute("ALTER TABLE answers DROP COLUMN probs")
    old.close()
    real, opened = sqlite3.connect, []

    def connect(*args, **kwargs):
        con = real(*args, **kwargs)
        opened.append(con)

        def other_kernel_first(sql):
            if sql.startswith("ALTER TABLE answers ADD COLUMN probs") and len(opened) == 1:
                other = real(path, isolation_level=None)
                other.execute(sql)
                other.close()

        con.set_trace_callback(other_kernel_first)
        return con

    monkeypatch.setattr(sqlite3, "connect", connect)
    con = cache_module._open_with_retry(path, wait_s=5)
    assert len(opened) == 2  # failed once ("duplicate column"), opened again
    assert [r[1] for r in con.execute("PRAGMA table_info(answers)")][-1] == "probs"
    monkeypatch.undo()
    c = Cache(tmp_path)
    c.put("k", "kept", Usage(1, 2), 0.5, "m", probs={"a": 1.0})
    assert (c.get("k").text, c.get("k").probs) == ("kept", {"a": 1.0})
