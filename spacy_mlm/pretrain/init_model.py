"""Randomly initialised MLM checkpoints for pretraining from scratch."""

from pathlib import Path
from typing import Dict, Union

from ..errors import SpacyMlmError
from .tokenizer import special_token_kwargs

# hidden size, layers, attention heads; the feed-forward width is 4x hidden.
MODEL_SIZES: Dict[str, tuple] = {
    "tiny": (128, 2, 2),
    "mini": (256, 4, 4),
    "small": (512, 4, 8),
    "base": (768, 12, 12),
}
ARCHS = ("bert", "roberta", "distilbert", "modernbert")


def _config_for(arch: str, size: str, tokenizer, max_length: int, **overrides):
    from transformers import BertConfig, DistilBertConfig, ModernBertConfig, RobertaConfig

    hidden, layers, heads = MODEL_SIZES[size]
    ids = dict(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
    )
    if arch == "bert":
        return BertConfig(
            hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=4 * hidden, max_position_embeddings=max_length, **ids, **overrides,
        )
    if arch == "roberta":
        # RoBERTa's positions start after the padding index.
        return RobertaConfig(
            hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=4 * hidden, max_position_embeddings=max_length + tokenizer.pad_token_id + 1,
            bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
            type_vocab_size=1, **ids, **overrides,
        )
    if arch == "distilbert":
        return DistilBertConfig(
            dim=hidden, n_layers=layers, n_heads=heads, hidden_dim=4 * hidden,
            max_position_embeddings=max_length, **ids, **overrides,
        )
    return ModernBertConfig(
        hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=int(1.5 * hidden), max_position_embeddings=max_length,
        cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
        global_attn_every_n_layers=2, local_attention=max(2, min(128, max_length // 2) // 2 * 2),
        **ids, **overrides,
    )


def _tokenizer_for(arch: str, tokenizer, max_length: int):
    """Re-wrap the trained tokenizer in the class the architecture expects, so its
    outputs carry exactly the inputs that model's forward takes."""
    from transformers import (
        BertTokenizerFast,
        DistilBertTokenizerFast,
        PreTrainedTokenizerFast,
        RobertaTokenizerFast,
    )

    backend = tokenizer.backend_tokenizer
    specials = special_token_kwargs(tokenizer)
    if arch == "roberta":
        if tokenizer.mask_token != "<mask>":
            raise SpacyMlmError(
                "--arch roberta needs a byte-level BPE tokenizer: train one with "
                "`spacy-mlm tokenizer ... --kind bpe`."
            )
        return RobertaTokenizerFast(tokenizer_object=backend, model_max_length=max_length, **specials)
    lower = bool(getattr(tokenizer, "do_lower_case", False))
    if arch == "bert":
        return BertTokenizerFast(tokenizer_object=backend, do_lower_case=lower, model_max_length=max_length, **specials)
    if arch == "distilbert":
        return DistilBertTokenizerFast(
            tokenizer_object=backend, do_lower_case=lower, model_max_length=max_length, **specials
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, model_max_length=max_length,
        model_input_names=["input_ids", "attention_mask"], **specials,
    )


def init_model(
    output_dir: Union[str, Path],
    tokenizer_dir: Union[str, Path],
    *,
    arch: str = "bert",
    size: str = "tiny",
    max_length: int = 512,
    seed: int = 0,
    **config_overrides,
):
    """Write a randomly initialised MLM checkpoint (model + tokenizer) to output_dir.

    RETURNS (PreTrainedModel): the AutoModelForMaskedLM model that was saved.
    """
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    if arch not in ARCHS:
        raise SpacyMlmError(f"Unknown --arch {arch!r}: use one of {', '.join(ARCHS)}.")
    if size not in MODEL_SIZES:
        raise SpacyMlmError(f"Unknown --size {size!r}: use one of {', '.join(MODEL_SIZES)}.")
    tok_path = Path(tokenizer_dir)
    if not tok_path.is_dir():
        raise SpacyMlmError(
            f"Tokenizer directory not found: {tok_path}. Train one with `spacy-mlm tokenizer CORPUS {tok_path}`."
        )
    tokenizer = AutoTokenizer.from_pretrained(str(tok_path))
    if tokenizer.mask_token is None or tokenizer.pad_token is None:
        raise SpacyMlmError(f"The tokenizer in {tok_path} has no mask or padding token: an MLM needs both.")
    tokenizer = _tokenizer_for(arch, tokenizer, max_length)
    config = _config_for(arch, size, tokenizer, max_length, **config_overrides)
    torch.manual_seed(seed)
    model = AutoModelForMaskedLM.from_config(config)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))
    return model
