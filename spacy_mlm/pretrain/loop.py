"""The MLM pretraining loop, readable top to bottom (nanoGPT-style).

One optimizer step: take the next global batch of packed sequences (identical on every
process), mask it with the seeded masking generator, keep this process's rows, run the
encoder and the MLM head on the masked positions only, sum the loss over gradient
accumulation micro-batches normalised by the global number of masked tokens (so N
processes compute exactly the gradient of one process on the whole batch), clip, step.

Crash safety: every file and directory the loop writes (run.json, metrics.jsonl rewrites,
checkpoints, final/) is written under a temporary name and renamed into place, so a SIGKILL,
a full disk or a read-only directory leaves the previous complete checkpoint, and --resume
starts from the newest complete one (see checkpoint.py and rundir.py).
Where it runs (processes, device, precision): device.py; the optimizer and its schedule: optim.py.
"""

import json
import math
import time
from contextlib import nullcontext
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F

from ..errors import SpacyMlmError
from ..mlm import check_checkpoint
from ..mlm_data.corpus import holdout
from ..mlm_data.masking import IGNORE_INDEX, Masker
from ..mlm_data.packing import Packer, Sequence_, collate
from .checkpoint import CHECKPOINTS, latest_checkpoint, load_checkpoint, save_checkpoint, save_final
from .config import load_config, resolve
from .device import barrier, init_processes, make_autocast, resolve_precision, wrap
from .model import SparseMLM, load_mlm_model
from .optim import encoder_trainable, make_optimizer, make_scheduler
from .rundir import append_jsonl, prepare_output_dir, record_settings, truncate_metrics

Batch = Dict[str, torch.Tensor]  # input_ids (masked), attention_mask, labels (-100: not predicted)
HELD_OUT = "held-out part of the training corpus"  # the dev packer's name without a dev corpus


def pretrain(
    config_path: Union[str, Path],
    output_dir: Union[str, Path],
    overrides: Optional[Dict[str, Any]] = None,
    *,
    gpu_id: Optional[int] = None,
    resume: bool = False,
    force: bool = False,
    on_step: Optional[Callable[[int, Dict[str, Any]], None]] = None,
) -> Path:
    """Run MLM pretraining from a config file. on_step(step, metrics) is called after each step.

    RETURNS (Path): OUTPUT_DIR/final, an HF checkpoint with its tokenizer.
    """
    cfg = load_config(config_path, overrides)
    if gpu_id is not None:
        cfg["system"]["gpu_id"] = gpu_id
    return train(cfg, Path(output_dir), resume=resume, force=force, on_step=on_step, inputs=[config_path])


def train(cfg, out: Path, *, resume: bool = False, force: bool = False, on_step=None, inputs=()) -> Path:
    train_cfg, system_cfg, log_cfg = cfg["training"], cfg["system"], cfg["logging"]
    world, rank, device = init_processes(system_cfg["gpu_id"])
    main = rank == 0
    if system_cfg["threads"]:
        torch.set_num_threads(system_cfg["threads"])
    torch.manual_seed(system_cfg["seed"])

    # ---- output directory: refuse to mix two runs, to touch an input or to discard a finished run
    # (a missing or damaged base model is named first)
    check_checkpoint(cfg["model"]["name"], role="Base model")
    if main:
        prepare_output_dir(out, cfg, resume=resume, force=force, inputs=inputs)
    barrier(world)

    # ---- model, data, masking, optimizer
    objs = resolve(cfg)
    model_cfg = cfg["model"]
    model, tokenizer = load_mlm_model(model_cfg["name"], model_cfg["tokenizer"], model_cfg["dropout"],
                                      model_cfg["attn_implementation"])
    masker: Masker = objs["masking"]
    seqs_per_step, per_micro = batch_sizes(train_cfg, world, getattr(model.config, "max_position_embeddings", None))
    train_data, dev_data = make_packers(cfg, objs["corpus"], tokenizer, masker, out)
    if main and train_data.cache_dir is not None:  # tokenize once; the other processes wait, then read it
        cache, built = train_data.build_cache()
        if not built:
            print(f"Reusing the tokenized training corpus in {cache}", flush=True)
    barrier(world)
    eval_batches = make_eval_batches(dev_data, train_cfg["eval_sequences"], per_micro, masker, tokenizer,
                                     system_cfg["seed"])
    if model_cfg["head_only"]:  # the encoder never trains: it is left out of the optimizer
        encoder_trainable(model, False)
    # Head warm-up: the first head_warmup_steps train only the MLM head (a fresh head on a
    # pretrained encoder would otherwise send it large, random gradients), then the whole model.
    head_warmup = 0 if model_cfg["head_only"] else train_cfg["head_warmup_steps"]
    model.to(device)
    model.train()
    adamw = train_cfg["adamw"] if train_cfg["adamw"] != "auto" else ("fused" if device.type == "cuda" else "foreach")
    optimizer = make_optimizer(model, train_cfg, adamw, by_part=head_warmup > 0)
    scheduler = make_scheduler(optimizer, train_cfg, head_warmup)
    precision = resolve_precision(train_cfg["precision"], device)
    autocast = make_autocast(precision, device)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    mask_gen = torch.Generator().manual_seed(system_cfg["seed"])

    # ---- resume: weights, optimizer, scheduler, RNG and data position
    state = {"step": 0, "sequences": 0, "tokens": 0}
    last_checkpoint = latest_checkpoint(out, warn=main) if resume else None
    if last_checkpoint is not None:
        state = load_checkpoint(last_checkpoint, model, optimizer, scheduler, scaler, mask_gen)
    # What the "auto" settings became on this machine: printed, and kept in run.json.
    settings = {"precision": precision, "attn_implementation": model.config._attn_implementation, "adamw": adamw,
                "compile": train_cfg["compile"], "device": str(device), "threads": torch.get_num_threads()}
    if main:
        record_settings(out, settings)
        print("Settings: " + ", ".join(f"{k} = {v}" for k, v in settings.items()), flush=True)
    metrics_path = out / log_cfg["metrics_file"]
    if resume and main:
        # Also without a checkpoint: the killed run's log lines would otherwise be doubled.
        truncate_metrics(metrics_path, state["step"])
        if last_checkpoint is not None:
            print(f"Resuming from {last_checkpoint} (step {state['step']})", flush=True)
        else:
            print(f"No complete checkpoint in {out / CHECKPOINTS}: starting from step 0", flush=True)

    if state["step"] < head_warmup:
        encoder_trainable(model, False)
    net = wrap(model, train_cfg["compile"], world, device)

    # ---- the loop
    stream = train_data.stream(skip=state["sequences"])
    step, max_steps, accum = state["step"], train_cfg["max_steps"], train_cfg["grad_accum"]
    progress = make_progress(max_steps, step, enabled=main and log_cfg["progress_bar"])
    t0, tokens_t0 = time.perf_counter(), state["tokens"]
    while step < max_steps:
        if head_warmup and step == head_warmup:  # the head is warm: the whole model trains from here
            encoder_trainable(model, True)
            net = wrap(model, train_cfg["compile"], world, device)  # DDP syncs the parameters it was built with
            if main:
                print(f"Head warm-up done after {step} steps: training the whole model", flush=True)
        # Global batch, masked identically on every process; this process keeps its rows.
        batch = make_batch([seq for _, seq in islice(stream, seqs_per_step)], masker, tokenizer, mask_gen)
        n_masked = max(1, int((batch["labels"] != IGNORE_INDEX).sum()))
        mine = {k: v[rank * per_micro * accum : (rank + 1) * per_micro * accum] for k, v in batch.items()}

        loss_sum = torch.zeros((), device=device)
        for micro in range(accum):
            part = {k: v[micro * per_micro : (micro + 1) * per_micro].to(device) for k, v in mine.items()}
            sync = net.no_sync() if world > 1 and micro < accum - 1 else nullcontext()
            with sync, autocast:
                # Sum over this micro-batch / masked tokens in the global batch: summing over
                # micro-batches and averaging over processes (DDP) gives the global mean.
                loss = masked_lm_loss(net, part, reduction="sum") / n_masked
            scaler.scale(loss * world).backward()
            loss_sum += loss.detach()
        if world > 1:
            torch.distributed.all_reduce(loss_sum)
        loss_value = loss_sum.item()
        if not math.isfinite(loss_value):
            raise SpacyMlmError(
                f"Loss is {loss_value} at step {step + 1}. Last good checkpoint: "
                f"{latest_checkpoint(out) or 'none (no checkpoint written yet)'}. Lower the learning rate "
                "or use fp32/bf16, then --resume."
            )
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg["max_grad_norm"])
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        state["step"], state["sequences"] = step, state["sequences"] + seqs_per_step
        state["tokens"] += int(batch["attention_mask"].sum())  # non-padding tokens, all processes

        # ---- log, evaluate, checkpoint
        elapsed = time.perf_counter() - t0
        record = {"step": step, "loss": loss_value, "lr": max(scheduler.get_last_lr()),  # the head's in a warm-up
                  "grad_norm": float(grad_norm), "tokens": state["tokens"],
                  "tokens_per_s": (state["tokens"] - tokens_t0) / max(elapsed, 1e-9)}
        if main and (step % log_cfg["log_frequency"] == 0 or step == max_steps):
            append_jsonl(metrics_path, record)
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
        if train_cfg["eval_frequency"] and (step % train_cfg["eval_frequency"] == 0 or step == max_steps):
            if main:
                record_eval = {"step": step, **evaluate(model, eval_batches, device, autocast)}
                append_jsonl(metrics_path, record_eval)
                record.update(record_eval)
            barrier(world)
        if train_cfg["checkpoint_frequency"] and step % train_cfg["checkpoint_frequency"] == 0 and step < max_steps:
            if main:
                save_checkpoint(out, state, model, tokenizer, optimizer, scheduler, scaler, mask_gen,
                                cfg.to_str(), keep=train_cfg["keep_checkpoints"])
            barrier(world)
        if on_step is not None:
            on_step(step, record)
    if progress is not None:
        progress.close()

    # ---- final: a plain HF checkpoint with its tokenizer
    final = save_final(out, model, tokenizer) if main else out / "final"
    barrier(world)
    if world > 1:
        torch.distributed.destroy_process_group()
    return final


# ---------------------------------------------------------------------------- batches, loss, eval


def make_batch(seqs: List[Sequence_], masker: Masker, tokenizer, generator: torch.Generator) -> Batch:
    """Pad packed sequences into a batch and mask it: the same for training and evaluation."""
    batch = collate(seqs, tokenizer.pad_token_id, sorted(set(tokenizer.all_special_ids)))
    words = batch["word_ids"] if masker.word_boundaries else None
    inputs, labels = masker(batch["input_ids"], batch["special"], words, generator=generator,
                            mask_token_id=tokenizer.mask_token_id, vocab_size=len(tokenizer))
    return {"input_ids": inputs, "attention_mask": batch["attention_mask"], "labels": labels}


def masked_lm_loss(net: torch.nn.Module, batch: Batch, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the MLM head on the masked positions only (in fp32)."""
    logits, targets = masked_logits(net, batch)
    return F.cross_entropy(logits, targets, reduction=reduction)


def masked_logits(net: torch.nn.Module, batch: Batch) -> Tuple[torch.Tensor, torch.Tensor]:
    positions = batch["labels"] != IGNORE_INDEX
    logits = net(batch["input_ids"], batch["attention_mask"], positions)
    return logits.float(), batch["labels"][positions]


def make_eval_batches(packer: Packer, n_sequences: int, batch_size: int, masker: Masker, tokenizer,
                      seed: int) -> List[Batch]:
    """The held-out batches, masked once with a fixed seed so every evaluation sees the same task."""
    seqs = list(islice(packer.epoch(0), n_sequences))
    if not seqs and packer.name == HELD_OUT:
        raise SpacyMlmError(f"The training corpus is empty: {packer.files_text()} holds no non-blank text. "
                            "Pass --paths.train a file (or directory) with text.")
    if not seqs:
        raise SpacyMlmError(f"The {packer.name} is empty: {packer.files_text()} holds no non-blank text. Pass "
                            "--paths.dev a file with text, or leave it out to hold out part of the training corpus.")
    # Masked in one go, so the masks do not depend on the batch size (or the number of processes).
    batch = make_batch(seqs, masker, tokenizer, torch.Generator().manual_seed(seed + 1))
    return [{k: v[i : i + batch_size] for k, v in batch.items()} for i in range(0, len(seqs), batch_size)]


@torch.no_grad()
def evaluate(model, batches: Iterable[Batch], device: torch.device, autocast) -> Dict[str, float]:
    """Held-out MLM loss (mean over masked tokens), masked-token accuracy and perplexity."""
    sparse = SparseMLM(model)
    model.eval()
    total, correct, count = 0.0, 0, 0
    for batch in batches:
        with autocast:
            logits, targets = masked_logits(sparse, {k: v.to(device) for k, v in batch.items()})
        total += float(F.cross_entropy(logits, targets, reduction="sum"))
        correct += int((logits.argmax(-1) == targets).sum())
        count += len(targets)
    model.train()
    loss = total / max(count, 1)
    return {"eval_loss": loss, "eval_accuracy": correct / max(count, 1),
            "eval_perplexity": math.exp(min(loss, 50.0)), "eval_masked_tokens": count}


# ---------------------------------------------------------------------------- set-up


def batch_sizes(train_cfg: Dict[str, Any], world: int, max_positions: Optional[int]) -> Tuple[int, int]:
    """(sequences per step, sequences per micro-batch and process), checked."""
    seq_length = train_cfg["seq_length"]
    if max_positions is not None and seq_length > max_positions:
        raise SpacyMlmError(
            f"[training] seq_length = {seq_length} exceeds the model's max_position_embeddings ({max_positions})."
        )
    seqs_per_step = train_cfg["batch_tokens"] // seq_length
    per_micro, rest = divmod(seqs_per_step, train_cfg["grad_accum"] * world)
    if per_micro < 1 or rest:
        raise SpacyMlmError(
            f"batch_tokens // seq_length = {seqs_per_step} sequences per step must be a positive multiple of "
            f"grad_accum x processes = {train_cfg['grad_accum']} x {world}."
        )
    return seqs_per_step, per_micro


def make_packers(cfg, corpora: Dict[str, Any], tokenizer, masker: Masker, out: Path) -> Tuple[Packer, Packer]:
    """Training and dev packers; without a dev corpus, every holdout_every-th training doc is held out.
    The training corpus is tokenized once into [corpus] cache_dir (default: .spacy-mlm-cache beside
    OUTPUT_DIR); the dev corpus streams (only its first eval_sequences are read)."""
    corpus_cfg, seed, seq_length = cfg["corpus"], cfg["system"]["seed"], cfg["training"]["seq_length"]
    train_corpus, dev_corpus = corpora["train"], corpora["dev"]
    held_out = dev_corpus is None
    if held_out:
        dev_corpus = holdout(train_corpus, corpus_cfg["holdout_every"], keep_heldout=True)
        train_corpus = holdout(train_corpus, corpus_cfg["holdout_every"], keep_heldout=False)
    pack = dict(word_boundaries=masker.word_boundaries, word_lang=masker.word_lang,
                tokenize_batch=corpus_cfg["tokenize_batch"])
    cache_dir = None
    if corpus_cfg["cache"]:
        cache_dir = Path(corpus_cfg["cache_dir"]) if corpus_cfg["cache_dir"] else out.parent / ".spacy-mlm-cache"
    corpus_key = json.dumps({"reader": corpus_cfg["train"],
                             "holdout_every": corpus_cfg["holdout_every"] if held_out else None}, sort_keys=True)
    train_data = Packer(train_corpus, tokenizer, seq_length, shuffle_buffer=corpus_cfg["shuffle_buffer"], seed=seed,
                        name="training corpus", cache_dir=cache_dir, corpus_key=corpus_key, **pack)
    return train_data, Packer(dev_corpus, tokenizer, seq_length, name=HELD_OUT if held_out else "dev corpus", **pack)


def make_progress(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="pretrain", unit="step", dynamic_ncols=True)
