"""MLM pretraining: throughput at the hardware limit against HF Trainer + DataCollatorForLanguageModeling +
run_mlm.py's group_texts (`speed`), the matrix-product peak that FLOP utilisation divides by (`peak`),
and SIGKILL + resume hardening (`kill-resume`). HF Trainer needs the `accelerate` package.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from itertools import chain
from pathlib import Path

import click

from bench.common import REPO, RESULTS, append_row, checkpoint, data_dir

OUT = RESULTS / "pretrain.jsonl"
CONFIG = REPO / "configs" / "pretrain.cfg"
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


def matmul_gflops(dtype_name: str, device, n: int = 2048, rounds: int = 5) -> float:
    """GFLOP/s of matrix products: on CPU the median of `rounds` n x n products after one warm-up; on a
    GPU 20 products of 8192 x 8192, cuda-synchronised."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    if device.type == "cuda":
        a, b = torch.randn(8192, 8192, dtype=dtype, device=device), torch.randn(8192, 8192, dtype=dtype, device=device)
        a @ b
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(20):
            a @ b
        torch.cuda.synchronize()
        return 20 * 2 * 8192**3 / (time.perf_counter() - start) / 1e9
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


# ---------------------------------------------------------------------------- the two sides


def hf_blocks(tokenizer, texts, seq_length):
    """run_mlm.py: tokenize with specials, concatenate, cut into seq_length blocks (remainder dropped)."""
    import torch

    ids = tokenizer(texts, return_special_tokens_mask=True, verbose=False)
    concatenated = {k: list(chain.from_iterable(ids[k])) for k in ("input_ids", "attention_mask", "special_tokens_mask")}
    total = len(concatenated["input_ids"]) // seq_length * seq_length
    return [{k: torch.tensor(v[i : i + seq_length]) for k, v in concatenated.items()} for i in range(0, total, seq_length)]


def run_hf(model_dir, tokenizer, blocks, args, precision, out_dir, steps):
    """HF Trainer, run_mlm.py's defaults. RETURNS {"times": {step: end time}, "tokens": {step: n}, "final": dir}."""
    import torch
    import transformers as hf_

    targs = hf_.TrainingArguments(
        output_dir=str(out_dir), max_steps=steps, per_device_train_batch_size=args.batch,
        learning_rate=args.lr, weight_decay=0.01, adam_beta1=0.9, adam_beta2=0.98, adam_epsilon=1e-6,
        warmup_steps=args.warmup, lr_scheduler_type="linear", max_grad_norm=1.0, logging_steps=10,
        save_strategy="no", report_to=[], use_cpu=args.gpu_id < 0, dataloader_num_workers=0, seed=0,
        disable_tqdm=True, bf16=precision == "bf16",
    )
    times, sync = {}, (torch.cuda.synchronize if args.gpu_id >= 0 else (lambda: None))

    class Clock(hf_.TrainerCallback):
        def on_train_begin(self, targs, state, control, **kwargs):
            times[0] = time.perf_counter()

        def on_step_end(self, targs, state, control, **kwargs):
            sync()
            times[state.global_step] = time.perf_counter()

    trainer = hf_.Trainer(model=hf_.AutoModelForMaskedLM.from_pretrained(model_dir), args=targs, train_dataset=blocks,
                          data_collator=hf_.DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15), callbacks=[Clock()])
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

    from spacy_mlm.pretrain.device import native_bf16

    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": native_bf16(device),
            "threads": args.threads, "base_model": "random " + args.size if args.size else Path(args.base_model).parent.name,
            "seq_length": args.seq_length, "batch": args.batch}


def emit(args, row) -> None:
    click.echo(json.dumps(append_row(args.out, row, args.gpu_id)))


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
        peak = matmul_gflops(precision, device)
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
        peak = statistics.median([peak, matmul_gflops(precision, device)])  # before and after: drift shows
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
            emit(args, row)


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
        emit(args, {"mode": "switch", "switch": name, "overrides": SWITCHES[name], **env, "precision": args.precisions[0],
                    "rounds": args.rounds, "timed_steps": args.steps, "skip_steps": args.skip_steps,
                    "tokens_per_s": round(tps, 1), "tokens_per_s_rounds": [round(x, 1) for x in speed[name]],
                    "held_out_loss": round(statistics.median(loss[name]), 4),
                    "ratio_to_default": round(tps / statistics.median(speed["default"]), 3) if "default" in speed else None})


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
    emit(args, {"mode": "profile", **env, "precision": args.precisions[0], "steps": args.profile_steps,
                "self_cpu_ms_per_step": round(total / 1000 / args.profile_steps, 1),
                "top_ops": [{"op": e.key, "self_cpu_share": round(e.self_cpu_time_total / total, 4), "calls": e.count}
                            for e in top]})


def time_to_quality(args, tmp, model_dir, tokenizer, train_file, texts, test_file, test_texts, device, env):
    """Seconds of training (evaluation excluded) until the held-out loss on WikiText-2 test reaches the loss
    HF Trainer reaches after --ttq-steps steps; ours evaluated every --ttq-eval-every steps on the same
    masked test sequences."""
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
        begin = time.perf_counter()
        try:
            return evaluate(*a, **k)
        finally:
            eval_seconds[0] += time.perf_counter() - begin

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
    emit(args, {"mode": "time_to_quality", **env, "precision": precision, "hf_steps": n, "target_loss": round(target, 4),
                "hf_seconds": round(hf_seconds, 1), "ours_step": reached.get("step"), "ours_loss": reached.get("loss"),
                "ours_seconds": round(reached["seconds"], 1) if reached else None,
                "speedup": round(hf_seconds / reached["seconds"], 3) if reached else None, "eval_every": args.ttq_eval_every})


suite = click.Group("pretrain", help=__doc__)


@suite.command()
@click.option("--base-model", default=None, help="HF checkpoint (default: the installed all-MiniLM-L6-v2).")
@click.option("--size", default=None, help="A random BERT of this size (init-model --size) with the base tokenizer.")
@click.option("--data-dir", "data_dir_", default=None)
@click.option("--steps", default=20, show_default=True, help="Timed steps per run, after --skip-steps.")
@click.option("--skip-steps", default=3, show_default=True, help="Warm-up steps per run, not timed.")
@click.option("--rounds", default=3, show_default=True)
@click.option("--seq-length", default=128, show_default=True)
@click.option("--batch", default=16, show_default=True, help="Sequences per step.")
@click.option("--threads", default=2, show_default=True)
@click.option("--lr", default=5e-4, show_default=True)
@click.option("--warmup", default=4, show_default=True, help="lr warmup steps.")
@click.option("--precisions", default=None, help="fp32,bf16 (default: fp32 on CPU, where bf16 may be emulated; bf16 on GPU).")
@click.option("--eval-sequences", default=64, show_default=True, help="Held-out test sequences.")
@click.option("--switches", "mode", flag_value="switches", help="Our switches on/off instead of HF vs ours.")
@click.option("--switch-names", default=None, help=f"A subset of: {', '.join(SWITCHES)}.")
@click.option("--profile", "mode", flag_value="profile", help="torch.profiler over our steps: the top ops.")
@click.option("--profile-steps", default=3, show_default=True)
@click.option("--profile-rows", default=20, show_default=True)
@click.option("--time-to-quality", "mode", flag_value="time_to_quality", help="Seconds of ours to HF's loss.")
@click.option("--ttq-steps", default=300, show_default=True, help="HF's steps that set the target loss.")
@click.option("--ttq-eval-every", default=10, show_default=True)
@click.option("--gpu-id", default=-1, help="GPU: runs each of --seq-lengths; MFU against --peak-tflops.")
@click.option("--seq-lengths", default="128,512", show_default=True, help="With --gpu-id: the sequence lengths.")
@click.option("--peak-tflops", default=H100_SXM_BF16_TFLOPS, show_default=True)
@click.option("--out", type=Path, default=OUT, show_default=True)
def speed(**options) -> None:
    """Ours vs HF in one process, interleaved (or --switches, --profile, --time-to-quality): the same start
    weights (--base-model with a fresh tied MLM head, saved once), WikiText-2 valid, lr, schedule, AdamW
    settings, sequence length, sequences per step and threads; each round one short run per side, the first
    --skip-steps steps untimed, medians over rounds; held-out loss on masked WikiText-2 test sequences (the
    same masks for every model); FLOP utilisation against the matmul peak measured in the same process."""
    import argparse

    import torch
    from transformers import AutoTokenizer

    args = argparse.Namespace(**options)
    args.data_dir = args.data_dir_
    args.precisions = (args.precisions or ("bf16" if args.gpu_id >= 0 else "fp32")).split(",")
    args.switch_names = args.switch_names.split(",") if args.switch_names else None
    args.base_model = checkpoint(args.base_model)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
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
            if args.mode == "profile":
                profile(args, tmp, model_dir, train_file, env)
            elif args.mode == "switches":
                switches(args, tmp, model_dir, tokenizer, train_file, test_texts, device, env)
            elif args.mode == "time_to_quality":
                time_to_quality(args, tmp, model_dir, tokenizer, train_file, texts, data / "test.txt", test_texts, device, env)
            else:
                compare(args, tmp, model_dir, tokenizer, train_file, texts, test_texts, device, env)


@suite.command()
@click.option("--threads", default=2, show_default=True)
@click.option("--n", default=2048, show_default=True)
@click.option("--rounds", default=5, show_default=True)
@click.option("--out", type=Path, default=OUT, show_default=True)
def peak(threads, n, rounds, out) -> None:
    """The CPU's matrix-product peak per precision on --threads threads (the denominator of every FLOP
    utilisation figure): median of --rounds n x n products after one warm-up. bf16 without native
    support (AVX512_BF16 / AMX) is emulated and can be orders of magnitude slower: 512 x 512, one round."""
    import torch

    from spacy_mlm.pretrain.device import native_bf16

    torch.set_num_threads(threads)
    cpu = torch.device("cpu")
    native = native_bf16(cpu)
    row = {"mode": "matmul_peak", "threads": threads, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "n": n,
           "gflops_fp32": round(matmul_gflops("fp32", cpu, n, rounds), 1),
           "gflops_bf16": round(matmul_gflops("bf16", cpu, n if native else 512, rounds if native else 1), 2)}
    click.echo(json.dumps(append_row(out, row)))


@suite.command("kill-resume")
@click.option("--kills", default=50, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--launcher", type=click.Choice(["fork", "exec"]), default="fork", show_default=True,
              help="exec: every run a new `spacy-mlm` process (~5 s of imports each).")
@click.option("--pause", type=float, default=None, help="Seconds between the files of a checkpoint.")
@click.option("--verbose", is_flag=True)
@click.option("--out", type=Path, default=OUT, show_default=True)
def kill_resume(kills, seed, launcher, pause, verbose, out) -> None:
    """Kill `spacy-mlm pretrain` with SIGKILL many times and resume it: runs the test
    tests/test_pretrain_kill_resume.py::test_sigkill_and_resume_equals_uninterrupted (a tiny BERT, 33 steps,
    a checkpoint every 3) with more kills; every resume must start from the newest complete checkpoint and
    every finished run end with the weights and metrics of an uninterrupted run."""
    test = "tests/test_pretrain_kill_resume.py::test_sigkill_and_resume_equals_uninterrupted"
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "report.json"
        env = {**os.environ, "SPACY_MLM_TEST_KILLS": str(kills), "SPACY_MLM_TEST_KILL_SEED": str(seed),
               "SPACY_MLM_TEST_KILL_LAUNCHER": launcher, "SPACY_MLM_TEST_KILL_REPORT": str(report_path),
               **({"SPACY_MLM_TEST_KILL_PAUSE": str(pause)} if pause is not None else {}),
               **({"SPACY_MLM_TEST_KILL_VERBOSE": "1"} if verbose else {})}
        rc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", test], cwd=REPO,
                            env=env).returncode
        if not report_path.exists():
            raise click.ClickException(f"The test wrote no report (pytest exit status {rc}): see its output above.")
        report = json.loads(report_path.read_text(encoding="utf8"))
    click.echo(report["summary"])
    for problem in report["problems"]:
        click.echo(f"PROBLEM: {problem}")
    append_row(out, {"mode": "kill_resume", "kills": kills, "seed": seed, "launcher": launcher, "pytest_status": rc, **report})
    sys.exit(rc)


COMMANDS = (suite,)
