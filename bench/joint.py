"""Joint training of NER and fill_mask on one encoder: what fill_mask's MLM loss costs per training step
(`steps`), and whether fill_mask survives NER fine-tuning (`drift`).

--base-model: an HF checkpoint with a trained MLM head, e.g. all-MiniLM-L6-v2 after the `spacy-mlm
pretrain` command in BENCHMARKS.md "Joint training" (it ships without a head; same cost per step).
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

import click

from bench.common import REPO, RESULTS, append_row, data_dir
from bench.eval_tasks import NER_FILES, add_fill_mask, gold_tokens_doc, load_docs, run_spacy

OUT = RESULTS / "joint.jsonl"
suite = click.Group("joint", help=__doc__)


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


@suite.command()
@click.option("--data-dir", "data_dir_", default=None)
@click.option("--base-model", required=True, help="HF checkpoint with an MLM head.")
@click.option("--shares", default="1.0,0.25", show_default=True, help="Comma-separated fill_mask mlm_share values.")
@click.option("--steps", default=50, show_default=True, help="Timed steps per variant, warm-up included.")
@click.option("--warmup", default=5, show_default=True)
@click.option("--batch-size", default=16, show_default=True, help="Sentences per step.")
@click.option("--seed", default=0, show_default=True)
@click.option("--replay-text", default=None, help="fill_mask replay_text of the replay variants.")
@click.option("--replay-docs", default=0, help="fill_mask replay_docs of the replay variants (0: none).")
@click.option("--every", default=1, help="Also time each fill_mask variant with mlm_every K.")
@click.option("--out", type=Path, default=OUT, show_default=True)
def steps(data_dir_, base_model, shares, steps, warmup, batch_size, seed, replay_text, replay_docs, every, out) -> None:
    """Time per training step of transformer + trf_tagger_ner (configs/ner.cfg) alone against the same
    pipeline with fill_mask's MLM loss (mlm_rate 0.15) at several `mlm_share`s.

    One pipeline, one optimizer; every step runs each variant on the same batch of WNUT-17 training
    sentences (gold tokens), the variants' order rotating from step to step (A/B/C, B/C/A, ...), so slow
    drifts of the machine hit every variant alike. NER-only = `nlp.update(..., exclude=["fill_mask"])`.
    Medians over the steps after the warm-up; beside the ratio of medians, the median of each step's
    (block's) time over NER-only's on the same batch, and the ratio of total times. --replay-docs N adds,
    for each share, a variant whose MLM batch also takes N docs of --replay-text. --every K adds, for each
    fill_mask variant, one with `mlm_every` K; then every variant's time is the median over blocks of K
    steps of the block's mean step time (each block holds one MLM pass), the warm-up rounded up to blocks.
    """
    import torch
    from spacy.training import Example

    if steps - -(-warmup // every) * every < every:
        raise click.UsageError(f"--steps {steps} leaves no block of --every {every} steps after the warm-up")
    docs = load_docs(data_dir(data_dir_) / NER_FILES[0], "ner", steps * batch_size)
    nlp = build_pipeline(str(base_model), docs, seed)
    optimizer = nlp.create_optimizer()
    fill_mask = nlp.get_pipe("fill_mask")
    examples = [Example(gold_tokens_doc(nlp.vocab, ref), ref) for ref in docs]
    batches = [examples[i : i + batch_size] for i in range(0, len(examples), batch_size)]
    shares = shares.split(",")
    variants = ["ner", *(f"ner+fill_mask share={s}" for s in shares)]
    if replay_docs:
        variants += [f"ner+fill_mask share={s} replay={replay_docs}" for s in shares]
        fill_mask.replay_text = replay_text
    if every > 1:
        variants += [f"{v} every={every}" for v in variants if v != "ner"]
    # One fill_mask serves every variant: each keeps its own docs waiting for its next MLM pass.
    pending = {v: ([], 0) for v in variants}
    times: Dict[str, List[float]] = {v: [] for v in variants}
    for step, batch in enumerate(batches):
        for k in range(len(variants)):
            variant = variants[(step + k) % len(variants)]
            if variant != "ner":
                fill_mask.mlm_share = float(variant.split("share=")[1].split()[0])
                fill_mask.replay_docs = replay_docs if "replay=" in variant else 0
                fill_mask.mlm_every = int(variant.split("every=")[1]) if "every=" in variant else 1
                fill_mask._pending, fill_mask._pending_updates = pending[variant]
            start = time.perf_counter()
            nlp.update(batch, sgd=optimizer, drop=0.1, losses={}, exclude=["fill_mask"] if variant == "ner" else [])
            times[variant].append(time.perf_counter() - start)
            pending[variant] = (fill_mask._pending, fill_mask._pending_updates)
        print(f"step {step}: " + ", ".join(f"{v} {times[v][-1]:.3f}s" for v in variants), file=sys.stderr)
    block, skip = every, -(-warmup // every) * every  # each block of `every` steps holds one MLM pass of every variant

    def block_means(ts: List[float]) -> List[float]:
        timed = ts[skip:]
        return [statistics.mean(timed[i : i + block]) for i in range(0, len(timed) - block + 1, block)]

    ner_means = block_means(times["ner"])
    ner = statistics.median(ner_means)
    results = {}
    for variant, ts in times.items():
        means = block_means(ts)
        median = statistics.median(means)
        paired = [m / n for m, n in zip(means, ner_means)]  # each block over NER-only's in the same block
        results[variant] = {"median_s": round(median, 4), "ratio_to_ner": round(median / ner, 3),
                            "paired_ratio_median": round(statistics.median(paired), 3),
                            "total_time_ratio": round(sum(ts[skip:]) / sum(times["ner"][skip:]), 3),
                            "min_s": round(min(means), 4), "max_s": round(max(means), 4), "blocks": len(means)}
    append_row(out, {"bench": "joint_step_time", "base_model": str(base_model), "batch_size": batch_size,
                     "steps": len(batches), "warmup": skip, "block_steps": block, "seed": seed,
                     "torch_threads": torch.get_num_threads(),
                     "words_per_step": round(sum(len(eg.reference) for eg in examples) / len(batches), 1), "results": results})
    for variant, r in results.items():
        click.echo(f"{variant:44} {r['median_s']:.3f} s/step  {r['ratio_to_ner']:.2f}x  (paired blocks "
                   f"{r['paired_ratio_median']:.2f}x, total time {r['total_time_ratio']:.2f}x)")


def masked_token_accuracy(scorer: Any, texts: Sequence[str], rate: float = 0.15, seed: int = 0,
                          max_length: int = 128) -> Dict[str, float]:
    """Top-1 accuracy of the MLM on masked wordpieces; scorer: load_scorer(pipeline with fill_mask, or HF checkpoint)."""
    import torch

    encoder, head, tokenizer = scorer
    encoder.eval()
    generator = torch.Generator().manual_seed(seed)
    hits = total = 0
    with torch.no_grad():
        for i in range(0, len(texts), 32):
            enc = tokenizer(list(texts[i : i + 32]), truncation=True, max_length=max_length, padding=True,
                            return_tensors="pt", return_special_tokens_mask=True)
            special = enc.pop("special_tokens_mask").bool() | ~enc["attention_mask"].bool()
            # Drawn for every position of the padded batch, so the same texts get the same masks.
            chosen = (torch.rand(enc["input_ids"].shape, generator=generator) < rate) & ~special
            labels = enc["input_ids"][chosen]
            enc["input_ids"] = enc["input_ids"].masked_fill(chosen, tokenizer.mask_token_id)
            predicted = head(encoder(**enc).last_hidden_state[chosen]).argmax(-1)
            hits += int((predicted == labels).sum())
            total += int(chosen.sum())
    return {"masked_token_accuracy": hits / total, "masked_tokens": total}


@suite.command()
@click.option("--base-model", required=True, help="HF checkpoint with a trained MLM head.")
@click.option("--data-dir", "data_dir_", default=None)
@click.option("--mlm-rates", default="0,0.15", show_default=True, help="Comma-separated fill_mask mlm_rate values.")
@click.option("--epochs", default=3, show_default=True)
@click.option("--lr", default=1e-4, show_default=True)
@click.option("--batch-size", default=16, show_default=True)
@click.option("--warmup-ratio", default=0.1, show_default=True)
@click.option("--max-train", default=0, help="First N training sentences (0: all).")
@click.option("--heldout-lines", default=400, show_default=True, help="WikiText-2 test lines to mask.")
@click.option("--set", "set_", multiple=True, metavar="KEY=JSON",
              help="Config override of the NER training, e.g. 'components.ner={\"factory\":\"trf_ner\",\"head_lr_scale\":10}'.")
@click.option("--skip-before", is_flag=True, help="Do not score the base model (already in the results): one piece of a sweep.")
@click.option("--seed", default=0, show_default=True, help="Training seed (spaCy's [system] seed).")
@click.option("--mask-seed", default=0, show_default=True, help="The held-out texts' masks: one draw for every model and seed.")
@click.option("--gpu-id", default=-1)
@click.option("--out", type=Path, default=OUT, show_default=True)
def drift(data_dir_, mlm_rates, heldout_lines, skip_before, mask_seed, out, set_, **options) -> None:
    """Does fill_mask survive NER fine-tuning? Masked-token accuracy before and after WNUT-17 NER training of
    transformer + fill_mask + configs/ner.cfg's NER pipe, with fill_mask training (mlm_rate > 0) and without
    it (mlm_rate 0: the head stays as it was while the encoder moves), plus NER F1 of both.

    Masked-token accuracy: 15% of the wordpieces of held-out WikiText-2 test lines (the pretraining domain)
    and of the WNUT-17 dev sentences (the NER domain; only training sentences are masked in training)
    replaced by the mask token, the same positions for every model; top-1 equals the original wordpiece.
    """
    from spacy_mlm.pretrain.score import load_scorer
    from spacy_mlm.pretrain.tokenizer import iter_corpus_lines

    args = argparse.Namespace(set=list(set_) or None, **options)
    root = data_dir(data_dir_)
    train = load_docs(root / NER_FILES[0], "ner", args.max_train)
    dev = load_docs(root / NER_FILES[1], "ner")
    heldouts = {"wikitext2_test": list(iter_corpus_lines([root / "mlm" / "wikitext-2" / "test.txt"]))[:heldout_lines],
                "wnut17_dev": [doc.text for doc in dev]}

    def accuracies(model: str) -> Dict[str, float]:
        result: Dict[str, float] = {}
        scorer = load_scorer(model)  # once for every held-out text
        for name, texts in heldouts.items():
            acc = masked_token_accuracy(scorer, texts, seed=mask_seed)
            suffix = "" if name == "wikitext2_test" else f"_{name}"
            result.update({f"masked_token_accuracy{suffix}": acc["masked_token_accuracy"],
                           f"masked_tokens{suffix}": acc["masked_tokens"]})
        return result

    rows = []
    if not skip_before:
        rows.append({"model": "base (before NER)", **accuracies(str(args.base_model))})
        print(f"before NER training: {rows[-1]}", file=sys.stderr)
    for rate in (float(r) for r in mlm_rates.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            ner = run_spacy("ner", train, dev, argparse.Namespace(**vars(args), mlm_rate=rate, save_dir=tmp, tag=f"mlm{rate}"))
            rows.append({"model": f"after NER, fill_mask mlm_rate={rate}", **accuracies(str(Path(tmp) / f"ner-mlm{rate}")), **ner})
        print(json.dumps(rows[-1]), file=sys.stderr)
    append_row(out, {"base_model": str(args.base_model), "set": args.set, "seed": args.seed, "mask_seed": mask_seed,
                     "rows": rows}, args.gpu_id)
    click.echo(json.dumps(rows, indent=2))


COMMANDS = (suite,)
