"""Peak memory and time of ONE long window through a ModernBERT-base-sized encoder on CPU.

    python bench/bench_long_context.py [--seq-len 8192] [--hidden 768] [--layers 22]
        [--heads 12] [--threads 2] [--attn sdpa] [--out bench/results/long_context.jsonl]

A randomly initialised ModernBertModel (the size of answerdotai/ModernBERT-base: 768 hidden,
22 layers, 12 heads, FFN 1152, vocab 50368, global attention every 3rd layer, local window 128)
in fp32 encodes one window of --seq-len tokens under torch.no_grad (inference, as spaCy's
nlp(doc) runs it). Peak RSS (getrusage ru_maxrss, the whole process) is read after building the
model and after the forward pass; one JSON line is appended to --out. Run each size in its own
process: ru_maxrss is a high-water mark and never goes down.
"""

import argparse
import json
import platform
import resource
import time
from pathlib import Path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seq-len", type=int, default=8192)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=22)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--intermediate", type=int, default=1152)
    parser.add_argument("--vocab", type=int, default=50368)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    parser.add_argument("--out", default="bench/results/long_context.jsonl")
    args = parser.parse_args()

    import torch
    from transformers import ModernBertConfig, ModernBertModel

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rss_start = peak_rss_mb()
    config = ModernBertConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, intermediate_size=args.intermediate, max_position_embeddings=8192,
        global_attn_every_n_layers=3, local_attention=128, attn_implementation=args.attn,
    )
    model = ModernBertModel(config).eval()
    params = sum(p.numel() for p in model.parameters())
    rss_model = peak_rss_mb()
    input_ids = torch.randint(5, args.vocab, (1, args.seq_len))
    attention_mask = torch.ones_like(input_ids)
    with torch.no_grad():
        start = time.perf_counter()
        hidden = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        seconds = time.perf_counter() - start
    rss_forward = peak_rss_mb()
    row = {
        "bench": "long_context_forward", "seq_len": args.seq_len, "hidden": args.hidden, "layers": args.layers,
        "heads": args.heads, "params_m": round(params / 1e6, 1), "dtype": "fp32", "attn": args.attn,
        "threads": args.threads, "forward_s": round(seconds, 2), "peak_rss_start_mb": round(rss_start),
        "peak_rss_model_mb": round(rss_model), "peak_rss_forward_mb": round(rss_forward),
        "forward_extra_mb": round(rss_forward - rss_model), "output_shape": list(hidden.shape),
        "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a", encoding="utf8") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
