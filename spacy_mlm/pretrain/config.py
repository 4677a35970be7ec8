"""Load and check a pretraining config: unknown keys fail early, naming the closest valid key."""

import difflib
import inspect
import math
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Tuple, Union

from spacy.util import dict_to_dot, dot_to_object, registry
from thinc.api import Config, ConfigValidationError

from ..errors import SpacyMlmError

# Imported for the functions they register (`spacy_mlm.Corpus.v1`, `spacy_mlm.TokenMasking.v1`, ...), which
# configs name: they resolve without the package's entry points too (a source checkout, a stale install).
from ..mlm_data import corpus, masking  # noqa: F401

# The sections without a registered function, with every key they accept.
PLAIN_SECTIONS: Dict[str, Dict[str, Any]] = {
    "system": {"seed": 0, "gpu_id": -1, "threads": 0},
    "model": {"name": None, "tokenizer": None, "dropout": None, "head_only": False, "attn_implementation": "auto"},
    "corpus": {"holdout_every": 50, "tokenize_batch": 256, "shuffle_buffer": 2048, "cache": True, "cache_dir": None},
    "training": {
        "seq_length": 128, "batch_tokens": 4096, "grad_accum": 1, "learning_rate": 5e-4,
        "weight_decay": 0.01, "beta1": 0.9, "beta2": 0.98, "eps": 1e-6, "warmup_steps": 10,
        "schedule": "linear", "max_grad_norm": 1.0, "max_steps": 1000, "eval_frequency": 200,
        "eval_sequences": 256, "checkpoint_frequency": 200, "keep_checkpoints": 2,
        "precision": "auto", "compile": False, "adamw": "auto", "head_warmup_steps": 0, "head_warmup_lr": 1e-3,
    },
    "logging": {"progress_bar": True, "log_frequency": 1, "metrics_file": "metrics.jsonl"},
}
# The allowed values of the plain sections' numbers and flags: (kind, lowest, bound above (excluded),
# lowest allowed?); kind "int" (whole numbers), "float", "bool". dropout may also be null.
BOUNDS: Dict[str, Dict[str, Tuple[str, Optional[float], Optional[float], bool]]] = {
    "system": {"seed": ("int", None, None, True), "gpu_id": ("int", -1, None, True), "threads": ("int", 0, None, True)},
    "model": {"dropout": ("float", 0, 1, True), "head_only": ("bool", None, None, True)},
    "corpus": {"holdout_every": ("int", 2, None, True), "tokenize_batch": ("int", 1, None, True),
               "shuffle_buffer": ("int", 0, None, True), "cache": ("bool", None, None, True)},
    "training": {
        "seq_length": ("int", 8, None, True), "batch_tokens": ("int", 1, None, True), "grad_accum": ("int", 1, None, True),
        "learning_rate": ("float", 0, None, False), "weight_decay": ("float", 0, None, True),
        "beta1": ("float", 0, 1, True), "beta2": ("float", 0, 1, True), "eps": ("float", 0, None, False),
        "warmup_steps": ("int", 0, None, True), "max_grad_norm": ("float", 0, None, False),
        "max_steps": ("int", 1, None, True), "eval_frequency": ("int", 0, None, True),
        "eval_sequences": ("int", 1, None, True), "checkpoint_frequency": ("int", 0, None, True),
        "keep_checkpoints": ("int", 1, None, True), "compile": ("bool", None, None, True),
    },
    "logging": {"progress_bar": ("bool", None, None, True), "log_frequency": ("int", 1, None, True)},
}
FUNCTION_SECTIONS = ("corpus.train", "corpus.dev", "masking")
SECTIONS = ("paths", *PLAIN_SECTIONS, *FUNCTION_SECTIONS)
SCHEDULES = ("linear", "cosine", "constant")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
ATTN_IMPLEMENTATIONS = ("auto", "sdpa", "eager")
ADAMW_IMPLEMENTATIONS = ("auto", "fused", "foreach", "for-loop")


def _closest(key: str, valid: Iterable[str]) -> str:
    match = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.0)
    return f" Did you mean {match[0]!r}?" if match else ""


def _section(cfg: Config, dotted: str) -> Optional[Dict[str, Any]]:
    """The config block at a dotted path, or None where there is none."""
    try:
        node = dot_to_object(cfg, dotted)
    except KeyError:
        return None
    return node if isinstance(node, dict) else None


def check_overrides(cfg: Config, overrides: Dict[str, Any]) -> None:
    """Every override must name a key of the config: a typo would otherwise be ignored."""
    valid = list(dict_to_dot(cfg))
    for key in overrides:
        if key not in valid:
            raise SpacyMlmError(f"Unknown config override --{key}.{_closest(key, valid)}")


def check_keys(cfg: Config) -> None:
    """Check section and key names against the schema and the registered functions' arguments."""
    for section in cfg:
        if section not in SECTIONS and section.split(".")[0] not in SECTIONS:
            raise SpacyMlmError(f"Unknown config section [{section}].{_closest(section, SECTIONS)}")
    for section, defaults in PLAIN_SECTIONS.items():
        for key, value in (_section(cfg, section) or {}).items():
            if isinstance(value, dict) and f"{section}.{key}" in FUNCTION_SECTIONS:
                continue
            if key not in defaults:
                raise SpacyMlmError(
                    f"Unknown config key [{section}] {key}.{_closest(key, defaults)} "
                    f"Valid keys: {', '.join(defaults)}."
                )
    for section in FUNCTION_SECTIONS:
        block = _section(cfg, section)
        if block is None:
            raise SpacyMlmError(f"The config has no [{section}] section: copy it from the output of `spacy-mlm init-config pretrain -`.")
        func_name = block.get("@misc")
        if func_name is None:
            raise SpacyMlmError(f"[{section}] needs an @misc function, e.g. @misc = \"spacy_mlm.Corpus.v1\".")
        try:
            func = registry.misc.get(func_name)
        except Exception:
            kind = "Masking" if section == "masking" else "Corpus"  # suggest a function of the section's kind
            names = [n for n in registry.misc.get_all() if str(n).startswith("spacy_mlm.") and kind in str(n)]
            raise SpacyMlmError(f"Unknown function {func_name!r} in [{section}].{_closest(func_name, names)}") from None
        params = list(inspect.signature(func).parameters)
        for key in block:
            if key != "@misc" and key not in params:
                raise SpacyMlmError(
                    f"Unknown config key [{section}] {key} for {func_name}.{_closest(key, params)} "
                    f"Valid keys: {', '.join(params)}."
                )


def check_bounds(cfg: Config) -> None:
    """Every number and flag of the plain sections has the right kind and lies in its range (BOUNDS)."""
    for section, keys in BOUNDS.items():
        for key, (kind, low, high, low_allowed) in keys.items():
            value = cfg[section][key]
            if value is None and key == "dropout":
                continue
            if kind == "bool":
                if isinstance(value, str) and value.lower() in ("true", "false"):
                    # --logging.progress_bar False arrives as a string; the config file's False is a bool.
                    cfg[section][key] = value = value.lower() == "true"
                if not isinstance(value, bool):
                    raise SpacyMlmError(f"[{section}] {key} = {value!r}: use true or false.")
                continue
            number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if (not number or (kind == "int" and not isinstance(value, int))
                    or (low is not None and (value < low or (value == low and not low_allowed)))
                    or (high is not None and value >= high)):
                what = "a whole number" if kind == "int" else "a number"
                rule = " and ".join(
                    ([f"{'>=' if low_allowed else '>'} {low}"] if low is not None else [])
                    + ([f"< {high}"] if high is not None else [])
                )
                raise SpacyMlmError(f"[{section}] {key} = {value!r}: use {what}{' ' + rule if rule else ''}.")


def read_config(path: Path, **kwargs) -> Config:
    """Config().from_disk, with a file that is not a config (binary, JSON, ...) or a bad ${...}
    reference reported as a SpacyMlmError naming the file."""
    fix = f"Write a config with `spacy-mlm init-config pretrain {path}`."
    try:
        return Config().from_disk(path, **kwargs)
    except UnicodeDecodeError:
        raise SpacyMlmError(f"{path} is not a config file (it is not UTF-8 text). {fix}") from None
    except ConfigValidationError as e:
        detail = " ".join(str(e.desc or e).split())[:300]
        raise SpacyMlmError(f"{path} is not a valid config file: {detail} {fix}") from None


def load_config(path: Union[str, Path], overrides: Optional[Dict[str, Any]] = None) -> Config:
    """Read a config file, apply dotted overrides, check every key, fill plain-section defaults."""
    path = Path(path)
    if not path.is_file():
        raise SpacyMlmError(f"Config file not found: {path}. Write one with `spacy-mlm init-config pretrain {path}`.")
    overrides = dict(overrides or {})
    raw = read_config(path, interpolate=False)
    if not raw:
        raise SpacyMlmError(f"{path} holds no config sections: it is empty. Write a config with "
                            f"`spacy-mlm init-config pretrain {path}`.")
    if "nlp" in raw and "components" in raw:
        raise SpacyMlmError(f"{path} is a spaCy training config ([nlp], [components]), not a pretraining config: "
                            f"train it with `python -m spacy train {path}`, or write a pretraining config with "
                            "`spacy-mlm init-config pretrain FILE`.")
    try:
        check_keys(raw)
        check_overrides(raw, overrides)
    except SpacyMlmError as e:  # an old or edited config: name the file
        raise SpacyMlmError(f"{path}: {e}") from None
    cfg = read_config(path, overrides=overrides, interpolate=True)
    for section, defaults in PLAIN_SECTIONS.items():
        merged = {**defaults, **{k: v for k, v in cfg.get(section, {}).items() if not isinstance(v, dict)}}
        nested = {k: v for k, v in cfg.get(section, {}).items() if isinstance(v, dict)}
        cfg[section] = {**merged, **nested}
    check_bounds(cfg)
    training = cfg["training"]
    if training["schedule"] not in SCHEDULES:
        raise SpacyMlmError(f"[training] schedule = {training['schedule']!r}: use one of {', '.join(SCHEDULES)}.")
    if training["precision"] not in PRECISIONS:
        raise SpacyMlmError(f"[training] precision = {training['precision']!r}: use one of {', '.join(PRECISIONS)}.")
    if training["adamw"] not in ADAMW_IMPLEMENTATIONS:
        raise SpacyMlmError(f"[training] adamw = {training['adamw']!r}: use one of {', '.join(ADAMW_IMPLEMENTATIONS)}.")
    if cfg["model"]["attn_implementation"] not in ATTN_IMPLEMENTATIONS:
        raise SpacyMlmError(f"[model] attn_implementation = {cfg['model']['attn_implementation']!r}: use one of "
                            f"{', '.join(ATTN_IMPLEMENTATIONS)}.")
    warmup_steps = training["head_warmup_steps"]
    if not isinstance(warmup_steps, int) or not 0 <= warmup_steps < training["max_steps"]:
        raise SpacyMlmError(f"[training] head_warmup_steps = {warmup_steps!r}: use a whole number from 0 to "
                            f"max_steps - 1 = {training['max_steps'] - 1} (the whole model trains after it).")
    if cfg["model"]["name"] is None:
        raise SpacyMlmError("No base model: pass --paths.base_model DIR (a checkpoint from `spacy-mlm init-model`).")
    if cfg["corpus"]["train"].get("path") is None:
        raise SpacyMlmError("No training corpus: pass --paths.train FILE.")
    return cfg


def resolve(cfg: Config) -> Dict[str, Any]:
    """Build the registered objects (corpus readers, masking function)."""
    return registry.resolve(cfg, validate=True)
