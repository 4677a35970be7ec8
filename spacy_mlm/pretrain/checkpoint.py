"""Pretraining checkpoints: save, load, rotate, find the latest complete one.

A checkpoint is checkpoints/step_N/ with the model's `save_pretrained` files, its tokenizer,
and one trainer-state file, trainer_state.safetensors: the optimizer's tensors and the RNG
states as tensors, everything else (data position, optimizer param groups, scheduler, scaler,
the run's config) as JSON in its metadata. safetensors rather than torch.save: loading runs no
pickle, and `safe_open` checks that a file is complete without reading its tensors.

It is written to checkpoints/.tmp-step_N and renamed when complete, so a kill leaves no partial
step_N. Test seam: SPACY_MLM_TEST_CHECKPOINT_PAUSE=<seconds> sleeps between the files of a
checkpoint (and of final/), so tests can land kills inside those writes.
"""

import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from safetensors.torch import load_model as load_model_weights

from ..errors import SpacyMlmError
from ..util import OLD_PREFIX, disk_writes, write_dir_atomically

CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.safetensors"
# What load_checkpoint reads: a step_* directory without all of them is not resumable.
CHECKPOINT_FILES = ("config.json", "model.safetensors", TRAINER_STATE)
# Written by spacy-mlm before the one-file trainer state; such a checkpoint is not resumed.
OLD_FORMAT_FILE = "trainer_state.json"
PAUSE_ENV = "SPACY_MLM_TEST_CHECKPOINT_PAUSE"


def pause() -> None:
    """Test seam: with SPACY_MLM_TEST_CHECKPOINT_PAUSE set, sleep between checkpoint (and final/) files."""
    seconds = float(os.environ.get(PAUSE_ENV) or 0)
    if seconds > 0:
        time.sleep(seconds)


def save_checkpoint(out: Path, state: Dict[str, int], model, tokenizer, optimizer, scheduler, scaler,
                    mask_gen: torch.Generator, config_text: str, keep: int) -> Path:
    """Write checkpoints/step_N atomically, then remove all but the newest `keep`."""

    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp))
        pause()
        tokenizer.save_pretrained(str(tmp))
        pause()
        opt = optimizer.state_dict()
        tensors = {f"optimizer.{pid}.{k}": v.detach().cpu().contiguous()
                   for pid, s in opt["state"].items() for k, v in s.items()}
        tensors["rng.torch"], tensors["rng.masking"] = torch.get_rng_state(), mask_gen.get_state()
        if torch.cuda.is_available():
            tensors["rng.cuda"] = torch.cuda.get_rng_state()
        trainer_state = {
            "state": state,
            "param_groups": opt["param_groups"],
            "scheduler": scheduler.state_dict(),
            "scaler": {k: float(v) if torch.is_tensor(v) else v for k, v in scaler.state_dict().items()},
            "config": config_text,
        }
        save_file(tensors, str(tmp / TRAINER_STATE), metadata={"trainer_state": json.dumps(trainer_state)})
        pause()

    path = out / CHECKPOINTS / f"step_{state['step']:08d}"
    with disk_writes("the checkpoint", path, lambda: resume_hint(out)):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_dir_atomically(path, write)
        pause()
        rotate(out / CHECKPOINTS, keep)
    return path


def rotate(folder: Path, keep: int) -> None:
    """Remove all but the newest `keep` checkpoints (none with keep <= 0)."""
    for old in sorted(folder.glob("step_*"))[:-keep] if keep > 0 else []:
        # Renamed first, so a kill mid-delete leaves no partial step_* directory.
        aside = old.parent / f"{OLD_PREFIX}{old.name}"
        os.replace(old, aside)
        shutil.rmtree(aside)


def read_trainer_state(path: Path) -> Dict[str, Any]:
    """The JSON part of a checkpoint's trainer state (data position, scheduler, config...)."""
    with safe_open(str(path / TRAINER_STATE), "pt") as f:
        return json.loads(f.metadata()["trainer_state"])


def load_checkpoint(path: Path, model, optimizer, scheduler, scaler, mask_gen: torch.Generator) -> Dict[str, int]:
    """Restore the weights, optimizer, scheduler, scaler and RNGs; RETURNS the data position."""
    missing, unexpected = load_model_weights(model, str(path / "model.safetensors"), strict=False)
    if unexpected or [k for k in missing if "decoder" not in k]:
        raise SpacyMlmError(f"Checkpoint {path} does not match the model: missing {missing}, unexpected {unexpected}.")
    trainer_state = read_trainer_state(path)
    tensors = load_file(str(path / TRAINER_STATE))
    opt_state: Dict[int, Dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            pid, name = key[len("optimizer."):].split(".", 1)
            opt_state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": trainer_state["param_groups"]})
    scheduler.load_state_dict(trainer_state["scheduler"])
    if trainer_state["scaler"]:
        scaler.load_state_dict(trainer_state["scaler"])
    torch.set_rng_state(tensors["rng.torch"])
    mask_gen.set_state(tensors["rng.masking"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return {k: int(v) for k, v in trainer_state["state"].items()}


def checkpoint_problem(path: Path) -> Optional[str]:
    """Why the checkpoint directory can't be resumed from (a missing or truncated file), or None."""
    for name in CHECKPOINT_FILES:
        if not (path / name).is_file():
            return f"{name} is missing"
    for name in ("model.safetensors", TRAINER_STATE):
        try:
            # Opening checks the header and that the file is as long as the header says.
            with safe_open(str(path / name), "pt"):
                pass
        except (OSError, SafetensorError) as e:
            return f"{name} is truncated or damaged ({e})"
    try:
        read_trainer_state(path)["state"]["step"]
    except (ValueError, KeyError, TypeError):
        return f"{TRAINER_STATE} holds no valid trainer state"
    return None


def latest_checkpoint(out: Path, warn: bool = False) -> Optional[Path]:
    """The newest complete checkpoint. Incomplete ones (copied in part, damaged) are skipped."""
    folder = out / CHECKPOINTS
    ckpts = sorted(folder.glob("step_*")) if folder.is_dir() else []
    for path in reversed(ckpts):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        if warn:
            warnings.warn(f"Skipping the incomplete checkpoint {path}: {problem}.", stacklevel=2)
    return None


def refuse_old_format(out: Path) -> None:
    """--resume of a run whose newest checkpoint has the old five-file format: say what to do."""
    folder = out / CHECKPOINTS
    newest = max(folder.glob("step_*"), default=None) if folder.is_dir() else None
    if newest is not None and (newest / OLD_FORMAT_FILE).is_file() and not (newest / TRAINER_STATE).exists():
        raise SpacyMlmError(
            f"{newest} was written by an older spacy-mlm (optimizer, RNG and trainer state in separate files), "
            "which this version cannot resume. Either finish the run with the spacy-mlm version that started it, "
            f"or start a new run from its weights: --paths.base_model {newest} and a new output directory "
            f"(or --force to replace {out})."
        )


def resume_hint(out: Path) -> str:
    """What a failed write leaves behind, for the error message."""
    ckpt = latest_checkpoint(out)
    if ckpt is None:
        return "No checkpoint has been written yet: rerun the command once the directory is writable."
    size = sum(p.stat().st_size for p in ckpt.iterdir() if p.is_file())
    return (f"Nothing was lost: the last complete checkpoint, {ckpt}, is intact (a checkpoint takes "
            f"{size / 1e6:.1f} MB): rerun the same command with --resume.")


def save_final(out: Path, model, tokenizer) -> Path:
    """OUTPUT_DIR/final: a plain HF checkpoint with its tokenizer, replaced atomically."""
    final = out / "final"
    model.config.untrained_mlm_head = False  # the head has been trained now
    with disk_writes("the final model", final, lambda: resume_hint(out)):
        write_dir_atomically(final, lambda tmp: (model.save_pretrained(str(tmp)), pause(),
                                                 tokenizer.save_pretrained(str(tmp)), pause()))
    return final
