"""`spacy-mlm init-config KIND OUTPUT`: a complete config from the defaults that ship with the
package (spacy_mlm/configs/*.cfg, package data; the repo's configs/ is a link to that folder).

Like `spacy init config`, the written config is filled: every setting the training code reads
is in it, with its default. Training configs are filled by spaCy itself (building the pipeline
from the config, as `spacy init fill-config` does); the pretraining config by its registered
functions' signatures after a check of every section and key.
"""

import sys
from importlib.resources import files
from pathlib import Path
from typing import Optional

import click

from .errors import SpacyMlmError

CONFIG_KINDS = ("pretrain", "dapt", "ner", "textcat", "full", "similarity")
# Kinds written from another kind's file with settings of their own.
DERIVED_KINDS = {"dapt": "pretrain"}
CONFIG_FILES = tuple(kind for kind in CONFIG_KINDS if kind not in DERIVED_KINDS)
# Continued (domain-adaptive) pretraining of a pretrained checkpoint on the user's text. Sized for
# about 2M tokens (100,000 tweets) in under 30 minutes on 2 CPU cores with bf16; BENCHMARKS.md
# ("Domain-adaptive pretraining") has the measurements that chose each value. More text: raise
# max_steps (each step is batch_tokens tokens).
DAPT_SETTINGS = {
    "training.learning_rate": 1e-4,
    "training.warmup_steps": 50,
    "training.batch_tokens": 2048,
    "training.max_steps": 1500,
    "training.eval_frequency": 100,
    "training.checkpoint_frequency": 250,
}
# A checkpoint without an MLM head first trains a fresh one with the encoder frozen, until its
# held-out masked accuracy stops rising (300 steps on all-MiniLM-L6-v2 and tweets).
DAPT_HEAD_WARMUP = {"training.head_warmup_steps": 300, "training.head_warmup_lr": 2e-3}
DAPT_HEADER = """# Continued (domain-adaptive) pretraining, written by `spacy-mlm init-config dapt`:
#   spacy-mlm pretrain THIS_FILE OUTPUT_DIR --paths.train YOUR_TEXT
# The whole model trains for max_steps - head_warmup_steps steps of batch_tokens tokens each;
# for more text, raise --training.max_steps (or write the config with --steps N).
"""
# --windows: how the transformer cuts docs into windows. `strided`: the shipped configs' 128
# spaCy tokens, stride 96. `model-max`: as many wordpieces as the checkpoint takes (spacy_mlm/spans.py).
# `auto`: model-max for a long-context checkpoint (ModernBERT: 8,192 positions), else strided.
WINDOWS = ("auto", "strided", "model-max")
# More positions than this make a checkpoint long-context: BERT-style models have 512 (RoBERTa 514).
LONG_CONTEXT_POSITIONS = 1024
# Stands in for a missing --base-model while spaCy builds the pipeline to fill the config
# (spacy-transformers requires a name there); the written config keeps `base_model = null`.
_PLACEHOLDER_MODEL = "BASE_MODEL"


def default_config_text(kind: str) -> str:
    """The commented default config of KIND as shipped with spacy-mlm."""
    if kind not in CONFIG_KINDS:
        raise SpacyMlmError(f"Unknown config kind {kind!r}: use one of {', '.join(CONFIG_KINDS)}.")
    kind = DERIVED_KINDS.get(kind, kind)
    return files("spacy_mlm").joinpath("configs", f"{kind}.cfg").read_text(encoding="utf8")


def max_positions(base_model: str) -> Optional[int]:
    """The checkpoint's max_position_embeddings (local dir or hub name); None if it cannot be read."""
    import srsly

    config_file = Path(base_model) / "config.json"
    if config_file.is_file():
        try:
            config = srsly.read_json(config_file)
        except (OSError, ValueError) as e:  # not UTF-8, not JSON, unreadable
            raise SpacyMlmError(f"{config_file} is not a readable JSON file ({type(e).__name__}: "
                                f"{str(e)[:200]}): copy or download the checkpoint again.") from None
        return config.get("max_position_embeddings") if isinstance(config, dict) else None
    try:
        from transformers import AutoConfig

        return getattr(AutoConfig.from_pretrained(base_model), "max_position_embeddings", None)
    except (OSError, ValueError):  # offline, unknown name: the caller falls back to strided windows
        return None


def resolve_windows(windows: str, kind: str, base_model: Optional[str]) -> str:
    """`auto`: model-max for a long-context base model of a ner/textcat/full config, else strided."""
    if windows != "auto":
        return windows
    if kind in ("pretrain", "dapt", "similarity") or not base_model:
        return "strided"
    positions = max_positions(base_model)
    return "model-max" if positions is not None and positions > LONG_CONTEXT_POSITIONS else "strided"


def fill_config(kind: str, *, base_model: Optional[str] = None, gpu: bool = False, windows: str = "auto",
                steps: Optional[int] = None, head_warmup_steps: Optional[int] = None):
    """The complete config of KIND (a thinc Config, variables like ${paths.train} kept).

    base_model: sets [paths] base_model. gpu: pretraining runs on GPU 0 ([system] gpu_id = 0);
    spaCy training configs train the transformer in mixed precision (spacy-transformers'
    `mixed_precision`, GPU only; the device itself is `spacy train --gpu-id`).
    windows: "model-max" sets the transformer's span getter to spacy_mlm.model_max_spans.v1
    (windows of the checkpoint's model_max_length wordpieces, e.g. 8,192 for ModernBERT); "auto"
    does so where base_model has more than LONG_CONTEXT_POSITIONS positions, else "strided".
    """
    from thinc.api import Config

    if windows not in WINDOWS:
        raise SpacyMlmError(f"Unknown --windows {windows!r}: use one of {', '.join(WINDOWS)}.")
    windows = resolve_windows(windows, kind, base_model)
    config = Config().from_str(default_config_text(kind), interpolate=False)
    config["paths"]["base_model"] = base_model
    if kind == "dapt":
        apply_dapt(config, base_model, steps, head_warmup_steps)
    elif steps is not None or head_warmup_steps is not None:
        raise SpacyMlmError("--steps and --head-warmup-steps are for init-config dapt.")
    if kind in ("pretrain", "dapt"):
        if windows != "strided":
            raise SpacyMlmError("--windows is for the spaCy training configs: pretraining sets its sequence length "
                                "with [corpus] max_length.")
        from spacy.util import registry

        from .pretrain.config import check_keys

        if gpu:
            config["system"]["gpu_id"] = 0
        check_keys(config)
        return registry.fill(config, validate=True)
    import spacy

    from .pipes import similarity  # noqa: F401  (registers spacy_mlm.pair_spans.v1 etc. without entry points)

    if gpu:
        config["components"]["transformer"]["model"]["mixed_precision"] = True
    if windows == "model-max":
        use_model_max_windows(config, kind)
    config["paths"]["base_model"] = base_model or _PLACEHOLDER_MODEL
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=False)
    filled = spacy.util.load_model_from_config(nlp.config).config  # validate what was filled
    filled["paths"]["base_model"] = base_model
    return filled


def apply_dapt(config, base_model: Optional[str], steps: Optional[int] = None,
               head_warmup_steps: Optional[int] = None) -> None:
    """The pretrain config set for continued pretraining of base_model, with a head warm-up where
    the checkpoint has no MLM head. steps: whole-model steps (default DAPT_SETTINGS');
    head_warmup_steps: the warm-up's steps where there is one (default DAPT_HEAD_WARMUP's)."""
    from spacy.util import set_dot_to_object

    from .mlm import has_mlm_head

    if not base_model:
        raise SpacyMlmError("init-config dapt needs --base-model CKPT (an HF checkpoint dir or hub name): the recipe "
                            "depends on whether the checkpoint ships an MLM head.")
    settings = dict(DAPT_SETTINGS)
    if steps is not None:
        settings["training.max_steps"] = steps
    if not has_mlm_head(base_model):
        settings.update(DAPT_HEAD_WARMUP)
        if head_warmup_steps is not None:
            settings["training.head_warmup_steps"] = head_warmup_steps
        settings["training.max_steps"] += settings["training.head_warmup_steps"]
    for key, value in settings.items():
        set_dot_to_object(config, key, value)


def use_model_max_windows(config, kind: str) -> None:
    """The transformer of a training config encodes windows of the checkpoint's maximum length."""
    from .spans import ARCHITECTURE, SPAN_GETTER

    if kind == "similarity":
        raise SpacyMlmError("--windows model-max: the similarity config encodes sentence pairs with "
                            "spacy_mlm.pair_spans.v1 (pairs are short); keep the default --windows strided.")
    model = config["components"]["transformer"]["model"]
    model["@architectures"] = ARCHITECTURE
    model["get_spans"] = {"@span_getters": SPAN_GETTER, "window": None, "overlap": 0.25}


@click.command("init-config")
@click.argument("kind", type=click.Choice(CONFIG_KINDS))
@click.argument("output_file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--base-model", default=None, help="HF checkpoint dir or hub name: [paths] base_model.")
@click.option("--gpu", is_flag=True,
              help="pretrain: [system] gpu_id = 0; ner/textcat/full/similarity: the transformer trains in mixed precision.")
@click.option("--windows", type=click.Choice(WINDOWS), default="auto", show_default=True,
              help="ner/textcat/full: model-max encodes windows of up to the checkpoint's model_max_length wordpieces "
                   "(8,192 for ModernBERT) instead of 128 spaCy tokens (strided); auto: model-max for a "
                   f"--base-model with more than {LONG_CONTEXT_POSITIONS} positions.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help=f"dapt: whole-model steps of 2,048 tokens (default {DAPT_SETTINGS['training.max_steps']}).")
@click.option("--head-warmup-steps", type=click.IntRange(min=0), default=None,
              help="dapt, for a checkpoint without an MLM head: head-only steps first "
                   f"(default {DAPT_HEAD_WARMUP['training.head_warmup_steps']}).")
@click.option("--force", is_flag=True, help="Replace OUTPUT_FILE if it exists.")
def init_config_command(kind: str, output_file: str, base_model: Optional[str], gpu: bool, windows: str,
                        steps: Optional[int], head_warmup_steps: Optional[int], force: bool) -> None:
    """Write a complete KIND config to OUTPUT_FILE ('-': stdout). An existing file is replaced only
    with --force; OUTPUT_FILE may not lie inside the --base-model directory. A --base-model that
    exists here must be an HF checkpoint (config.json, intact weights).

    \b
    pretrain: spacy-mlm pretrain OUTPUT_FILE OUT_DIR --paths.train FILE
    dapt (continued pretraining of --base-model on your text; a head warm-up first where the
    checkpoint has no MLM head): spacy-mlm pretrain OUTPUT_FILE OUT_DIR --paths.train FILE
    ner, textcat, full, similarity: python -m spacy train OUTPUT_FILE --paths.train T --paths.dev D
    """
    from .safe_output import check_output
    from .util import atomic_write_text, disk_writes

    if output_file != "-":
        check_output(output_file, [base_model], command="spacy-mlm init-config", force=force, kind="file")
    if base_model and Path(base_model).expanduser().exists():
        from .mlm import check_checkpoint

        # A path that does not exist here may be a model on the training machine, or one not trained yet.
        check_checkpoint(base_model, role="Base model")
    text = fill_config(kind, base_model=base_model, gpu=gpu, windows=windows, steps=steps,
                       head_warmup_steps=head_warmup_steps).to_str()
    if kind == "dapt":
        text = DAPT_HEADER + text
    if output_file == "-":
        sys.stdout.write(text)
        return
    with disk_writes("the config", output_file):
        atomic_write_text(output_file, text)
    click.echo(f"Saved a {kind} config to {output_file}")
