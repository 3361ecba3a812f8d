""""Don't reason twice": a persistent answer cache shared by all kernels.

SQLite in WAL mode under ``<home>/cache.sqlite``; keyed by a hash of
route + backend + endpoint + model + generation parameters + prompt.  It
stores the answer, its usage and what it cost, so a hit can say how many
dollars it saved.  No credentials are part of the key or the value.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

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
    return hashlib.sha256(payload.encode()).hexdigest()


class Cache:
    """Thread-safe persistent cache; one connection per thread."""

    def __init__(self, home: Path | str):
        self.path = Path(home) / "cache.sqlite"
        self._local = threading.local()

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute(_SCHEMA)
            if "probs" not in {r[1] for r in con.execute("PRAGMA table_info(answers)")}:
                con.execute("ALTER TABLE answers ADD COLUMN probs TEXT")  # caches from before probs
            self._local.con = con
        return con

    def get(self, key: str) -> CachedAnswer | None:
        row = self._con().execute(f"SELECT {_COLS} FROM answers WHERE key=?", (key,)).fetchone()
        return None if row is None else _answer(row)

    def get_many(self, keys: list[str]) -> dict[str, CachedAnswer]:
        out: dict[str, CachedAnswer] = {}
        con = self._con()
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = f"SELECT key, {_COLS} FROM answers WHERE key IN ({','.join('?' * len(chunk))})"
            for k, *row in con.execute(q, chunk):
                out[k] = _answer(row)
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
            rows.append((k, t, u.input_tokens, u.output_tokens, u.cached_input_tokens, c, m, now, probs))
        con = self._con()
        con.execute("BEGIN")
        con.executemany("INSERT OR REPLACE INTO answers (key, text, input_tokens, output_tokens, "
                        "cached_tokens, cost_usd, model, created, probs) VALUES (?,?,?,?,?,?,?,?,?)", rows)
        con.execute("COMMIT")

    def clear(self) -> int:
        """Delete every answer; returns how many were removed."""
        con = self._con()
        n = con.execute("SELECT count(*) FROM answers").fetchone()[0]
        con.execute("DELETE FROM answers")
        return n

    def __bool__(self) -> bool:  # a cache is a cache, even while empty (no COUNT(*) per call)
        return True

    def __len__(self) -> int:
        return self._con().execute("SELECT count(*) FROM answers").fetchone()[0]
