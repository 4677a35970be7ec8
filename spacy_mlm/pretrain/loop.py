"""The MLM pretraining loop, readable top to bottom (nanoGPT-style).

One optimizer step: take the next global batch of packed sequences (identical on every
process), mask it with the seeded masking generator, keep this process's rows, run the
encoder and the MLM head on the masked positions only, sum the loss over gradient
accumulation micro-batches normalised by the global number of masked tokens (so N
processes compute exactly the gradient of one process on the whole batch), clip, step.

Crash safety: every file and directory the loop writes (run.json, metrics.jsonl rewrites,
checkpoints, final/) is written under a temporary name and renamed into place, so a SIGKILL,
a full disk or a read-only directory leaves the previous complete checkpoint, and --resume
starts from the newest complete one. Test seam: SPACY_MLM_TEST_CHECKPOINT_PAUSE=<seconds>
sleeps between the files of a checkpoint (and of final/), so tests can land kills inside those writes.
"""

import json
import math
import os
import shutil
import struct
import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from safetensors.torch import load_model as load_model_weights

from ..errors import SpacyMlmError
from ..util import (
    OLD_PREFIX,
    TMP_PREFIX,
    _remove,
    atomic_write_text,
    disk_writes,
    restore_replaced,
    write_dir_atomically,
)
from .config import load_config, resolve
from .corpus import holdout
from .masking import IGNORE_INDEX
from .model import SparseMLM, load_mlm_model
from .packing import Packer, collate

CHECKPOINTS = "checkpoints"
RUN_FILE = "run.json"
# What load_checkpoint reads: a step_* directory without all of them is not resumable.
CHECKPOINT_FILES = ("config.json", "model.safetensors", "optimizer.safetensors", "rng.safetensors",
                    "trainer_state.json")
PAUSE_ENV = "SPACY_MLM_TEST_CHECKPOINT_PAUSE"
# Keys that may change between a run and its --resume.
RESUMABLE_CHANGES = ("training.max_steps", "training.eval_frequency", "training.checkpoint_frequency",
                     "training.keep_checkpoints", "logging.", "system.gpu_id", "system.threads")


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
    return train(cfg, Path(output_dir), resume=resume, force=force, on_step=on_step)


def train(cfg, out: Path, *, resume: bool = False, force: bool = False, on_step=None) -> Path:
    T, S = cfg["training"], cfg["system"]
    # ---- processes and device: torchrun sets WORLD_SIZE/RANK/LOCAL_RANK
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = S["gpu_id"] >= 0
    if use_cuda and not torch.cuda.is_available():
        raise SpacyMlmError(f"gpu_id = {S['gpu_id']} but CUDA is not available: use --gpu-id -1 for CPU.")
    device = torch.device(f"cuda:{local_rank if world > 1 else S['gpu_id']}") if use_cuda else torch.device("cpu")
    if world > 1 and not torch.distributed.is_initialized():
        if use_cuda:
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    if S["threads"]:
        torch.set_num_threads(S["threads"])
    torch.manual_seed(S["seed"])
    main = rank == 0

    # ---- output directory: refuse to mix two runs
    config_text = cfg.to_str()
    if main:
        prepare_output_dir(out, cfg, resume=resume, force=force)
    barrier(world)

    # ---- model, data, masking, optimizer
    objs = resolve(cfg)
    model, tokenizer = load_mlm_model(cfg["model"]["name"], cfg["model"]["tokenizer"], cfg["model"]["dropout"])
    masker = objs["masking"]
    seq_length = T["seq_length"]
    if seq_length > getattr(model.config, "max_position_embeddings", seq_length):
        raise SpacyMlmError(
            f"[training] seq_length = {seq_length} exceeds the model's max_position_embeddings "
            f"({model.config.max_position_embeddings})."
        )
    seqs_per_step = T["batch_tokens"] // seq_length
    per_micro, rest = divmod(seqs_per_step, T["grad_accum"] * world)
    if per_micro < 1 or rest:
        raise SpacyMlmError(
            f"batch_tokens // seq_length = {seqs_per_step} sequences per step must be a positive multiple of "
            f"grad_accum x processes = {T['grad_accum']} x {world}."
        )
    corpus_cfg = cfg["corpus"]
    train_corpus, dev_corpus = objs["corpus"]["train"], objs["corpus"]["dev"]
    if dev_corpus is None:
        dev_corpus = holdout(train_corpus, corpus_cfg["holdout_every"], keep_heldout=True)
        train_corpus = holdout(train_corpus, corpus_cfg["holdout_every"], keep_heldout=False)
    pack = dict(word_boundaries=masker.word_boundaries, tokenize_batch=corpus_cfg["tokenize_batch"])
    train_data = Packer(train_corpus, tokenizer, seq_length, shuffle_buffer=corpus_cfg["shuffle_buffer"],
                        seed=S["seed"], name="training corpus", **pack)
    special_ids = sorted(set(tokenizer.all_special_ids))
    mask_args = dict(mask_token_id=tokenizer.mask_token_id, vocab_size=len(tokenizer))
    eval_batches = make_eval_batches(Packer(dev_corpus, tokenizer, seq_length, name="dev corpus", **pack),
                                     T["eval_sequences"], per_micro, masker, tokenizer, special_ids, mask_args,
                                     S["seed"])

    if cfg["model"]["head_only"]:
        for p in getattr(model, model.base_model_prefix).parameters():
            p.requires_grad_(False)
    model.to(device)
    model.train()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_decay = [p for n, p in params if p.ndim < 2 or "norm" in n.lower()]  # biases, LayerNorms
    decay = [p for n, p in params if not (p.ndim < 2 or "norm" in n.lower())]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": T["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=T["learning_rate"], betas=(T["beta1"], T["beta2"]), eps=T["eps"],
    )
    scheduler = make_scheduler(optimizer, T["schedule"], T["warmup_steps"], T["max_steps"])
    autocast = make_autocast(T["precision"], device)
    scaler = torch.amp.GradScaler("cuda", enabled=T["precision"] == "fp16")
    mask_gen = torch.Generator().manual_seed(S["seed"])

    # ---- resume: weights, optimizer, scheduler, RNG and data position
    state = {"step": 0, "sequences": 0, "tokens": 0}
    last_checkpoint = latest_checkpoint(out, warn=main) if resume else None
    if last_checkpoint is not None:
        state = load_checkpoint(last_checkpoint, model, optimizer, scheduler, scaler, mask_gen)
    if resume and main:
        # Also without a checkpoint: the killed run's log lines would otherwise be doubled.
        truncate_metrics(out / cfg["logging"]["metrics_file"], state["step"])
        if last_checkpoint is not None:
            print(f"Resuming from {last_checkpoint} (step {state['step']})", flush=True)
        else:
            print(f"No complete checkpoint in {out / CHECKPOINTS}: starting from step 0", flush=True)

    net: torch.nn.Module = SparseMLM(model)
    if T["compile"]:
        net = torch.compile(net)
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if use_cuda else None)

    # ---- the loop
    stream = train_data.stream(skip=state["sequences"])
    metrics_path = out / cfg["logging"]["metrics_file"]
    step, max_steps = state["step"], T["max_steps"]
    progress = make_progress(max_steps, step, enabled=main and cfg["logging"]["progress_bar"])
    t0, tokens_t0 = time.perf_counter(), state["tokens"]
    while step < max_steps:
        # Global batch, masked identically on every process; this process keeps its rows.
        batch = collate([next(stream)[1] for _ in range(seqs_per_step)], tokenizer.pad_token_id, special_ids)
        words = batch["word_ids"] if masker.word_boundaries else None
        inputs, labels = masker(batch["input_ids"], batch["special"], words, generator=mask_gen, **mask_args)
        n_masked = max(1, int((labels != IGNORE_INDEX).sum()))
        rows = slice(rank * per_micro * T["grad_accum"], (rank + 1) * per_micro * T["grad_accum"])
        inputs, labels, attention = inputs[rows], labels[rows], batch["attention_mask"][rows]

        loss_sum = torch.zeros((), device=device)
        for micro in range(T["grad_accum"]):
            part = slice(micro * per_micro, (micro + 1) * per_micro)
            x, am, y = inputs[part].to(device), attention[part].to(device), labels[part].to(device)
            positions = y != IGNORE_INDEX
            last = micro == T["grad_accum"] - 1
            sync = net.no_sync() if world > 1 and not last else nullcontext()
            with sync, autocast:
                logits = net(x, am, positions)
                # Sum over this micro-batch / masked tokens in the global batch: summing over
                # micro-batches and averaging over processes (DDP) gives the global mean.
                loss = F.cross_entropy(logits.float(), y[positions], reduction="sum") / n_masked
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
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), T["max_grad_norm"])
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        state["step"], state["sequences"] = step, state["sequences"] + seqs_per_step
        state["tokens"] += int(batch["attention_mask"].sum())  # non-padding tokens, all processes

        elapsed = time.perf_counter() - t0
        record = {"step": step, "loss": loss_value, "lr": scheduler.get_last_lr()[0],
                  "grad_norm": float(grad_norm), "tokens": state["tokens"],
                  "tokens_per_s": (state["tokens"] - tokens_t0) / max(elapsed, 1e-9)}
        if main and (step % cfg["logging"]["log_frequency"] == 0 or step == max_steps):
            append_jsonl(metrics_path, record)
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
        if T["eval_frequency"] and (step % T["eval_frequency"] == 0 or step == max_steps):
            if main:
                record_eval = {"step": step, **evaluate(model, eval_batches, device, autocast)}
                append_jsonl(metrics_path, record_eval)
                record.update(record_eval)
            barrier(world)
        if T["checkpoint_frequency"] and step % T["checkpoint_frequency"] == 0 and step < max_steps:
            if main:
                save_checkpoint(out, state, model, tokenizer, optimizer, scheduler, scaler, mask_gen,
                                config_text, keep=T["keep_checkpoints"])
            barrier(world)
        if on_step is not None:
            on_step(step, record)
    if progress is not None:
        progress.close()

    # ---- final: a plain HF checkpoint with its tokenizer
    final = out / "final"
    if main:
        with disk_writes("the final model", final, lambda: resume_hint(out)):
            write_dir_atomically(final, lambda tmp: (model.save_pretrained(str(tmp)), _pause(),
                                                     tokenizer.save_pretrained(str(tmp)), _pause()))
    barrier(world)
    if world > 1:
        torch.distributed.destroy_process_group()
    return final


# ---------------------------------------------------------------------------- helpers


def barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


def make_scheduler(optimizer, schedule: str, warmup: int, max_steps: int):
    from transformers import (
        get_constant_schedule_with_warmup,
        get_cosine_schedule_with_warmup,
        get_linear_schedule_with_warmup,
    )

    if schedule == "constant":
        return get_constant_schedule_with_warmup(optimizer, warmup)
    make = get_cosine_schedule_with_warmup if schedule == "cosine" else get_linear_schedule_with_warmup
    return make(optimizer, warmup, max_steps)


def make_autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise SpacyMlmError("precision = fp16 needs a GPU (--gpu-id 0); on CPU use bf16 or fp32.")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def make_progress(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="pretrain", unit="step", dynamic_ncols=True)


def make_eval_batches(packer, n_sequences, batch_size, masker, tokenizer, special_ids, mask_args, seed) -> List:
    """The held-out batches, masked once with a fixed seed so every evaluation sees the same task."""
    seqs = []
    for seq in packer.epoch(0):
        seqs.append(seq)
        if len(seqs) >= n_sequences:
            break
    if not seqs:
        raise SpacyMlmError("The dev corpus is empty: pass --paths.dev with text, or leave it out to hold out "
                            "part of the training corpus.")
    # Masked in one go, so the masks do not depend on the batch size (or the number of processes).
    gen = torch.Generator().manual_seed(seed + 1)
    batch = collate(seqs, tokenizer.pad_token_id, special_ids)
    words = batch["word_ids"] if masker.word_boundaries else None
    inputs, labels = masker(batch["input_ids"], batch["special"], words, generator=gen, **mask_args)
    return [(inputs[i : i + batch_size], batch["attention_mask"][i : i + batch_size], labels[i : i + batch_size])
            for i in range(0, len(seqs), batch_size)]


@torch.no_grad()
def evaluate(model, batches, device, autocast) -> Dict[str, float]:
    """Held-out MLM loss (mean over masked tokens), masked-token accuracy and perplexity."""
    sparse = SparseMLM(model)
    model.eval()
    total, correct, count = 0.0, 0, 0
    for inputs, attention, labels in batches:
        labels = labels.to(device)
        positions = labels != IGNORE_INDEX
        with autocast:
            logits = sparse(inputs.to(device), attention.to(device), positions).float()
        target = labels[positions]
        total += float(F.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(-1) == target).sum())
        count += int(positions.sum())
    model.train()
    loss = total / max(count, 1)
    return {"eval_loss": loss, "eval_accuracy": correct / max(count, 1),
            "eval_perplexity": math.exp(min(loss, 50.0)), "eval_masked_tokens": count}


def append_jsonl(path: Path, record: Dict[str, Any]) -> None:
    with disk_writes("the metrics log", path, lambda: resume_hint(path.parent)):
        with path.open("a", encoding="utf8") as f:
            f.write(json.dumps(record) + "\n")


def truncate_metrics(path: Path, step: int) -> None:
    """Drop the log lines a killed run wrote after its last checkpoint, and a line it was
    killed in the middle of writing."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # torn by a kill mid-write
        if isinstance(record, dict) and record.get("step", 0) <= step:
            kept.append(line)
    with disk_writes("the metrics log", path, lambda: resume_hint(path.parent)):
        atomic_write_text(path, "".join(line + "\n" for line in kept))


# ---------------------------------------------------------------------------- output dir + checkpoints


def _config_diff(a: str, b: str) -> List[str]:
    from thinc.api import Config

    from .config import _flat_keys, _section

    ca, cb = Config().from_str(a, interpolate=False), Config().from_str(b, interpolate=False)
    diff = []
    for key in sorted(set(_flat_keys(ca)) | set(_flat_keys(cb))):
        section, _, name = key.rpartition(".")
        va, vb = (_section(ca, section) or {}).get(name), (_section(cb, section) or {}).get(name)
        if va != vb and not key.startswith(RESUMABLE_CHANGES):
            diff.append(key)
    return diff


def prepare_output_dir(out: Path, cfg, *, resume: bool, force: bool) -> None:
    run_file = out / RUN_FILE
    config_text = cfg.to_str()
    if out.exists() and any(out.iterdir()):
        if force:
            with disk_writes("the output directory (--force deletes the previous run)", out):
                for name in (CHECKPOINTS, "final", RUN_FILE, cfg["logging"]["metrics_file"]):
                    target = out / name
                    if target.is_dir():
                        shutil.rmtree(target)
                    elif target.exists():
                        target.unlink()
        elif resume:
            previous = _previous_config(out)
            diff = _config_diff(previous, config_text) if previous is not None else []
            if diff:
                raise SpacyMlmError(
                    f"{out} holds a run with a different config ({', '.join(diff[:5])} changed): "
                    "--resume needs the same config. Use --force to start over."
                )
        else:
            what = "a different run" if run_file.exists() else "files"
            raise SpacyMlmError(
                f"Output directory {out} already holds {what}. Pass --resume to continue it or --force to "
                "start over (deletes its checkpoints, final model and metrics)."
            )
    with disk_writes("the run file", run_file, lambda: resume_hint(out)):
        out.mkdir(parents=True, exist_ok=True)
        if resume:
            clean_killed_writes(out)
        atomic_write_text(run_file, json.dumps({"config": config_text}, indent=2))


def _previous_config(out: Path) -> Optional[str]:
    """The config of the run in out: run.json's, else (unreadable run.json) its last checkpoint's."""
    try:
        return json.loads((out / RUN_FILE).read_text(encoding="utf8"))["config"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    ckpt = latest_checkpoint(out, warn=False)
    if ckpt is None:
        return None
    return json.loads((ckpt / "trainer_state.json").read_text(encoding="utf8")).get("config")


def clean_killed_writes(out: Path) -> None:
    """Remove what a run killed mid-write left: temporary checkpoint/final directories, a
    checkpoint that was being deleted; put back a final/ that was being replaced."""
    restore_replaced(out / "final")
    for folder in (out, out / CHECKPOINTS):
        for path in folder.iterdir() if folder.is_dir() else []:
            if path.name.startswith((TMP_PREFIX, OLD_PREFIX)):
                _remove(path)


# Kept for callers of the old name.
write_atomically = write_dir_atomically


def checkpoint_problem(path: Path) -> Optional[str]:
    """Why the checkpoint directory can't be resumed from (a missing or truncated file), or None."""
    for name in CHECKPOINT_FILES:
        if not (path / name).is_file():
            return f"{name} is missing"
    for name in CHECKPOINT_FILES:
        if name.endswith(".safetensors"):
            problem = _safetensors_problem(path / name)
            if problem:
                return f"{name} {problem}"
    try:
        json.loads((path / "trainer_state.json").read_text(encoding="utf8"))["state"]["step"]
    except (OSError, ValueError, KeyError, TypeError):
        return "trainer_state.json is not valid"
    return None


def _safetensors_problem(path: Path) -> Optional[str]:
    """A cheap completeness check: the header parses and the file is as long as it says."""
    try:
        with path.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return "has no valid safetensors header"
    if path.stat().st_size != 8 + n + end:
        return f"is truncated ({path.stat().st_size} of {8 + n + end} bytes)"
    return None


def latest_checkpoint(out: Path, warn: bool = False) -> Optional[Path]:
    """The newest complete checkpoint. Incomplete ones (copied in part, damaged) are skipped."""
    ckpts = sorted((out / CHECKPOINTS).glob("step_*")) if (out / CHECKPOINTS).is_dir() else []
    for path in reversed(ckpts):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        if warn:
            warnings.warn(f"Skipping the incomplete checkpoint {path}: {problem}.", stacklevel=2)
    return None


def resume_hint(out: Path) -> str:
    """What a failed write leaves behind, for the error message."""
    ckpt = latest_checkpoint(out)
    if ckpt is None:
        return "No checkpoint has been written yet: rerun the command once the directory is writable."
    size = sum(p.stat().st_size for p in ckpt.iterdir() if p.is_file())
    return (f"Nothing was lost: the last complete checkpoint, {ckpt}, is intact (a checkpoint takes "
            f"{size / 1e6:.1f} MB): rerun the same command with --resume.")


def _pause() -> None:
    """Test seam: with SPACY_MLM_TEST_CHECKPOINT_PAUSE set, sleep between checkpoint (and final/) files."""
    seconds = float(os.environ.get(PAUSE_ENV) or 0)
    if seconds > 0:
        time.sleep(seconds)


def save_checkpoint(out, state, model, tokenizer, optimizer, scheduler, scaler, mask_gen, config_text, keep) -> Path:
    """Model (safetensors), optimizer (tensors as safetensors + JSON), scheduler, RNG, data position.
    Written to checkpoints/.tmp-step_N and renamed to step_N when complete; older ones are
    removed only after that."""

    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp))
        _pause()
        tokenizer.save_pretrained(str(tmp))
        _pause()
        opt = optimizer.state_dict()
        tensors = {f"{pid}.{k}": v.detach().cpu().contiguous() for pid, s in opt["state"].items() for k, v in s.items()}
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        _pause()
        trainer_state = {
            "state": state,
            "param_groups": opt["param_groups"],
            "scheduler": scheduler.state_dict(),
            "scaler": {k: float(v) if torch.is_tensor(v) else v for k, v in scaler.state_dict().items()},
            "config": config_text,
        }
        (tmp / "trainer_state.json").write_text(json.dumps(trainer_state, indent=2), encoding="utf8")
        _pause()
        rng = {"torch": torch.get_rng_state(), "masking": mask_gen.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state()
        save_file(rng, str(tmp / "rng.safetensors"))
        _pause()

    path = out / CHECKPOINTS / f"step_{state['step']:08d}"
    with disk_writes("the checkpoint", path, lambda: resume_hint(out)):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_dir_atomically(path, write)
        _pause()
        for old in sorted((out / CHECKPOINTS).glob("step_*"))[:-keep] if keep > 0 else []:
            # Renamed first, so a kill mid-delete leaves no partial step_* directory.
            aside = old.parent / f"{OLD_PREFIX}{old.name}"
            os.replace(old, aside)
            shutil.rmtree(aside)
    return path


def load_checkpoint(path: Path, model, optimizer, scheduler, scaler, mask_gen) -> Dict[str, int]:
    missing, unexpected = load_model_weights(model, str(path / "model.safetensors"), strict=False)
    if unexpected or [k for k in missing if "decoder" not in k]:
        raise SpacyMlmError(f"Checkpoint {path} does not match the model: missing {missing}, unexpected {unexpected}.")
    trainer_state = json.loads((path / "trainer_state.json").read_text(encoding="utf8"))
    tensors = load_file(str(path / "optimizer.safetensors"))
    opt_state: Dict[int, Dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        opt_state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": trainer_state["param_groups"]})
    scheduler.load_state_dict(trainer_state["scheduler"])
    if trainer_state["scaler"]:
        scaler.load_state_dict(trainer_state["scaler"])
    rng = load_file(str(path / "rng.safetensors"))
    torch.set_rng_state(rng["torch"])
    mask_gen.set_state(rng["masking"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    return {k: int(v) for k, v in trainer_state["state"].items()}
