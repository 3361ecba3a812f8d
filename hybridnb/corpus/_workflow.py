"""The corpus workflow end to end, resumable from its DuckDB file."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ..errors import CorpusError
from . import _store
from ._distil import stage_distil, stage_validate
from ._stages import (stage_embed, stage_load, stage_rounds, stage_sample, stage_taxonomy,
                      stage_topics)
from ._result import Result
from ._taxonomy import Taxonomy

STAGES = ("load", "embed", "topics", "taxonomy", "sample", "label_rounds", "validate", "distil", "report")
LABELLERS = ("distilled", "local-llm")


@dataclass
class Options:
    """Knobs of a run; the ones that change the data are fixed for a DB file."""

    n: int = 230_000
    seed: int = 0
    shares: str | None = None
    embedder: str = "none"
    sample_size: int | None = None
    review_per_round: int = 10
    validate_size: int = 100
    max_rounds: int = 4
    stability: float = 0.97
    labeller: str = "distilled"
    codebook: str | None = None
    trust: str = "auto"

    def identity(self) -> dict:
        d = asdict(self)
        d.pop("trust")
        return d


class Workflow:
    """Holds the DB connection and lazily loaded arrays; runs or skips each stage."""

    def __init__(self, db: "str | Path", opts: Options, progress: bool = True, source: dict | None = None,
                 codebook=None):
        if opts.labeller not in LABELLERS:
            raise CorpusError(f"unknown labeller {opts.labeller!r}; choose one of {LABELLERS}")
        self.db, self.opts, self.progress = Path(db), opts, progress
        self.source = source if source is not None else {"n": opts.n, "seed": opts.seed, "shares": opts.shares}
        self.source.setdefault("progress", progress)
        self.codebook = codebook if codebook is not None else opts.codebook
        self.con = _store.open_store(self.db, adopt=self.source.get("table") is not None)
        self.run_id = self._check_identity()
        self._cache: dict = {}

    def _check_identity(self) -> str:
        ident = json.dumps(self.opts.identity(), sort_keys=True, default=str)
        row = self.con.execute("SELECT value FROM schema_info WHERE key = 'options'").fetchall()
        if row and row[0][0] != ident:
            self.con.close()
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

    def row_of(self, segment_id: int) -> int:
        return int(np.searchsorted(self.segments()["segment_id"].to_numpy(), segment_id))

    def embeddings(self, idx=None):
        """Sentence embeddings (rows ``idx``), or None when the run uses no embedder."""
        if self.opts.embedder == "none":
            return None
        if "emb" not in self._cache:
            self._cache["emb"] = _store.read_vectors(self.con)[1]
        return self._cache["emb"] if idx is None else self._cache["emb"][idx]

    def assignments(self) -> pl.DataFrame:
        if "assign" not in self._cache:
            self._cache["assign"] = _store.frame(self.con, "SELECT * FROM topic_assignments ORDER BY segment_id")
        return self._cache["assign"]

    def topic_weights(self, idx=None) -> tuple[np.ndarray, np.ndarray]:
        """(n, TOP) arrays of each segment's heaviest topics and their weights (rows ``idx``)."""
        a = self.assignments() if idx is None else self.assignments()[idx]
        k = len(a["top_topics"][0]) if a.height else 0
        return (a["top_topics"].list.to_array(k).to_numpy(), a["top_weights"].list.to_array(k).to_numpy())

    def topics(self) -> pl.DataFrame:
        df = _store.frame(self.con, "SELECT * FROM topics ORDER BY topic_id")
        return df.with_columns(pl.col("keywords").str.split(" "),
                               pl.col("representative_ids").str.json_decode(pl.List(pl.Int64)))

    def topical_words(self) -> list[str]:
        return [w for kw in self.topics()["keywords"] for w in kw]

    def sample_index(self, split: str) -> np.ndarray:
        ids = _store.frame(self.con, f"SELECT segment_id FROM sample WHERE split = '{split}' "
                                     "ORDER BY segment_id")["segment_id"].to_numpy()
        return np.searchsorted(self.segments()["segment_id"].to_numpy(), ids)

    def taxonomy(self, version: int) -> Taxonomy:
        df = _store.frame(self.con, f"SELECT * FROM taxonomy WHERE version = {version}")
        return Taxonomy(version, {r["category"]: {"description": r["description"], "keywords": r["keywords"].split(),
                                                  "topics": json.loads(r["topics"]), "off_topic": r["is_noise"]}
                                  for r in df.iter_rows(named=True)})

    def save_taxonomy(self, tax: Taxonomy) -> None:
        _store.write_frame(self.con, "taxonomy", tax.frame().with_columns(created=pl.lit(dt.datetime.now())),
                           replace_where=f"version = {tax.version}")
        changes = pl.DataFrame(tax.changes, schema={"change": pl.String, "category": pl.String,
                                                    "detail": pl.String, "decided_by": pl.String})
        _store.write_frame(self.con, "taxonomy_changes", changes.with_columns(version=pl.lit(tax.version)),
                           replace_where=f"version = {tax.version}")

    def save_labels(self, idx, rnd: int, version: int, labels, sec, res, fixed) -> None:
        steps = self.con.execute("SELECT key, decided_by FROM reason_calls WHERE step LIKE 'review_round_%'").fetchall()
        by = dict(steps)
        ids = [self.segment_id(i) for i in idx]
        source = [by.get(f"seg:{s}", "evidence") if i in fixed else "classifier" for i, s in enumerate(ids)]
        prim = pl.Series([x or None for x in labels], dtype=pl.String)
        second = pl.Series([(s or None) if s != p else None for p, s in zip(labels, sec)], dtype=pl.String)
        frame = pl.DataFrame({"segment_id": ids, "round": rnd, "taxonomy_version": version, "label": prim,
                              "secondary": second, "source": source, "split": "train",
                              "confidence": res.proba.max(1)})
        _store.write_frame(self.con, "labels", frame, replace_where=f"split = 'train' AND round = {rnd}")

    def final_train_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """Primary and secondary labels of the last round ("" = off-topic / none)."""
        df = _store.frame(self.con, """SELECT segment_id, label, secondary FROM labels WHERE split = 'train'
            AND round = (SELECT max(round) FROM labels WHERE split = 'train') ORDER BY segment_id""")
        return df["label"].fill_null("").to_numpy().astype(str), df["secondary"].fill_null("").to_numpy().astype(str)

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
        return seconds, False

    def step(self, name: str) -> tuple[float, bool]:
        """Run one named stage of :data:`STAGES` (skipped when the DB has it); prints its timing."""
        from ._output import stage_report

        fns = {"load": stage_load, "embed": stage_embed, "topics": stage_topics,
               "taxonomy": stage_taxonomy, "sample": stage_sample, "label_rounds": stage_rounds,
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


def run(data=None, *, text: str = "text", id: str | None = None, role: str | None = None,  # noqa: A002
        time: str | None = None, truth: str | None = None, truth_secondary: str | None = None,  # noqa: A002
        table: str | None = None, db: "str | Path" = "corpus.duckdb", n: int = 230_000, seed: int = 0,
        shares=None, codebook=None, labeller: str = "distilled", progress: bool = True, **options) -> Result:
    """Run the corpus workflow end to end (resuming from ``db`` when it holds a partial run).

    ``data`` is a frame or a Parquet/CSV/JSON-lines path (``text`` names its text column; ``id``,
    ``role``, ``time`` and ``truth`` optional columns), or ``table`` a table in ``db``; with neither,
    the bundled generator makes ``n`` segments (``seed``, ``shares``). ``codebook`` is an optional
    prior (dict or JSON/TOML file of name -> description), a hint only. ``labeller`` is
    ``"distilled"`` (CPU classifier, default) or ``"local-llm"`` (bulk labels via ``hybridnb.map``
    on the local route). Writes ``<db stem>_report.md`` next to the DB.
    """
    from ._core import require_extra

    require_extra()
    source = _source_args(data, table, text=text, id=id, role=role, time=time, truth=truth,
                          truth_secondary=truth_secondary, n=n, seed=seed, shares=shares)
    book = codebook if isinstance(codebook, dict) else None
    opts = Options(n=n if "n" in source else 0, seed=seed, shares=None if shares is None else str(shares),
                   labeller=labeller, codebook=None if codebook is None or book else str(codebook), **options)
    wf = Workflow(db, opts, progress, {**source, "progress": progress}, codebook=book)
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


def _source_args(data, table, **cols) -> dict:
    """Keyword arguments for ``_sources.load``: the generator's (n, seed, shares) or the input's columns."""
    gen = {k: cols.pop(k) for k in ("n", "seed", "shares")}
    if data is None and table is None:
        return gen
    out = {k: v for k, v in cols.items() if v is not None and not (k == "text" and v == "text")}
    out["text"] = cols["text"]
    if isinstance(data, (str, Path)):
        out["path"] = data
    elif data is not None:
        out["data"] = data
    if table is not None:
        out["table"] = table
    return out
