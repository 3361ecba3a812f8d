""""Don't reason twice": a persistent answer cache shared by all kernels.

SQLite in WAL mode under ``<home>/cache.sqlite``; keyed by a hash of
route + backend + endpoint + model + generation parameters + prompt.  It
stores the answer, its usage and what it cost, so a hit can say how many
dollars it saved.  No credentials are part of the key or the value.
"""

from __future__ import annotations

import hashlib
import json
import re
import os
import socket
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import CacheError
from ..types import Request, Usage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    input_tokens INTEGER, output_tokens INTEGER, cached_tokens INTEGER,
    cost_usd REAL, model TEXT, created REAL, probs TEXT
)
"""
_COLS = "text, input_tokens, output_tokens, cached_tokens, cost_usd, model, probs"


@dataclass
class CachedAnswer:
    text: str
    usage: Usage
    cost_usd: float
    model: str
    probs: dict[str, float] | None = None  # scored choices: a probability per label


def _answer(row) -> CachedAnswer:
    probs = json.loads(row[6]) if row[6] else None
    return CachedAnswer(row[0], Usage(row[1], row[2], row[3]), row[4], row[5], probs)


def cache_key(route: str, backend: str, endpoint: str | None, request: Request) -> str:
    """Stable key for an answer; endpoint is a base URL with any credentials removed."""
    payload = json.dumps(
        [route, backend, endpoint or "", request.model, request.params(), request.prompt],
        sort_keys=True, default=str, separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


_LEASES = """
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY, owner TEXT NOT NULL, pid INTEGER, host TEXT, expires REAL
)
"""


def _transient(e: sqlite3.DatabaseError) -> bool:
    """Another process is making the same database at this moment (locked, or it just added a column): not damage."""
    return isinstance(e, sqlite3.OperationalError) and any(w in str(e) for w in ("locked", "busy", "duplicate column"))


def _open_with_retry(path: Path, wait_s: float = 30.0) -> sqlite3.Connection:
    """Open the cache and make its schema; two kernels doing it at the same instant wait for each other
    (switching a new database to WAL can report "locked" at once, without the busy timeout)."""
    deadline = time.monotonic() + wait_s
    while True:
        con = sqlite3.connect(path, timeout=wait_s, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute(_SCHEMA)
            con.execute(_LEASES)
            if "probs" not in {r[1] for r in con.execute("PRAGMA table_info(answers)")}:
                con.execute("ALTER TABLE answers ADD COLUMN probs TEXT")  # caches from before probs
            return con
        except sqlite3.DatabaseError as e:
            con.close()
            if not (_transient(e) and time.monotonic() < deadline):
                raise _damaged(path, e) from None
            time.sleep(0.05)


def _damaged(path: Path, e: Exception) -> CacheError:
    return CacheError(f"the answer cache {path} is damaged or unreadable ({type(e).__name__}: {e}); "
                      f"nothing was sent. `%hybridnb cache clear` (or hybridnb.clear_cache()) moves it aside "
                      f"and starts a fresh one")


def _pid_alive(pid: int | None, host: str | None) -> bool:
    if not pid or host != socket.gethostname():
        return True  # another machine: trust the expiry
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _text(t: str) -> str:
    """Text SQLite can store (a lone surrogate becomes "?")."""
    try:
        t.encode("utf-8")
        return t
    except UnicodeEncodeError:
        return t.encode("utf-8", "replace").decode("utf-8")


class Cache:
    """Thread-safe persistent cache; one connection per thread.

    Pay once across kernels: before sending, a process takes a *lease* on each
    key (:meth:`acquire`); another process asking the same prompt sees the lease
    and waits for the answer instead of paying again.  A lease ends when its
    owner releases it, when it expires, or when its owner process is gone.
    A damaged database raises one :class:`~hybridnb.errors.CacheError`;
    :meth:`clear` recovers by moving it aside.
    """

    def __init__(self, home: Path | str):
        self.path = Path(home) / "cache.sqlite"
        self._local = threading.local()
        self._gen = 0

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is not None and getattr(self._local, "gen", -1) != self._gen:
            con.close()
            con = None
        if con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = _open_with_retry(self.path)
            self._local.con, self._local.gen = con, self._gen
        return con

    def _run(self, fn):
        try:
            return fn(self._con())
        except sqlite3.DatabaseError as e:
            raise _damaged(self.path, e) from None

    def get(self, key: str) -> CachedAnswer | None:
        row = self._run(lambda con: con.execute(f"SELECT {_COLS} FROM answers WHERE key=?", (key,)).fetchone())
        return None if row is None else _answer(row)

    def get_many(self, keys: list[str]) -> dict[str, CachedAnswer]:
        out: dict[str, CachedAnswer] = {}

        def fetch(con):
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                q = f"SELECT key, {_COLS} FROM answers WHERE key IN ({','.join('?' * len(chunk))})"
                for k, *row in con.execute(q, chunk):
                    out[k] = _answer(row)
        self._run(fetch)
        return out

    def put(self, key: str, text: str, usage: Usage, cost_usd: float, model: str, probs=None) -> None:
        self.put_many([(key, text, usage, cost_usd, model, probs)])

    def put_many(self, items) -> None:
        if not items:
            return
        now = time.time()
        rows = []
        for k, t, u, c, m, *rest in items:  # (key, text, usage, cost, model[, probs])
            probs = json.dumps(rest[0]) if rest and rest[0] else None
            rows.append((k, _text(t), u.input_tokens, u.output_tokens, u.cached_input_tokens, c, m, now, probs))

        def write(con):
            con.execute("BEGIN")
            try:
                con.executemany("INSERT OR REPLACE INTO answers (key, text, input_tokens, output_tokens, "
                                "cached_tokens, cost_usd, model, created, probs) VALUES (?,?,?,?,?,?,?,?,?)", rows)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        self._run(write)

    # ---- leases: pay once across kernels ------------------------------------
    def acquire(self, keys: list[str], owner: str, ttl_s: float) -> tuple[set[str], set[str]]:
        """Lease ``keys`` for ``owner``: (keys now ours, keys another live owner holds)."""
        if not keys:
            return set(), set()
        now, pid, host = time.time(), os.getpid(), socket.gethostname()

        def take(con):
            con.execute("BEGIN IMMEDIATE")
            try:
                held = {}
                for i in range(0, len(keys), 500):
                    chunk = keys[i:i + 500]
                    q = f"SELECT key, owner, pid, host, expires FROM leases WHERE key IN ({','.join('?' * len(chunk))})"
                    for k, o, p, h, exp in con.execute(q, chunk):
                        if o != owner and exp > now and _pid_alive(p, h):
                            held[k] = o
                mine = [k for k in keys if k not in held]
                con.executemany("INSERT OR REPLACE INTO leases VALUES (?,?,?,?,?)",
                                [(k, owner, pid, host, now + ttl_s) for k in mine])
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
            return set(mine), set(held)
        return self._run(take)

    def release(self, keys: list[str], owner: str) -> None:
        """End ``owner``'s leases on ``keys`` (waiters then read the answer, or send themselves)."""
        if not keys:
            return

        def drop(con):
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                con.execute(f"DELETE FROM leases WHERE owner=? AND key IN ({','.join('?' * len(chunk))})",
                            [owner, *chunk])
        try:
            self._run(drop)
        except CacheError:
            pass  # leases expire on their own

    def clear(self) -> int:
        """Delete every answer; a damaged cache is moved aside and replaced. Returns answers removed."""
        try:
            def wipe(con):
                n = con.execute("SELECT count(*) FROM answers").fetchone()[0]
                con.execute("DELETE FROM answers")
                con.execute("DELETE FROM leases")
                return n
            return self._run(wipe)
        except CacheError:
            return self._replace_damaged()

    def _replace_damaged(self) -> int:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
        self._gen += 1
        stamp = self._aside_stamp()
        for suffix in ("", "-wal", "-shm"):
            src = self.path.with_name(self.path.name + suffix)
            if src.exists():
                os.replace(src, src.with_name(f"{self.path.name}.damaged-{stamp}{suffix}"))
        print(f"hybridnb: the damaged cache was moved to {self.path.name}.damaged-{stamp}; "
              f"a fresh cache starts now", file=sys.stderr)
        self._con()
        return 0

    def _aside_stamp(self) -> str:
        """The time stamp for moving a damaged cache aside; ``-2``, ``-3``... when one is taken (same second)."""
        base = stamp = time.strftime("%Y%m%dT%H%M%S")
        n = 1
        while any(self.path.with_name(f"{self.path.name}.damaged-{stamp}{s}").exists() for s in ("", "-wal", "-shm")):
            n += 1
            stamp = f"{base}-{n}"
        return stamp

    def __bool__(self) -> bool:  # a cache is a cache, even while empty (no COUNT(*) per call)
        return True

    def __len__(self) -> int:
        return self._run(lambda con: con.execute("SELECT count(*) FROM answers").fetchone()[0])


_PUNCT = re.compile(r"[^\w\s]+")


def normalise(text: str) -> str:
    """Lower case, punctuation as spaces, single spaces: what a near-duplicate may differ in."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())
