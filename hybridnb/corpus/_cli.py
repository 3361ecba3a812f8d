"""``hybridnb corpus run|generate|export``: the corpus workflow from the command line.

    hybridnb corpus run [--input FILE | --table NAME] [--text COL] [--id COL] [--role COL]
                        [--time COL] [--truth COL] [--db DB]      (no input: generate, then run)
    hybridnb corpus generate --n N [--seed S] [--shares F] --out FILE
    hybridnb corpus export --db DB --labels OUT.parquet
"""

from __future__ import annotations

import argparse
import sys

from ..errors import CorpusError


def add_corpus_commands(subparsers) -> argparse.ArgumentParser:
    """Register ``corpus`` with its ``run``, ``generate`` and ``export`` commands."""
    corpus = subparsers.add_parser("corpus", help="the corpus workflow: your transcripts/tickets in, "
                                                  "a ranked taxonomy and labels out")
    csub = corpus.add_subparsers(dest="corpus_command", required=True)
    _add_run(csub)
    gen = csub.add_parser("generate", help="write a generated corpus (texts + truth columns) to a file")
    gen.add_argument("--n", type=int, required=True, help="segments to generate")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--shares", help="TOML/JSON shares file (own categories and words allowed)")
    gen.add_argument("--out", required=True, help="output file: .parquet, .csv or .jsonl")
    gen.set_defaults(func=_generate)
    exp = csub.add_parser("export", help="write the final labels keyed by the input's id column")
    exp.add_argument("--db", default="corpus.duckdb", help="corpus DB (default corpus.duckdb)")
    exp.add_argument("--labels", required=True, help="output file: .parquet, .csv or .jsonl")
    exp.set_defaults(func=_export)
    return corpus


def _add_run(csub) -> None:
    run = csub.add_parser("run", help="load (or generate) → embed → topics → taxonomy → label → rank → report")
    src = run.add_argument_group("input (none: generate a corpus)")
    src.add_argument("--input", help="Parquet, CSV or JSON-lines file of texts")
    src.add_argument("--table", help="a table already in --db holding the texts")
    src.add_argument("--text", default="text", help="text column (default text)")
    src.add_argument("--id", help="id column, kept in exported labels (default: row number)")
    src.add_argument("--role", help="speaker role column (optional)")
    src.add_argument("--time", help="date/timestamp column (optional)")
    src.add_argument("--truth", help="true primary label column, for quality against truth (optional; "
                     "empty or 'noise' = off-topic)")
    src.add_argument("--truth-secondary", help="true secondary label column (optional)")
    gen = run.add_argument_group("generator (only without --input/--table)")
    gen.add_argument("--n", type=int, help="segments to generate (default 230000)")
    gen.add_argument("--seed", type=int, help="generator seed (default 0)")
    gen.add_argument("--shares", help="TOML/JSON file with custom categories and shares")
    run.add_argument("--db", default="corpus.duckdb", help="DuckDB file (default corpus.duckdb)")
    run.add_argument("--codebook", help="a prior codebook file, used as a hint only")
    run.add_argument("--labeller", help="bulk labeller: distilled (default) or local-llm")
    run.add_argument("--embedder", help="static (default), wordllama or minilm")
    run.add_argument("--topics", help="topic method: kmeans (default, fast) or umap_hdbscan")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=_run)


def run_kwargs(args) -> dict:
    """The keyword arguments of ``hybridnb.corpus.run`` for parsed ``corpus run`` args."""
    if args.input and args.table:
        raise CorpusError("give --input or --table, not both")
    given = args.input or args.table
    if given and any(v is not None for v in (args.n, args.shares)):
        raise CorpusError("--n and --shares are for the generator; they do not apply to --input/--table")
    if not given and any(v is not None for v in (args.id, args.role, args.time, args.truth,
                                                  args.truth_secondary)) or (not given and args.text != "text"):
        raise CorpusError("--text/--id/--role/--time/--truth name columns of --input or --table; give one")
    kw = {"db": args.db, "progress": not args.quiet}
    if args.input:
        kw["data"] = args.input
    pairs = (("table", args.table), ("id", args.id), ("role", args.role), ("time", args.time),
             ("truth", args.truth), ("truth_secondary", args.truth_secondary), ("n", args.n),
             ("seed", args.seed), ("shares", args.shares), ("codebook", args.codebook),
             ("labeller", args.labeller), ("embedder", args.embedder), ("topic_method", args.topics))
    kw.update({k: v for k, v in pairs if v is not None})
    if given:
        kw["text"] = args.text
    return kw


def _corpus(module: str):
    """Import a corpus module; a missing dependency is one line naming the pip command."""
    import importlib

    try:
        return importlib.import_module(f"{__package__}.{module}")
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("hybridnb"):
            raise
        from ..core.extras import install_hint
        from ..errors import MissingExtra

        raise MissingExtra(f"hybridnb corpus needs the [corpus] extra (missing: {exc.name}): "
                           f"{install_hint('corpus')}") from exc


def _run(args) -> int:
    result = _corpus("_workflow").run(**run_kwargs(args))
    report = getattr(result, "report_path", None)
    if report:
        print(f"report: {report}")
    return 0


def _generate(args) -> int:
    export = _corpus("_export")
    export.check_out_path(args.out)  # before generating
    df = _corpus("_sources").generated_frame(args.n, seed=args.seed, shares=args.shares).drop("is_noise")
    out = export.write_file(df, args.out)
    print(f"{df.height:,} segments (texts + true_primary/true_secondary) → {out}", file=sys.stderr)
    return 0


def _export(args) -> int:
    df = _corpus("_export").export_labels(args.db, args.labels)
    print(f"{df.height:,} labels ({', '.join(df.columns)}) → {args.labels}", file=sys.stderr)
    return 0
