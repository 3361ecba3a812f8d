"""Closed-set answers: accuracy and calibration of ``--choices`` on a balanced sentiment set.

Runs bench/choices_data.py (52 positive + 52 negative reviews, label sets in both
orders and two casings) through a backend and prints accuracy (overall, per label
set), mean confidence of right vs wrong answers, expected calibration error (10
bins) and the median seconds per item; against vLLM also the baseline in the same
process: greedy constrained decoding (what ``--choices`` did before scoring).

    python bench/bench_choices.py                      # embedded (SmolLM2-135M on the CPU)
    python bench/bench_choices.py --backend vllm --base-url http://127.0.0.1:8000/v1 --baseline
    python bench/bench_choices.py --sets 4             # every review with every label set (416 items)
    python bench/bench_choices.py --data topics        # the held-out 60 headlines, three topics
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import choices_data  # noqa: E402
import topics_data  # noqa: E402

from hybridnb.types import Request  # noqa: E402

CHUNK = 16


def ece(pairs: list[tuple[float, bool]], bins: int = 10) -> float:
    """Expected calibration error of (confidence, right) pairs over equal-width bins."""
    total = len(pairs)
    out = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(c, ok) for c, ok in pairs if lo < c <= hi or (b == 0 and c == 0)]
        if inside:
            acc = sum(ok for _, ok in inside) / len(inside)
            conf = sum(c for c, _ in inside) / len(inside)
            out += len(inside) / total * abs(acc - conf)
    return out


def auc(pos: list[float], neg: list[float]) -> float | None:
    """P(a random positive scores above a random negative), ties half."""
    if not pos or not neg:
        return None
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def separation(items, comps) -> float | None:
    """Macro one-vs-rest AUC of each class's probability: how well the scores separate the classes,
    whatever threshold or prior correction; 0.5 = not at all (for two classes: the margin's AUC)."""
    classes = sorted({g.lower() for _, _, g in items})
    aucs = []
    for k in classes:
        pos, neg = [], []
        for (_, labels, gold), c in zip(items, comps):
            spelled = next(lab for lab in labels if lab.lower() == k)
            if c.choice_probs and spelled in c.choice_probs:
                (pos if gold.lower() == k else neg).append(c.choice_probs[spelled])
        a = auc(pos, neg)
        if a is not None:
            aucs.append(a)
    return sum(aucs) / len(aucs) if aucs else None


def make_backend(name: str, args, mode: str | None = None):
    if name == "embedded":
        from hybridnb.backends._embedded import EmbeddedBackend

        return EmbeddedBackend(), "smollm2-135m-instruct"
    from hybridnb.backends._vllm_server import VLLMServerBackend

    b = VLLMServerBackend(args.base_url, timeout_s=600, max_concurrency=8, choice_mode=mode)
    return b, args.model or b.discover_model()


def prompt_for(data: str, style: str):
    if data == "topics":
        return topics_data.prompt
    return lambda text, labels: choices_data.prompt(text, labels, style)


async def run(backend, model: str, items, make_prompt) -> tuple[list, list[float]]:
    comps, per_item = [], []
    for k in range(0, len(items), CHUNK):
        chunk = items[k:k + CHUNK]
        reqs = [Request(make_prompt(text, labels), model, max_tokens=8, choices=labels)
                for text, labels, _ in chunk]
        t0 = time.perf_counter()
        comps += await backend.complete(reqs)
        per_item.append((time.perf_counter() - t0) / len(chunk))
    await backend.aclose()
    return comps, per_item


def report(name: str, items, comps, per_item) -> dict:
    right = [c.error is None and c.text == gold for (_, _, gold), c in zip(items, comps)]
    conf = [(c.choice_probs or {}).get(c.text) for c in comps]
    known = [(p, ok) for p, ok in zip(conf, right) if p is not None]
    by_set: dict[tuple, list[bool]] = {}
    for (_, labels, _), ok in zip(items, right):
        by_set.setdefault(labels, []).append(ok)
    errors = sum(c.error is not None for c in comps)
    r = {"name": name, "n": len(items), "accuracy": sum(right) / len(items), "errors": errors,
         "median_s_per_item": statistics.median(per_item),
         "by_set": {"/".join(k): sum(v) / len(v) for k, v in by_set.items()},
         "answers": {lab: sum(c.text.lower() == lab for c in comps)
                     for lab in sorted({g.lower() for _, _, g in items})}}
    if known:
        rc = [p for p, ok in known if ok]
        wc = [p for p, ok in known if not ok]
        r.update(conf_right=statistics.mean(rc) if rc else None, conf_wrong=statistics.mean(wc) if wc else None,
                 ece=ece(known), with_probs=len(known), auc=separation(items, comps))
    return r


def show(r: dict, base: dict | None = None) -> None:
    f = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    print(f"\n== {r['name']}: {r['n']} items ({r['errors']} errors)")
    print(f"accuracy {r['accuracy']:.3f}   answers {r['answers']}")
    print("by label set: " + ", ".join(f"{k} {v:.2f}" for k, v in r["by_set"].items()))
    if "ece" in r:
        gap = None if r["conf_wrong"] is None or r["conf_right"] is None else r["conf_right"] - r["conf_wrong"]
        print(f"mean confidence right {f(r['conf_right'])} wrong {f(r['conf_wrong'])} (gap {f(gap)}) "
              f"ECE {r['ece']:.3f} over {r['with_probs']} answers with probabilities; "
              f"class separation (one-vs-rest AUC) {f(r['auc'])}")
    else:
        print("no probabilities (constrained decoding)")
    line = f"median {r['median_s_per_item'] * 1000:.1f} ms/item"
    if base:
        line += (f"; vs {base['name']}: accuracy {r['accuracy'] - base['accuracy']:+.3f}, "
                 f"time x{r['median_s_per_item'] / base['median_s_per_item']:.2f}")
    print(line)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="embedded", choices=["embedded", "vllm"])
    ap.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    ap.add_argument("--model")
    ap.add_argument("--sets", type=int, default=0, help="label sets per review (0 = one, in rotation)")
    ap.add_argument("--baseline", action="store_true", help="vllm: also greedy constrained decoding")
    ap.add_argument("--style", default="question", choices=["question", "classify"],
                    help="prompt wording (see choices_data.prompt)")
    ap.add_argument("--data", default="reviews", choices=["reviews", "topics"],
                    help="reviews (choices_data.py) or the held-out three-topic headlines (topics_data.py)")
    args = ap.parse_args(argv)
    items = choices_data.items(args.sets or None) if args.data == "reviews" else topics_data.items()
    results = []
    modes = ["score"] + (["constrained"] if args.baseline and args.backend == "vllm" else [])
    for mode in modes:
        backend, model = make_backend(args.backend, args, mode)
        comps, per_item = asyncio.run(run(backend, model, items, prompt_for(args.data, args.style)))
        results.append(report(f"{args.backend} {mode} ({model}, {args.data}, {args.style} prompt)",
                              items, comps, per_item))
    base = results[1] if len(results) > 1 else None
    for r in results:
        show(r, base if r is not base else None)


if __name__ == "__main__":
    main()
