"""An opt-in semantic cache: near-duplicate prompts are served from an earlier answer.

``hybridnb.reason(prompt, cache="semantic")`` (or ``map(..., cache="semantic")``,
``%hybridnb config cache=semantic``): after the exact cache misses, a prompt is
embedded with the static 64-d model of ``tokenlearn-static-model`` (model2vec)
and compared with the prompts already answered *in the same scope* — route,
backend, endpoint, model and every generation parameter.  The nearest one is a
hit when its cosine similarity reaches ``cache_similarity`` (default 0.95) *and*
the two texts are near-literal (character similarity ≥ ``MIN_LEXICAL``): static
embeddings alone score "the parcel was late" and "… early" as identical, and a
cache that swaps those is worse than none.  A hit costs $0, is ledgered as
``cached`` with its ``similarity``, and says what it saved.

Off by default: exact is the safe default.  Vectors live in
``<home>/semantic.sqlite`` (WAL, shared by kernels); each process keeps a
per-scope matrix it extends incrementally.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from ..core.extras import require
from .cache import Cache, cache_key, normalise

#: default cosine similarity for a hit
DEFAULT_SIMILARITY = 0.95
#: and the character-level similarity the two prompts must also have (see the module docstring)
MIN_LEXICAL = 0.9

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    id INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, key TEXT NOT NULL UNIQUE,
    prompt TEXT NOT NULL, vec BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS vectors_scope ON vectors (scope, id);
"""

_model: list = []
_model_lock = threading.Lock()




def embed(texts: list[str]):
    """Unit-length static embeddings of the normalised texts (float32, one row per text)."""
    import numpy as np

    with _model_lock:
        if not _model:
            require("semantic")
            import static_model
            from model2vec import StaticModel

            _model.append(StaticModel.from_pretrained(str(Path(static_model.__file__).parent / "model")))
    v = np.asarray(_model[0].encode([normalise(t) for t in texts]), dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms == 0, 1.0, norms)


def scope_of(route: str, backend: str, endpoint: str | None, request) -> str:
    """Everything but the prompt: only answers to the same question form can match."""
    payload = json.dumps([route, backend, endpoint or "", request.model, request.params()], sort_keys=True,
                         default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def lexical(a: str, b: str) -> float:
    """Character similarity of two prompts, case and whitespace ignored."""
    x, y = " ".join(a.lower().split()), " ".join(b.lower().split())
    return 1.0 if x == y else difflib.SequenceMatcher(None, x, y, autojunk=False).ratio()


class _Index:
    """The vectors under one home: SQLite on disk, a per-scope matrix in memory."""

    def __init__(self, home: Path):
        self.path = Path(home) / "semantic.sqlite"
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None
        self._scopes: dict[str, tuple[int, list[str], list[str], Any]] = {}  # scope → (last id, keys, prompts, M)

    def con(self) -> sqlite3.Connection:
        if self._con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._con = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.executescript(_SCHEMA)
        return self._con

    def matrix(self, scope: str):
        """(keys, prompts, matrix) for ``scope``, reading only rows added since the last look."""
        import numpy as np

        last, keys, prompts, m = self._scopes.get(scope, (0, [], [], None))
        rows = self.con().execute("SELECT id, key, prompt, vec FROM vectors WHERE scope=? AND id>? ORDER BY id",
                                  (scope, last)).fetchall()
        if rows:
            new = np.stack([np.frombuffer(r[3], dtype=np.float32) for r in rows])
            m = new if m is None else np.vstack([m, new])
            keys, prompts, last = keys + [r[1] for r in rows], prompts + [r[2] for r in rows], rows[-1][0]
            self._scopes[scope] = (last, keys, prompts, m)
        return keys, prompts, m

    def add(self, items: list[tuple[str, str, str, Any]]) -> None:
        con = self.con()
        con.execute("BEGIN")
        con.executemany("INSERT OR IGNORE INTO vectors (scope, key, prompt, vec) VALUES (?,?,?,?)",
                        [(s, k, p, v.tobytes()) for s, k, p, v in items])
        con.execute("COMMIT")


_indexes: dict[Path, _Index] = {}


class SemanticCache:
    """The exact cache plus near-duplicate lookups; the dispatcher uses it in place of ``Cache``."""

    def __init__(self, exact: Cache, target: Any, similarity: float | None = None):
        require("semantic")
        self.exact = exact
        self.target = target
        sim = similarity if similarity is not None else target.settings.get("cache_similarity", DEFAULT_SIMILARITY)
        self.similarity = float(sim if sim is not None else DEFAULT_SIMILARITY)
        home = Path(target.settings.home)
        self.index = _indexes.get(home) or _indexes.setdefault(home, _Index(home))
        self._pending: dict[str, tuple[str, str]] = {}  # exact key → (scope, prompt) of requests sent

    def __bool__(self) -> bool:
        return True

    def __getattr__(self, name: str):  # leases, clear, … : the exact cache's
        if name == "exact":
            raise AttributeError(name)
        return getattr(self.exact, name)

    def get_many(self, keys):
        return self.exact.get_many(keys)

    def put_many(self, items) -> None:
        """Store answers exactly, then index the prompts they answered."""
        self.exact.put_many(items)
        todo = [(k, *self._pending.pop(k)) for k, *_ in items if k in self._pending]
        if todo:
            vecs = embed([p for _, _, p in todo])
            with self.index._lock:
                self.index.add([(s, k, p, v) for (k, s, p), v in zip(todo, vecs)])

    def serve_similar(self, dispatcher, requests, groups: list[list[int]], keys, deliver) -> list[list[int]]:
        """Deliver near-duplicate hits for the groups the exact cache missed; return the rest."""
        from ..core.records import cached_outcome

        t = self.target
        firsts = [requests[g[0]] for g in groups]
        scopes = [scope_of(t.route, t.backend_name, t.endpoint, r) for r in firsts]
        vecs = embed([r.prompt for r in firsts])
        rest, records, found = [], [], {}
        with self.index._lock:
            for g, r, s, v in zip(groups, firsts, scopes, vecs):
                hit = self._nearest(s, r.prompt, v)
                if hit is None:
                    rest.append(g)
                    self._pending[keys[g[0]]] = (s, r.prompt)
                else:
                    found[tuple(g)] = hit
        answers = self.exact.get_many(list({k for k, _ in found.values()}))
        for g, (k, sim) in found.items():
            if k not in answers:  # the answer was cleared: send it
                rest.append(list(g))
                continue
            for i in g:
                resp, rec = cached_outcome(requests[i], t, dispatcher.session, answers[k])
                rec.similarity = sim
                records.append(rec)
                deliver(i, resp)
        if records:
            dispatcher.writer(t.settings.home).extend(records)
            dispatcher.publish(records)
        return rest

    def _nearest(self, scope: str, prompt: str, vec) -> tuple[str, float] | None:
        keys, prompts, m = self.index.matrix(scope)
        if m is None:
            return None
        sims = m @ vec
        for j in sims.argsort()[::-1][:5]:  # the best few by meaning, then the lexical guard
            if sims[j] < self.similarity:
                break
            if lexical(prompt, prompts[j]) >= MIN_LEXICAL:
                return keys[j], float(min(1.0, sims[j]))
        return None


__all__ = ["DEFAULT_SIMILARITY", "SemanticCache", "cache_key", "embed", "scope_of"]
