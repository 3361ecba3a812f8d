"""The corpus workflow end to end, resumable from its DuckDB file."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from ..errors import CorpusError
from . import _store
from ._distil import stage_distil, stage_validate
from ._spec import load_spec
from ._stages import stage_embed, stage_generate, stage_rounds, stage_sample, stage_taxonomy_v1, stage_topics
from ._taxonomy import Taxonomy

STAGES = ("generate", "embed", "topics", "taxonomy", "sample", "label_rounds", "validate", "distil",
          "report")


@dataclass
class Options:
    """Knobs of a run; the ones that change the data are fixed for a DB file."""

    n: int = 230_000
    seed: int = 0
    shares: str | None = None
    embedder: str = "static"
    topic_method: str = "kmeans"
    n_topics: int = 30
    sample_size: int | None = None
    review_per_round: int = 10
    validate_size: int = 30
    max_rounds: int = 5
    stability: float = 0.95
    trust: str = "auto"

    def identity(self) -> dict:
        d = asdict(self)
        d.pop("trust")
        return d


@dataclass
class Result:
    """What a run produced: figures, tables and where the report is."""

    db: Path
    report: Path
    timings: dict[str, float]
    quality: dict[str, float]
    ranking: pl.DataFrame
    costs: pl.DataFrame
    resumed: list[str] = field(default_factory=list)

    @property
    def report_path(self) -> Path:
        return self.report

    def __getitem__(self, key):  # dict-style access for the CLI
        return getattr(self, key)

    def _repr_markdown_(self) -> str:
        return self.report.read_text(encoding="utf-8")


class Workflow:
    """Holds the DB connection and lazily loaded arrays; runs or skips each stage."""

    def __init__(self, db: "str | Path", opts: Options, progress: bool = True):
        self.db, self.opts, self.progress = Path(db), opts, progress
        self.spec = load_spec(opts.shares)
        self.con = _store.open_store(self.db)
        self.run_id = self._check_identity()
        self._cache: dict = {}

    def _check_identity(self) -> str:
        ident = json.dumps(self.opts.identity(), sort_keys=True, default=str)
        row = self.con.execute("SELECT value FROM schema_info WHERE key = 'options'").fetchall()
        if row and row[0][0] != ident:
            raise CorpusError(f"{self.db} was built with other options ({row[0][0]}); "
                              f"use a new --db path or delete the file")
        run_id = uuid.uuid4().hex[:10]  # this DB file's run, as tagged in the ledger
        self.con.execute("INSERT OR IGNORE INTO schema_info VALUES ('options', ?), ('run_id', ?)",
                         [ident, run_id])
        return self.con.execute("SELECT value FROM schema_info WHERE key = 'run_id'").fetchall()[0][0]

    # ---- lazily loaded state ---------------------------------------------
    def segments(self) -> pl.DataFrame:
        if "seg" not in self._cache:
            self._cache["seg"] = _store.frame(self.con, "SELECT * FROM segments ORDER BY segment_id")
        return self._cache["seg"]

    def texts(self) -> list[str]:
        if "texts" not in self._cache:
            self._cache["texts"] = self.segments()["text"].to_list()
        return self._cache["texts"]

    def segment_id(self, i: int) -> int:
        return int(self.segments()["segment_id"][int(i)])

    def embeddings(self) -> np.ndarray:
        if "emb" not in self._cache:
            self._cache["emb"] = _store.read_vectors(self.con)[1]
        return self._cache["emb"]

    def assignments(self) -> np.ndarray:
        return _store.frame(self.con, "SELECT topic_id FROM topic_assignments ORDER BY segment_id")[
            "topic_id"].to_numpy()

    def topics(self) -> pl.DataFrame:
        df = _store.frame(self.con, "SELECT * FROM topics ORDER BY topic_id")
        return df.with_columns(pl.col("keywords").str.split(" "),
                               pl.col("representative_ids").str.json_decode(pl.List(pl.Int64)))

    def sample_index(self, split: str) -> np.ndarray:
        ids = _store.frame(self.con, f"SELECT segment_id FROM sample WHERE split = '{split}' "
                                     "ORDER BY segment_id")["segment_id"].to_numpy()
        return np.searchsorted(self.segments()["segment_id"].to_numpy(), ids)

    def taxonomy(self, version: int) -> Taxonomy:
        df = _store.frame(self.con, f"SELECT * FROM taxonomy WHERE version = {version}")
        return Taxonomy(version, {r["category"]: {"keywords": r["keywords"].split(),
                                                  "topics": json.loads(r["topics"])}
                                  for r in df.iter_rows(named=True)})

    def save_taxonomy(self, tax: Taxonomy) -> None:
        _store.write_frame(self.con, "taxonomy", tax.frame().with_columns(created=pl.lit(dt.datetime.now())),
                           replace_where=f"version = {tax.version}")
        changes = pl.DataFrame(tax.changes, schema={"change": pl.String, "category": pl.String,
                                                    "detail": pl.String, "decided_by": pl.String})
        _store.write_frame(self.con, "taxonomy_changes", changes.with_columns(version=pl.lit(tax.version)),
                           replace_where=f"version = {tax.version}")

    def save_labels(self, idx, rnd: int, version: int, labels, res, fixed, split: str) -> None:
        by = {}
        for step_key, who in self.con.execute("SELECT key, decided_by FROM reason_calls WHERE step LIKE "
                                              "'review_round_%'").fetchall():
            by[step_key] = who
        ids = [self.segment_id(i) for i in idx]
        source = [("reason" if by.get(f"seg:{s}") == "reason" else "evidence+reason-review")
                  if i in fixed else "evidence" for i, s in enumerate(ids)]
        frame = pl.DataFrame({"segment_id": ids, "round": rnd, "taxonomy_version": version,
                              "label": list(labels), "secondary": pl.Series([None] * len(ids), dtype=pl.String),
                              "source": source, "split": split, "confidence": res.proba.max(1)})
        _store.write_frame(self.con, "labels", frame, replace_where=f"split = '{split}' AND round = {rnd}")

    def final_train_labels(self) -> np.ndarray:
        df = _store.frame(self.con, """SELECT segment_id, label FROM labels WHERE split = 'train'
            AND round = (SELECT max(round) FROM labels WHERE split = 'train') ORDER BY segment_id""")
        return df["label"].to_numpy()

    def final_train_shares(self) -> dict[str, float]:
        y = self.final_train_labels()
        names, counts = np.unique(y, return_counts=True)
        return {str(k): c / len(y) for k, c in zip(names, counts)}

    def bar(self, what: str, total: int):
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        pbar = tqdm(total=total, desc=what, unit="seg", leave=False, file=sys.stderr)

        def update(done: int, _total: int) -> None:
            pbar.update(done - pbar.n)
            if done >= _total:
                pbar.close()
        return update

    # ---- running ------------------------------------------------------------
    def stage(self, name: str, fn) -> tuple[float, bool]:
        """Run ``fn`` unless the DB says the stage is done; returns (seconds, skipped)."""
        if _store.stage_done(self.con, name):
            return 0.0, True
        started, t0 = dt.datetime.now(), time.perf_counter()
        self.con.execute("DELETE FROM runs WHERE stage = ? AND status != 'done'", [name])
        _store.record_run(self.con, name, "running", started, 0.0)
        rows = fn(self)
        seconds = time.perf_counter() - t0
        self.con.execute("DELETE FROM runs WHERE stage = ? AND status = 'running'", [name])
        _store.record_run(self.con, name, "done", started, seconds, rows or 0)
        if name == "generate":
            self._cache.clear()
        return seconds, False

    def step(self, name: str) -> tuple[float, bool]:
        """Run one named stage of :data:`STAGES` (skipped when the DB has it); prints its timing."""
        from ._output import stage_report

        fns = {"generate": stage_generate, "embed": stage_embed, "topics": stage_topics,
               "taxonomy": stage_taxonomy_v1, "sample": stage_sample, "label_rounds": stage_rounds,
               "validate": stage_validate, "distil": stage_distil, "report": stage_report}
        if name not in fns:
            raise CorpusError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
        if name == "report":
            self.con.execute("DELETE FROM runs WHERE stage = 'report'")  # always refresh the report
        seconds, skipped = self.stage(name, fns[name])
        if self.progress:
            print(f"[corpus] {name:<13} {'resumed from DB' if skipped else f'{seconds:7.1f} s'}",
                  file=sys.stderr, flush=True)
        return seconds, skipped

    def close(self) -> None:
        self.con.close()

    def result(self, timings: dict[str, float] | None = None, resumed: list[str] | None = None) -> Result:
        """The run's figures and tables as a :class:`Result` (after the report stage)."""
        from ._output import build_result

        if timings is None:
            rows = _store.frame(self.con, "SELECT stage, seconds FROM runs WHERE status = 'done'")
            timings = dict(rows.iter_rows())
        return build_result(self, timings, resumed or [])


def run(n: int = 230_000, db: "str | Path" = "corpus.duckdb", seed: int = 0, progress: bool = True,
        **options) -> Result:
    """Run the corpus workflow end to end (resuming from ``db`` when it holds a partial run).

    Prints stage timings when ``progress``; writes ``<db stem>_report.md`` next to the DB.
    """
    wf = Workflow(db, Options(n=n, seed=seed, **options), progress)
    timings, resumed = {}, []
    try:
        stages = STAGES
        if progress:
            from tqdm.auto import tqdm

            stages = tqdm(STAGES, desc="corpus", unit="stage")
        for name in stages:
            if progress:
                stages.set_postfix_str(name)
            seconds, skipped = wf.step(name)
            timings[name] = seconds
            if skipped:
                resumed.append(name)
        return wf.result(timings, resumed)
    finally:
        wf.con.close()
