"""Read a vLLM server's Prometheus ``/metrics`` into plain numbers.

vLLM exposes gauges (requests running/waiting, KV-cache usage), counters
(prompt and generation tokens, preemptions) and histograms (end-to-end
latency, time to first token).  :func:`parse` turns the text format into
``{sample name: [(labels, value), ...]}``; :func:`summarize` reduces that to
the saturation signals the operator view shows, summed over engines/models.
Two scrapes give rates and windowed latency percentiles (:func:`window`).
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping

Samples = dict[str, list[tuple[dict[str, str], float]]]

#: metric names, newest first (vLLM renamed gpu_cache_usage_perc → kv_cache_usage_perc)
#: (llama.cpp's ``--metrics`` names follow the vLLM ones where they mean the same)
RUNNING = ("vllm:num_requests_running", "llamacpp:requests_processing")
WAITING = ("vllm:num_requests_waiting", "llamacpp:requests_deferred")
KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "llamacpp:kv_cache_usage_ratio")
PROMPT_TOKENS = ("vllm:prompt_tokens_total", "vllm:prompt_tokens", "llamacpp:prompt_tokens_total")
GENERATION_TOKENS = ("vllm:generation_tokens_total", "vllm:generation_tokens", "llamacpp:tokens_predicted_total")
PREEMPTIONS = ("vllm:num_preemptions_total", "vllm:num_preemptions")
E2E = "vllm:e2e_request_latency_seconds"
TTFT = "vllm:time_to_first_token_seconds"

_LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?\s*$")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')


def parse(text: str) -> Samples:
    """Prometheus text → samples by name; prometheus_client's parser when installed."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:  # pragma: no cover - prometheus_client comes with jupyter
        return _parse_small(text)
    out: Samples = {}
    try:
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    except Exception:  # a strict parser may reject what a lenient one reads
        return _parse_small(text)
    return out


def _parse_small(text: str) -> Samples:
    """A small lenient parser of the Prometheus text format (comments skipped)."""
    out: Samples = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(4))
        except ValueError:
            continue
        labels = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _LABEL.findall(m.group(3) or "")}
        out.setdefault(m.group(1), []).append((labels, value))
    return out


def _values(samples: Samples, names: Iterable[str]) -> list[float] | None:
    for n in names:
        if n in samples:
            return [v for _, v in samples[n] if not math.isnan(v)]
    return None


def _sum(samples: Samples, names: Iterable[str]) -> float | None:
    vals = _values(samples, names)
    return sum(vals) if vals is not None else None


def buckets(samples: Samples, hist: str) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) pairs of a histogram, summed over label sets."""
    acc: dict[float, float] = {}
    for labels, v in samples.get(hist + "_bucket", []):
        le = labels.get("le")
        if le is None:
            continue
        bound = math.inf if le in ("+Inf", "inf", "Inf") else float(le)
        acc[bound] = acc.get(bound, 0.0) + v
    return sorted(acc.items())


def quantile(q: float, bucket_counts: list[tuple[float, float]]) -> float | None:
    """Prometheus ``histogram_quantile``: linear interpolation inside the bucket."""
    if not bucket_counts:
        return None
    total = bucket_counts[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in bucket_counts:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # the highest finite bound is the best we know
            span = count - lower_count
            frac = (rank - lower_count) / span if span > 0 else 1.0
            return lower_bound + (bound - lower_bound) * frac
        lower_bound, lower_count = bound, count
    return lower_bound


def summarize(samples: Samples) -> dict[str, Any]:
    """The saturation signals of one scrape (None where the server has no such metric)."""
    kv = _values(samples, KV_CACHE)
    e2e = buckets(samples, E2E)
    ttft = buckets(samples, TTFT)
    running = _sum(samples, RUNNING)
    waiting = _sum(samples, WAITING)
    return {
        "requests_running": running,
        "requests_waiting": waiting,
        "kv_cache_usage": max(kv) if kv else None,
        "prompt_tokens_total": _sum(samples, PROMPT_TOKENS),
        "generation_tokens_total": _sum(samples, GENERATION_TOKENS),
        "preemptions_total": _sum(samples, PREEMPTIONS),
        "requests_total": e2e[-1][1] if e2e else None,
        "e2e_latency_p50_s": quantile(0.5, e2e),
        "e2e_latency_p95_s": quantile(0.95, e2e),
        "ttft_p50_s": quantile(0.5, ttft),
        "ttft_p95_s": quantile(0.95, ttft),
        "_e2e_buckets": e2e,
    }


def window(prev: Mapping[str, Any], cur: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    """Rates and latency percentiles over the interval between two summaries."""
    out: dict[str, Any] = {"window_s": seconds}
    for key, rate in (("prompt_tokens_total", "prompt_tokens_per_s"),
                      ("generation_tokens_total", "generation_tokens_per_s"),
                      ("requests_total", "requests_per_s")):
        a, b = prev.get(key), cur.get(key)
        ok = a is not None and b is not None and b >= a and seconds > 0
        out[rate] = (b - a) / seconds if ok else None
    pb = dict(prev.get("_e2e_buckets") or [])
    cb = cur.get("_e2e_buckets") or []
    delta = [(le, c - pb.get(le, 0.0)) for le, c in cb]
    if delta and all(d >= 0 for _, d in delta) and delta[-1][1] > 0:
        out["window_e2e_latency_p50_s"] = quantile(0.5, delta)
        out["window_e2e_latency_p95_s"] = quantile(0.95, delta)
    else:
        out["window_e2e_latency_p50_s"] = out["window_e2e_latency_p95_s"] = None
    return out
