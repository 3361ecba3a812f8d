"""The ``hybridnb`` command for headless runs.

    hybridnb corpus run [--input FILE --text COL ...] [--db corpus.duckdb]   (see hybridnb corpus run -h)
    hybridnb corpus generate --n N --out FILE
    hybridnb corpus export --db DB --labels OUT.parquet
    hybridnb summary
    hybridnb models [reason|local]
    hybridnb ledger export PATH          (.csv, .parquet or .json)
    hybridnb notebook PATH [--out OUT]   run a notebook headless in a real kernel
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import HybridnbError


def _models(args) -> int:
    from .backends.models import list_models

    print(list_models(args.route))
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

    from .corpus._cli import add_corpus_commands

    add_corpus_commands(sub)

    sub.add_parser("summary", help="spend by route/backend/model").set_defaults(func=_summary)

    models = sub.add_parser("models", help="the models each route can use, with prices")
    models.add_argument("route", nargs="?", choices=("reason", "local"), help="one route (default: both)")
    models.set_defaults(func=_models)

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
