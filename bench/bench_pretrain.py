"""Pretraining throughput: spacy-mlm's loop vs HF Trainer + DataCollatorForLanguageModeling
(run_mlm.py-style group_texts), same model config, sequence length, batch, data, LR, warmup and
CPU threads, side by side in one run. Both runs start from the same initial weights; the held-out
MLM loss of both is then measured on the same packed, masked test sequences.
(HF Trainer needs the `accelerate` package: pip install accelerate.)

    python bench/bench_pretrain.py --data-dir ../shared/data --steps 40
"""

import argparse
import json
import os
import tempfile
import time
from contextlib import nullcontext
from itertools import chain
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
CONFIG = Path(__file__).parent.parent / "configs" / "pretrain.cfg"


def read_lines(path: Path):
    return [line.strip() for line in path.read_text(encoding="utf8").splitlines() if line.strip()]


def held_out_loss(model_dir, tokenizer, texts, seq_length, n_sequences=64) -> float:
    import torch
    from transformers import AutoModelForMaskedLM

    from spacy_mlm.pretrain.loop import evaluate, make_eval_batches
    from spacy_mlm.pretrain.masking import token_masking
    from spacy_mlm.pretrain.packing import Packer

    model = AutoModelForMaskedLM.from_pretrained(model_dir)
    batches = make_eval_batches(Packer(lambda: iter(texts), tokenizer, seq_length), n_sequences, 16, token_masking(),
                                tokenizer, 0)
    return evaluate(model, batches, torch.device("cpu"), nullcontext())["eval_loss"]


def run_hf(model_dir, tokenizer, texts, args, out_dir):
    """run_mlm.py: tokenize with specials, concatenate, cut into seq_length blocks (remainder dropped)."""
    import torch
    from transformers import (
        AutoModelForMaskedLM,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    ids = tokenizer(texts, return_special_tokens_mask=True, verbose=False)
    concatenated = {k: list(chain.from_iterable(ids[k])) for k in ("input_ids", "attention_mask", "special_tokens_mask")}
    total = len(concatenated["input_ids"]) // args.seq_length * args.seq_length
    blocks = [{k: torch.tensor(v[i : i + args.seq_length]) for k, v in concatenated.items()}
              for i in range(0, total, args.seq_length)]
    model = AutoModelForMaskedLM.from_pretrained(model_dir)
    targs = TrainingArguments(
        output_dir=str(out_dir), max_steps=args.steps, per_device_train_batch_size=args.batch,
        learning_rate=args.lr, weight_decay=0.01, adam_beta1=0.9, adam_beta2=0.98, adam_epsilon=1e-6,
        warmup_steps=args.warmup, lr_scheduler_type="linear", max_grad_norm=1.0, logging_steps=10,
        save_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0, seed=0, disable_tqdm=True,
    )
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    step_end = {}

    class Clock(TrainerCallback):
        def on_step_end(self, targs, state, control, **kwargs):
            step_end[state.global_step] = time.perf_counter()

    trainer = Trainer(model=model, args=targs, train_dataset=blocks, data_collator=collator, callbacks=[Clock()])
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    trainer.save_model(str(out_dir / "final"))
    per_step = args.batch * args.seq_length  # group_texts blocks have no padding
    steady = per_step * (args.steps - 1) / (step_end[args.steps] - step_end[1])
    return {"tokens_per_s": per_step * args.steps / seconds, "steady": steady, "seconds": seconds,
            "final": out_dir / "final"}


def run_ours(model_dir, train_file, args, out_dir):
    from spacy_mlm.pretrain.loop import pretrain

    o = {"paths.train": str(train_file), "paths.base_model": str(model_dir), "training.max_steps": args.steps,
         "training.seq_length": args.seq_length, "training.batch_tokens": args.batch * args.seq_length,
         "training.learning_rate": args.lr, "training.warmup_steps": args.warmup, "training.eval_frequency": 0,
         "training.checkpoint_frequency": 0, "logging.progress_bar": False, "system.threads": args.threads,
         "corpus.holdout_every": 1_000_000}
    start = time.perf_counter()
    final = pretrain(CONFIG, out_dir, o, force=True)
    seconds = time.perf_counter() - start
    log = [json.loads(x) for x in (out_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in log if "loss" in m]
    first, last = steps[0], steps[-1]
    # tokens_per_s is measured from the loop start: elapsed = tokens / tokens_per_s.
    elapsed = {m["step"]: m["tokens"] / m["tokens_per_s"] for m in (first, last)}
    steady = (last["tokens"] - first["tokens"]) / (elapsed[last["step"]] - elapsed[first["step"]])
    return {"tokens_per_s": last["tokens_per_s"], "steady": steady, "seconds": seconds, "final": final}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--seq-length", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16, help="sequences per step")
    ap.add_argument("--size", default="mini")
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=4)
    args = ap.parse_args()

    import torch
    from transformers import AutoTokenizer

    from spacy_mlm.pretrain.init_model import init_model
    from spacy_mlm.pretrain.tokenizer import train_tokenizer

    torch.set_num_threads(args.threads)
    data = Path(args.data_dir) / "mlm" / "wikitext-2"
    train_texts, test_texts = read_lines(data / "valid.txt"), read_lines(data / "test.txt")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train_tokenizer(train_texts, tmp / "tok", vocab_size=args.vocab_size)
        init_model(tmp / "init", tmp / "tok", arch="bert", size=args.size, max_length=args.seq_length)
        tokenizer = AutoTokenizer.from_pretrained(tmp / "init")
        (tmp / "train.txt").write_text("\n".join(train_texts), encoding="utf8")
        ours = run_ours(tmp / "init", tmp / "train.txt", args, tmp / "ours")
        hf = run_hf(tmp / "init", tokenizer, train_texts, args, tmp / "hf")
        loss_ours = held_out_loss(ours["final"], tokenizer, test_texts, args.seq_length)
        loss_hf = held_out_loss(hf["final"], tokenizer, test_texts, args.seq_length)
    print(f"setup: bert-{args.size}, seq {args.seq_length}, batch {args.batch} seqs, {args.steps} steps, "
          f"{args.threads} threads, wikitext-2 valid.txt")
    print("tokens/s: non-padding tokens per second over the training loop (ours includes streaming")
    print("tokenization); steady: steps 2..N. seconds: wall time of the call (ours: incl. model loading).")
    print(f"{'':<22}{'tokens/s':>10}{'steady':>10}{'seconds':>10}{'held-out loss':>16}")
    for name, r, loss in (("spacy-mlm", ours, loss_ours), ("HF Trainer+collator", hf, loss_hf)):
        print(f"{name:<22}{r['tokens_per_s']:>10.0f}{r['steady']:>10.0f}{r['seconds']:>10.1f}{loss:>16.4f}")
    print(f"speedup: {ours['tokens_per_s'] / hf['tokens_per_s']:.2f}x (steady {ours['steady'] / hf['steady']:.2f}x); "
          f"held-out loss ratio ours/HF: {loss_ours / loss_hf:.3f}")


if __name__ == "__main__":
    main()
