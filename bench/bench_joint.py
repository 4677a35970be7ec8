"""What fill_mask training costs: time per training step of transformer + trf_tagger_ner (configs/ner.cfg)
alone against the same pipeline with fill_mask's MLM loss (mlm_rate 0.15) at several `mlm_share`s.

One pipeline, one optimizer; every step runs each variant on the same batch of WNUT-17 training
sentences (gold tokens), the variants' order rotating from step to step (A/B/C, B/C/A, ...), so
slow drifts of the machine hit every variant alike. NER-only = `nlp.update(..., exclude=["fill_mask"])`.
Medians over the steps after the warm-up, one JSON line per run; beside the ratio of medians, the
median of each step's (block's) time over NER-only's on the same batch, and the ratio of total times.
--every K adds, for each fill_mask variant (replay ones too), one with fill_mask's `mlm_every` K (one
MLM pass every K-th step over the last K batches); then every variant's time is the median over blocks of K steps of the
block's mean step time (each block holds one MLM pass), and the warm-up is rounded up to whole blocks.

    python bench/bench_joint.py --base-model /tmp/minilm-wiki/final --shares 1.0,0.5,0.25 --steps 50
    python bench/bench_joint.py --base-model /tmp/minilm-wiki/final --shares 0.125 --replay-text ../shared/data/mlm/wikitext-2/valid.txt --replay-docs 4
    python bench/bench_joint.py --base-model models/minilm-wiki/final --shares 0.125 --every 4 --replay-text ../shared/data/mlm/wikitext-2/valid.txt --replay-docs 4 --steps 44 --warmup 4

--replay-docs N adds, for each share, a variant whose MLM batch also takes N docs of --replay-text
(fill_mask's replay_text / replay_docs).

--base-model: all-MiniLM-L6-v2 with an MLM head (it ships without one, and fill_mask needs one), e.g.
the output of the `spacy-mlm pretrain` command in BENCHMARKS.md "Joint training" (same encoder, so
the same cost per step).
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
from common import append_jsonl, data_dir
from eval_tasks import NER_FILES, REPO, add_fill_mask, gold_tokens_doc, load_docs


def build_pipeline(base_model: str, train: List[Any], seed: int) -> Any:
    """configs/ner.cfg + fill_mask (mlm_rate 0.15), initialized on the training docs."""
    from spacy import util
    from spacy.tokens import DocBin
    from spacy.training.initialize import init_nlp

    with tempfile.TemporaryDirectory() as tmp:
        DocBin(docs=train).to_disk(f"{tmp}/train.spacy")
        config = util.load_config(REPO / "configs" / "ner.cfg", interpolate=False)
        config["paths"].update(train=f"{tmp}/train.spacy", dev=f"{tmp}/train.spacy", base_model=base_model)
        config["system"]["seed"] = seed
        add_fill_mask(config, 0.15)
        return init_nlp(config)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--base-model", required=True, help="HF checkpoint with an MLM head")
    parser.add_argument("--shares", default="1.0,0.25", help="comma-separated fill_mask mlm_share values")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per variant, warm-up included")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16, help="sentences per step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replay-text", default=None, help="fill_mask replay_text for the replay variants")
    parser.add_argument("--replay-docs", type=int, default=0, help="fill_mask replay_docs of the replay variants")
    parser.add_argument("--every", type=int, default=1, help="also time each variant with fill_mask mlm_every K")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "joint.jsonl")
    args = parser.parse_args(argv)
    if args.steps - -(-args.warmup // args.every) * args.every < args.every:
        parser.error(f"--steps {args.steps} leaves no block of --every {args.every} steps after the warm-up")
    from spacy.training import Example

    base_model = str(args.base_model)
    docs = load_docs(data_dir(args.data_dir) / NER_FILES[0], "ner", args.steps * args.batch_size)
    nlp = build_pipeline(base_model, docs, args.seed)
    optimizer = nlp.create_optimizer()
    fill_mask = nlp.get_pipe("fill_mask")
    examples = [Example(gold_tokens_doc(nlp.vocab, ref), ref) for ref in docs]
    batches = [examples[i : i + args.batch_size] for i in range(0, len(examples), args.batch_size)]
    shares = args.shares.split(",")
    variants = ["ner", *(f"ner+fill_mask share={s}" for s in shares)]
    if args.replay_docs:
        variants += [f"ner+fill_mask share={s} replay={args.replay_docs}" for s in shares]
        fill_mask.replay_text = args.replay_text
    if args.every > 1:
        variants += [f"{v} every={args.every}" for v in variants if v != "ner"]
    # One fill_mask serves every variant: each keeps its own docs waiting for its next MLM pass.
    pending = {v: ([], 0) for v in variants}
    times: Dict[str, List[float]] = {v: [] for v in variants}
    for step, batch in enumerate(batches):
        for k in range(len(variants)):
            variant = variants[(step + k) % len(variants)]
            if variant != "ner":
                fill_mask.mlm_share = float(variant.split("share=")[1].split()[0])
                fill_mask.replay_docs = args.replay_docs if "replay=" in variant else 0
                fill_mask.mlm_every = int(variant.split("every=")[1]) if "every=" in variant else 1
                fill_mask._pending, fill_mask._pending_updates = pending[variant]
            start = time.perf_counter()
            nlp.update(batch, sgd=optimizer, drop=0.1, losses={}, exclude=["fill_mask"] if variant == "ner" else [])
            times[variant].append(time.perf_counter() - start)
            pending[variant] = (fill_mask._pending, fill_mask._pending_updates)
        print(f"step {step}: " + ", ".join(f"{v} {times[v][-1]:.3f}s" for v in variants), file=sys.stderr)
    block = args.every  # each block of `every` steps holds one MLM pass of every variant
    warmup = -(-args.warmup // block) * block

    def block_means(ts: List[float]) -> List[float]:
        timed = ts[warmup:]
        return [statistics.mean(timed[i : i + block]) for i in range(0, len(timed) - block + 1, block)]

    ner_means = block_means(times["ner"])
    ner = statistics.median(ner_means)
    results = {}
    for variant, ts in times.items():
        means = block_means(ts)
        median = statistics.median(means)
        # Each block's time over NER-only's in the same block: the pairs ran side by side.
        paired = [m / n for m, n in zip(means, ner_means)]
        results[variant] = {"median_s": round(median, 4), "ratio_to_ner": round(median / ner, 3),
                            "paired_ratio_median": round(statistics.median(paired), 3),
                            "total_time_ratio": round(sum(ts[warmup:]) / sum(times["ner"][warmup:]), 3),
                            "min_s": round(min(means), 4), "max_s": round(max(means), 4), "blocks": len(means)}
    row = {"bench": "joint_step_time", "base_model": base_model, "batch_size": args.batch_size,
           "steps": len(batches), "warmup": warmup, "block_steps": block, "seed": args.seed,
           "torch_threads": torch.get_num_threads(),
           "words_per_step": round(sum(len(eg.reference) for eg in examples) / len(batches), 1), "results": results,
           "command": " ".join(["python", "bench/bench_joint.py", *(argv if argv is not None else sys.argv[1:])])}
    append_jsonl(args.out, row)
    for variant, r in results.items():
        print(f"{variant:44} {r['median_s']:.3f} s/step  {r['ratio_to_ner']:.2f}x  (paired blocks {r['paired_ratio_median']:.2f}x,"
              f" total time {r['total_time_ratio']:.2f}x)")
    return row


if __name__ == "__main__":
    main()
