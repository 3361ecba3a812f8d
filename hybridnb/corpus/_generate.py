"""Seeded, vectorised generator of tech-conference transcript segments with ground truth."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pyarrow as pa

from ..errors import CorpusError
from . import _vocab
from ._spec import Spec, load_spec

NOISE_LABEL = "noise"
MEDIAN_WORDS, SIGMA, MIN_WORDS, MAX_WORDS = 18, 0.62, 3, 90
NOISE_KINDS = ("logistics", "banter", "asr")
NOISE_KIND_SHARES = (0.45, 0.35, 0.20)
ASR_RATE, ASR_NOISE_RATE = 0.02, 0.55


def generate(n: int = 230_000, seed: int = 0, shares=None) -> pl.DataFrame:
    """Generate ``n`` transcript segments with ground truth (deterministic for ``seed``).

    ``shares`` is None (default shares), a TOML/JSON file path, a dict or a Spec.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise CorpusError(f"n must be a positive integer, got {n!r}")
    spec = load_spec(shares)
    rng = np.random.default_rng(seed)
    meta = _draw_meta(rng, n)
    role = meta["role"]
    noise = rng.random(n) < np.asarray(_vocab.ROLE_NOISE)[role] * spec.noise_scale
    primary = _draw_primary(rng, spec, meta["year_idx"], role)
    multi = ~noise & (rng.random(n) < spec.multi_topic)
    secondary = _draw_secondary(rng, spec, primary, multi)
    kind = np.where(noise, rng.choice(3, n, p=NOISE_KIND_SHARES), -1)
    lengths = np.clip(np.rint(rng.lognormal(np.log(MEDIAN_WORDS), SIGMA, n)), MIN_WORDS, MAX_WORDS)
    text = _draw_text(rng, spec, lengths.astype(np.int64), primary, secondary, kind)
    ids = np.array(spec.ids + [NOISE_LABEL])
    return pl.DataFrame({
        "segment_id": np.arange(n, dtype=np.int64),
        "event": np.array(_vocab.EVENTS)[meta["event"]],
        "year": np.array(_vocab.YEARS, dtype=np.int32)[meta["year_idx"]],
        "session": meta["session"],
        "vendor": np.array(_vocab.VENDORS)[meta["vendor"]],
        "speaker_role": np.array(_vocab.ROLES)[role],
        "ts": meta["ts"],
        "text": text,
        "true_primary": ids[np.where(noise, len(spec.ids), primary)],
        "true_secondary": _secondary_col(ids, secondary),
        "is_noise": noise,
    })


def _secondary_col(ids: np.ndarray, secondary: np.ndarray) -> pl.Series:
    values = pl.Series("true_secondary", ids[np.maximum(secondary, 0)].tolist(), dtype=pl.String)
    return values.scatter(np.flatnonzero(secondary < 0), None)


def _draw_meta(rng: np.random.Generator, n: int) -> dict:
    n_ev, n_yr = len(_vocab.EVENTS), len(_vocab.YEARS)
    year_w = np.linspace(0.8, 1.2, n_yr)
    year_idx = rng.choice(n_yr, n, p=year_w / year_w.sum())
    event = rng.integers(0, n_ev, n)
    role = rng.choice(3, n, p=_vocab.ROLE_SHARES)
    day_of_year = rng.integers(60, 330, (n_ev, n_yr))  # one date per (event, year)
    days = np.array([(dt.date(y, 1, 1) - dt.date(1970, 1, 1)).days for y in _vocab.YEARS])
    day = days[year_idx] + day_of_year[event, year_idx] + rng.integers(0, 3, n)
    seconds = 8 * 3600 + rng.integers(0, 10 * 3600, n)
    ts = ((day.astype("int64") * 86400 + seconds) * 1000).astype("datetime64[ms]")
    session_idx = rng.integers(0, len(_vocab.SESSIONS), n)
    session = np.char.add(np.array(_vocab.SESSIONS)[session_idx], np.char.add(" ", (seconds // 3600).astype(str)))
    session = np.char.add(session, ":00")
    vendor = np.where(role == 0, rng.integers(0, len(_vocab.VENDORS) - 1, n), len(_vocab.VENDORS) - 1)
    return {"year_idx": year_idx, "event": event, "role": role, "ts": ts, "session": session,
            "vendor": vendor}


def _draw_primary(rng, spec: Spec, year_idx: np.ndarray, role: np.ndarray) -> np.ndarray:
    """Primary category per segment from shares × year drift × role tilt."""
    base = np.array([c.share for c in spec.categories])
    drift = np.array([c.drift for c in spec.categories])
    years = np.arange(len(_vocab.YEARS)) - (len(_vocab.YEARS) - 1) / 2
    tilt = np.array([[_vocab.ROLE_TILT[r].get(c.id, 1.0) for c in spec.categories] for r in _vocab.ROLES])
    w = base[None, None, :] * np.exp(drift[None, None, :] * years[:, None, None]) * tilt[None, :, :]
    cdf = np.cumsum(w / w.sum(-1, keepdims=True), -1)  # (year, role, K)
    u = rng.random(len(year_idx))
    return np.minimum((u[:, None] > cdf[year_idx, role]).sum(1), len(base) - 1)


def _draw_secondary(rng, spec: Spec, primary: np.ndarray, multi: np.ndarray) -> np.ndarray:
    """Secondary category (-1 for none); ``spec.frequent_secondary`` (cost) is a frequent one."""
    k = len(spec.categories)
    share = np.array([c.share for c in spec.categories]) + 1e-9
    other = rng.choice(k, len(primary), p=share / share.sum())
    clash = other == primary
    other[clash] = (primary[clash] + 1 + rng.integers(0, k - 1, clash.sum())) % k
    if spec.frequent_secondary in spec.ids:
        cost = spec.ids.index(spec.frequent_secondary)
        use_cost = (rng.random(len(primary)) < spec.cost_secondary) & (primary != cost)
        other = np.where(use_cost, cost, other)
    return np.where(multi, other, -1)


def _lexicon(spec: Spec) -> tuple[np.ndarray, dict[str, tuple[int, int]], np.ndarray]:
    """All words (then their ASR-corrupted copies), pools as (start, size), category starts."""
    pools, words = {}, []
    logistics, banter = spec.noise_words or (_vocab.NOISE["logistics"].split(), _vocab.NOISE["banter"].split())
    for key, pool in [("filler", _vocab.FILLER), ("shared", spec.shared or _vocab.SHARED),
                      ("logistics", logistics), ("banter", banter)]:
        pools[key] = (len(words), len(pool))
        words += list(pool)
    cat_pool = np.zeros((len(spec.categories), 2), dtype=np.int64)
    for i, c in enumerate(spec.categories):
        cat_pool[i] = (len(words), len(c.words))
        words += list(c.words)
    pools["any"] = (0, len(words))
    return np.array(words + [_corrupt(w, i) for i, w in enumerate(words)], dtype=object), pools, cat_pool


def _corrupt(word: str, i: int) -> str:
    """An ASR-style mishearing: dropped, doubled or swapped letters."""
    if len(word) < 3:
        return word + word[-1]
    j = 1 + i % (len(word) - 2)
    return [word[:j] + word[j + 1:], word[:j] + word[j] + word[j:],
            word[:j] + word[j + 1] + word[j] + word[j + 2:]][i % 3]


def _draw_text(rng, spec, lengths, primary, secondary, kind) -> pl.Series:
    words, pools, cat_pool = _lexicon(spec)
    n, total = len(lengths), int(lengths.sum())
    seg = np.repeat(np.arange(n), lengths)
    probs = _source_probs(rng, n, secondary >= 0, kind)  # (n, 7)
    u, cdf = rng.random(total), np.cumsum(probs, 1)
    src = np.zeros(total, dtype=np.int64)
    for j in range(cdf.shape[1]):
        src += u > cdf[seg, j]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    forced = starts + (rng.random(n) * lengths).astype(np.int64)
    src[forced[kind < 0]] = 2  # every topical segment says at least one primary word
    src = np.minimum(src, 6)
    fixed = np.array([pools["filler"], pools["shared"], (0, 0), (0, 0), pools["logistics"],
                      pools["banter"], pools["any"]])
    start, size = fixed[src, 0].copy(), fixed[src, 1].copy()
    for code, cats in ((2, primary), (3, np.maximum(secondary, 0))):
        m = np.flatnonzero(src == code)
        c = cats[seg[m]]
        start[m], size[m] = cat_pool[c, 0], cat_pool[c, 1]
    r = rng.random(total)
    skewed = src != 6  # Zipf-like: earlier words are more frequent (any-word draws are uniform)
    r[skewed] **= 1.6
    idx = start + np.minimum((size * r).astype(np.int64), size - 1)
    rate = np.where(kind == 2, ASR_NOISE_RATE, ASR_RATE)[seg]
    idx = np.where(rng.random(total) < rate, idx + len(words) // 2, idx)
    values = pl.Series(words.tolist(), dtype=pl.String).gather(idx).to_arrow()
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
    lists = pl.from_arrow(pa.LargeListArray.from_arrays(offsets, values))
    return lists.list.join(" ").alias("text")


def _source_probs(rng, n: int, multi: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """Per segment: P(filler, shared, primary, secondary, logistics, banter, any word)."""
    p = np.zeros((n, 7))
    filler = rng.beta(4, 5, n)
    topical = 1 - filler - 0.1
    p[:, 0], p[:, 1] = filler, 0.1
    p[:, 2] = np.where(multi, 0.62, 1.0) * topical
    p[:, 3] = np.where(multi, 0.38, 0.0) * topical
    for k, col in ((0, 4), (1, 5), (2, 6)):
        m = kind == k
        p[m] = 0
        p[m, 0] = filler[m]
        p[m, col] = 1 - filler[m]
    return p
