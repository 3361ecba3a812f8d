"""Embedded backend speed: start-up to first answer, tokens/s, seconds per 100 classifications.

Usage: nice -n 10 .venv/bin/python bench/bench_embedded.py [--cold] [--threads N]
Prints one figure per line (medians where repeated) and the machine's load average,
which on a shared 2-core box moves every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time

FIRST = """
import time, asyncio; t0 = time.perf_counter()
from hybridnb.backends._embedded import EmbeddedBackend
from hybridnb.types import Request
b = EmbeddedBackend({threads})
[c] = asyncio.run(b.complete([Request("What is the capital of France?", "m", max_tokens=16)]))
assert c.error is None and c.text, c
print(round(time.perf_counter() - t0, 2), b.describe()["from_cache"], repr(c.text))
"""

REVIEWS = [
    "I love it, works great.", "Terrible, broke after one day.", "Best purchase this year!",
    "Waste of money. Do not buy.", "My kids adore it.", "Support never replied.",
    "Fantastic quality and fast shipping.", "Cheap plastic, returned it.",
    "Exceeded my expectations.", "Very disappointed with this product.",
]
LABELS = ["positive", "negative"] * 5


def first_answer(threads: int | None, cold: bool) -> tuple[float, bool, str]:
    env = dict(os.environ)
    if cold:
        env["HYBRIDNB_EMBEDDED_CACHE"] = tempfile.mkdtemp(prefix="hnb-emb-cold-")
    code = FIRST.format(threads=f"threads={threads}" if threads else "")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    secs, cached, text = out.stdout.strip().split(" ", 2)
    return float(secs), cached == "True", text


async def timed(b, reqs):
    t = time.perf_counter()
    out = await b.complete(reqs)
    return time.perf_counter() - t, out


async def throughput(threads: int | None) -> None:
    import torch

    from hybridnb.types import Request
    from hybridnb.backends._embedded import EmbeddedBackend

    b = EmbeddedBackend(threads=threads)
    b.load()
    await b.complete([Request("warm up", "m", max_tokens=2)])
    print(f"threads: {b.describe()['threads']} (torch sees {torch.get_num_threads()} in main thread)")

    story = Request("Write a long story about a dragon who learns to bake.", "m", max_tokens=64)
    s, [c] = await timed(b, [story])
    print(f"generated tok/s, 1 request: {c.usage.output_tokens / s:.1f} ({c.usage.output_tokens} tok, {s:.2f} s)")
    stories = [Request(f"Write a long story about a dragon number {i}.", "m", max_tokens=64) for i in range(8)]
    s, out = await timed(b, stories)
    n = sum(c.usage.output_tokens for c in out)
    print(f"generated tok/s, batch of 8: {n / s:.1f} ({n} tok, {s:.2f} s)")

    long = Request("Summarise: " + "The quick brown fox jumps over the lazy dog. " * 40, "m", max_tokens=1)
    s, [c] = await timed(b, [long])
    print(f"prompt tok/s (1 x {c.usage.input_tokens} tok prompt, 1 generated): {c.usage.input_tokens / s:.0f}")

    prompts = [f"Classify the sentiment of this review.\nReview: {REVIEWS[i % 10]}" for i in range(100)]
    free = [Request(p + "\nAnswer with one word: positive or negative.", "m", max_tokens=4) for p in prompts]
    s, out = await timed(b, free)
    ok = sum(LABELS[i % 10] in c.text.lower() for i, c in enumerate(out))
    print(f"100 classifications, free text (max_tokens=4): {s:.1f} s; label word in answer {ok}/100")
    picks = [Request(p, "m", choices=("positive", "negative")) for p in prompts]
    s, out = await timed(b, picks)
    ok = sum(c.text == LABELS[i % 10] for i, c in enumerate(out))
    print(f"100 classifications, --choices positive,negative: {s:.1f} s; correct {ok}/100")
    await b.aclose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cold", action="store_true", help="also time a first load with an empty cache")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.cold:
        secs, cached, text = first_answer(args.threads, cold=True)
        print(f"first answer, cold (GGUF de-quantised + cache written): {secs:.1f} s  {text}")
    first_answer(args.threads, cold=False)  # make sure the cache exists
    runs = [first_answer(args.threads, cold=False) for _ in range(args.repeat)]
    print(f"first answer after start of a fresh process, warm cache (median of {args.repeat}): "
          f"{statistics.median(r[0] for r in runs):.1f} s  {runs[0][2]}")
    asyncio.run(throughput(args.threads))
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
