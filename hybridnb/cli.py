"""The ``hybridnb`` command for headless runs.

    hybridnb corpus run [--n 230000] [--db corpus.duckdb] [--seed 0]
    hybridnb summary
    hybridnb ledger export PATH          (.csv, .parquet or .json)
    hybridnb notebook PATH [--out OUT]   run a notebook headless in a real kernel
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import HybridnbError


def _corpus_run(args) -> int:
    from . import corpus

    options = {k: v for k, v in (("shares", args.shares), ("embedder", args.embedder),
                                 ("topic_method", args.topics)) if v}
    result = corpus.run(n=args.n, db=args.db, seed=args.seed, progress=not args.quiet, **options)
    report = getattr(result, "report_path", None) or (result.get("report_path") if isinstance(result, dict) else None)
    if report:
        print(f"report: {report}")
    return 0


def _summary(args) -> int:
    from .core.calls import summary

    print(summary())
    return 0


def _ledger_export(args) -> int:
    from .config import get_settings
    from .store.ledger import read

    df = read(get_settings().home)
    path = Path(args.path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        df.write_csv(path)
    elif suffix == ".parquet":
        df.write_parquet(path)
    elif suffix == ".json":
        df.write_json(path)
    else:
        raise HybridnbError(f"cannot export to {suffix or 'a file without suffix'}: use .csv, .parquet or .json")
    print(f"{df.height} ledger rows → {path}")
    return 0


def _notebook(args) -> int:
    import nbformat
    from nbclient import NotebookClient

    src = Path(args.path)
    nb = nbformat.read(src, as_version=4)
    NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(src.parent)}}).execute()
    out = Path(args.out) if args.out else src.with_name(src.stem + ".out.ipynb")
    nbformat.write(nb, out)
    print(f"executed {src} → {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hybridnb", description="hybridnb headless commands")
    sub = p.add_subparsers(dest="command", required=True)

    corpus = sub.add_parser("corpus", help="the bundled corpus workflow")
    csub = corpus.add_subparsers(dest="corpus_command", required=True)
    run = csub.add_parser("run", help="generate → embed → topics → taxonomy → label → rank → cost report")
    run.add_argument("--n", type=int, default=230_000, help="segments to generate (default 230000)")
    run.add_argument("--db", default="corpus.duckdb", help="DuckDB file (default corpus.duckdb)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--shares", help="TOML/JSON file with a custom taxonomy and shares")
    run.add_argument("--embedder", help="static (default), wordllama or minilm")
    run.add_argument("--topics", help="topic method: kmeans (default, fast) or umap_hdbscan")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=_corpus_run)

    sub.add_parser("summary", help="spend by route/backend/model").set_defaults(func=_summary)

    led = sub.add_parser("ledger", help="ledger tools")
    lsub = led.add_subparsers(dest="ledger_command", required=True)
    exp = lsub.add_parser("export", help="write the ledger to .csv/.parquet/.json")
    exp.add_argument("path")
    exp.set_defaults(func=_ledger_export)

    nb = sub.add_parser("notebook", help="run a notebook headless in a real kernel")
    nb.add_argument("path")
    nb.add_argument("--out")
    nb.add_argument("--timeout", type=int, default=1800)
    nb.set_defaults(func=_notebook)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except HybridnbError as e:
        print(f"hybridnb: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hybridnb: interrupted; finished work is in the ledger and cache", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
