"""The run directory: refuse to mix two runs, clean up after a kill, keep the metrics log.

OUTPUT_DIR/run.json holds the run's config and marks the directory as a pretraining run (the
output rule of spacy_mlm/safe_output.py: OUTPUT_DIR must not hold the config, corpus or base
model, and a non-empty directory without run.json needs --force). --resume needs the same config
(up to the keys in RESUMABLE_CHANGES) and a complete checkpoint whenever the run has a final model
or damaged checkpoints, so it never discards finished work; --force starts over, deleting only
the run's own files (RUN_FILE, checkpoints/, final/, the metrics log). Every write is atomic (see
util.py), so a kill, a full disk or a read-only directory leaves the previous complete state.
"""

import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from spacy.util import dict_to_dot
from thinc.api import Config

from ..errors import SpacyMlmError
from ..safe_output import NEW, check_output
from ..util import OLD_PREFIX, TMP_PREFIX, _remove, atomic_write_text, disk_writes, restore_replaced
from .checkpoint import (
    CHECKPOINTS,
    checkpoint_problem,
    latest_checkpoint,
    read_trainer_state,
    refuse_old_format,
    resume_hint,
)

RUN_FILE = "run.json"
# Keys that may change between a run and its --resume.
RESUMABLE_CHANGES = ("training.max_steps", "training.eval_frequency", "training.checkpoint_frequency",
                     "training.keep_checkpoints", "logging.", "system.gpu_id", "system.threads", "corpus.cache")


def prepare_output_dir(out: Path, cfg: Config, *, resume: bool, force: bool, inputs: Iterable[Any] = ()) -> None:
    """Check that out is new or empty, or holds this run (--resume), or may be cleared (--force), and
    that it holds none of the run's inputs (the config file `inputs`, the corpora, the base model and
    tokenizer); write run.json."""
    run_file = out / RUN_FILE
    config_text = cfg.to_str()
    sources = [*inputs, cfg["model"]["name"], cfg["model"]["tokenizer"], cfg["corpus"]["train"].get("path"),
               cfg["corpus"]["dev"].get("path")]
    output = check_output(out, sources, command="spacy-mlm pretrain", force=force, marker=RUN_FILE)
    if output.state != NEW:
        if force:
            with disk_writes("the output directory (--force deletes the previous run)", out):
                for name in (CHECKPOINTS, "final", RUN_FILE, cfg["logging"]["metrics_file"]):
                    target = out / name
                    if target.exists() or target.is_symlink():
                        # Renamed first, so a kill mid-delete leaves no partial checkpoint or final/
                        # under its own name (clean_killed_writes removes the .tmp- leftover).
                        aside = out / f"{TMP_PREFIX}{name}"
                        _remove(aside)
                        os.replace(target, aside)
                        _remove(aside)
        elif resume:
            refuse_old_format(out)
            previous = previous_config(out)
            diff = config_diff(previous, config_text) if previous is not None else []
            if diff:
                raise SpacyMlmError(
                    f"{out} holds a run with a different config ({', '.join(diff[:5])} changed): "
                    "--resume needs the same config. Use --force to start over."
                )
            refuse_restart(out, cfg["logging"]["metrics_file"])
        else:
            raise SpacyMlmError(
                f"Output directory {out} already holds a different run. Pass --resume to continue it or --force to "
                "start over (deletes its checkpoints, final model and metrics)."
            )
    with disk_writes("the run file", run_file, lambda: resume_hint(out)):
        out.mkdir(parents=True, exist_ok=True)
        if resume:
            clean_killed_writes(out)
        atomic_write_text(run_file, json.dumps({"config": config_text}, indent=2))


def refuse_restart(out: Path, metrics_file: str) -> None:
    """--resume never discards finished work: without a complete checkpoint it would start again at
    step 0 and replace final/ and the metrics log, so a run that has a final model or damaged
    checkpoints stops here with the choices. (A run killed before its first checkpoint, with
    neither, starts again at step 0.)"""
    if latest_checkpoint(out) is not None:
        return
    folder, final = out / CHECKPOINTS, out / "final"
    damaged = [(path, checkpoint_problem(path)) for path in sorted(folder.glob("step_*"))] if folder.is_dir() else []
    has_final = final.exists() or (out / f"{OLD_PREFIX}final").is_dir()  # or one a kill left aside
    if not damaged and not has_final:
        return
    found = []
    if damaged:
        found.append("no complete checkpoint: " + "; ".join(f"{path} is damaged ({problem})" for path, problem in damaged))
    else:
        found.append("no checkpoint")
    if has_final:
        found.append(f"{final} holds the finished model")
    lost = f"{final} and {out / metrics_file}" if has_final else str(out / metrics_file)
    if damaged:
        fix = f"delete the damaged checkpoints (rm -r {' '.join(str(path) for path, _ in damaged)})"
        fix += f" and move {final} elsewhere, then rerun with --resume" if has_final else " and rerun with --resume"
        fix += " to start again at step 0 (or put back intact copies of those files to resume from them)"
    else:
        fix = (f"continue training from the finished model in a new directory (--paths.base_model {final}), or move "
               f"{final} elsewhere and rerun with --resume to start again at step 0")
    raise SpacyMlmError(
        f"Cannot resume {out}: it has {', and '.join(found)}. --resume would start again at step 0 and replace {lost}. "
        f"Either {fix}; or start a fresh run with --force instead of --resume (deletes the run's checkpoints, "
        "final model, run.json and metrics; keeps other files)."
    )


def record_settings(out: Path, settings: Dict[str, Any]) -> None:
    """Add what the run's "auto" settings resolved to (precision, attention, ...) to run.json."""
    run_file = out / RUN_FILE
    run = json.loads(run_file.read_text(encoding="utf8"))
    with disk_writes("the run file", run_file, lambda: resume_hint(out)):
        atomic_write_text(run_file, json.dumps({**run, "settings": settings}, indent=2))


def config_diff(a: str, b: str) -> List[str]:
    """The dotted keys that differ between two config texts, except those a resume may change."""
    flat_a = dict_to_dot(Config().from_str(a, interpolate=False))
    flat_b = dict_to_dot(Config().from_str(b, interpolate=False))
    return [key for key in sorted(flat_a.keys() | flat_b.keys())
            if flat_a.get(key) != flat_b.get(key) and not key.startswith(RESUMABLE_CHANGES)]


def previous_config(out: Path) -> Optional[str]:
    """The config of the run in out: run.json's, else (unreadable run.json) its last checkpoint's."""
    try:
        return json.loads((out / RUN_FILE).read_text(encoding="utf8"))["config"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    ckpt = latest_checkpoint(out, warn=False)
    return None if ckpt is None else read_trainer_state(ckpt).get("config")


def clean_killed_writes(out: Path) -> None:
    """Remove what a run killed mid-write left: temporary checkpoint/final directories, a
    checkpoint that was being deleted; put back a final/ that was being replaced."""
    restore_replaced(out / "final")
    for folder in (out, out / CHECKPOINTS):
        for path in folder.iterdir() if folder.is_dir() else []:
            if path.name.startswith((TMP_PREFIX, OLD_PREFIX)):
                _remove(path)


# The metrics log is written with json, not srsly: srsly's ujson rounds floats to 10 digits.


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
