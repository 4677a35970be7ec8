"""Randomly initialised MLM checkpoints for pretraining from scratch."""

from pathlib import Path
from typing import Dict, Tuple, Union

from ..errors import SpacyMlmError
from .tokenizer import special_token_kwargs

# hidden size, layers, attention heads; the feed-forward width is 4x hidden.
MODEL_SIZES: Dict[str, tuple] = {
    "tiny": (128, 2, 2),
    "mini": (256, 4, 4),
    "small": (512, 4, 8),
    "base": (768, 12, 12),
}
# The tokenizer kinds (`spacy-mlm tokenizer --kind`) each architecture is built with, the first its
# usual one: that of its released checkpoints (ModernBERT's is BPE; WordPiece works as well).
ARCH_TOKENIZERS: Dict[str, Tuple[str, ...]] = {
    "bert": ("wordpiece",),
    "roberta": ("bpe",),
    "distilbert": ("wordpiece",),
    "modernbert": ("bpe", "wordpiece"),
    "xlm-roberta": ("unigram",),
    "deberta-v2": ("unigram",),
    "electra": ("wordpiece",),
    "albert": ("unigram",),
}
ARCHS = tuple(ARCH_TOKENIZERS)
KIND_NAMES = {"wordpiece": "WordPiece", "bpe": "byte-level BPE", "unigram": "Unigram (SentencePiece-style)"}
_MODEL_KINDS = {"WordPiece": "wordpiece", "BPE": "bpe", "Unigram": "unigram"}


def tokenizer_kind(tokenizer) -> str:
    """wordpiece, bpe or unigram: the model of a fast tokenizer's backend."""
    import json

    model_type = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["type"]
    return _MODEL_KINDS.get(model_type, model_type)


def _config_for(arch: str, size: str, tokenizer, max_length: int, **overrides):
    from transformers import (
        AlbertConfig,
        BertConfig,
        DebertaV2Config,
        DistilBertConfig,
        ElectraConfig,
        ModernBertConfig,
        RobertaConfig,
        XLMRobertaConfig,
    )

    hidden, layers, heads = MODEL_SIZES[size]
    ids = dict(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
    )
    shape = dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=4 * hidden)
    if arch == "bert":
        return BertConfig(**shape, max_position_embeddings=max_length, **ids, **overrides)
    if arch in ("roberta", "xlm-roberta"):
        # RoBERTa's positions start after the padding index.
        config_class = RobertaConfig if arch == "roberta" else XLMRobertaConfig
        return config_class(
            **shape, max_position_embeddings=max_length + tokenizer.pad_token_id + 1,
            bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
            type_vocab_size=1, **ids, **overrides,
        )
    if arch == "distilbert":
        return DistilBertConfig(
            dim=hidden, n_layers=layers, n_heads=heads, hidden_dim=4 * hidden,
            max_position_embeddings=max_length, **ids, **overrides,
        )
    if arch == "electra":
        # The generator, ELECTRA's masked LM (ElectraForMaskedLM); its discriminator has no MLM head.
        return ElectraConfig(embedding_size=hidden, **shape, max_position_embeddings=max_length, **ids, **overrides)
    if arch == "albert":
        # Factorised embeddings (vocab x hidden/2, then a projection) and one layer shared by all layers.
        return AlbertConfig(
            embedding_size=hidden // 2, **shape, num_hidden_groups=1, inner_group_num=1,
            max_position_embeddings=max_length, bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id, **ids, **overrides,
        )
    if arch == "deberta-v2":
        # DeBERTa-v3's layout: relative positions only (log buckets), shared attention keys, no token types.
        # legacy=True: the MLM head that transformers loads for released DeBERTa-v2/v3 checkpoints.
        return DebertaV2Config(
            **shape, max_position_embeddings=max_length, relative_attention=True, position_buckets=min(256, max_length),
            norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type=["p2c", "c2p"], position_biased_input=False,
            type_vocab_size=0, legacy=True, **ids, **overrides,
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
    from tokenizers import Tokenizer, processors
    from transformers import (
        AddedToken,
        BertTokenizerFast,
        DistilBertTokenizerFast,
        ElectraTokenizerFast,
        PreTrainedTokenizerFast,
        RobertaTokenizerFast,
    )

    kind = tokenizer_kind(tokenizer)
    if kind not in ARCH_TOKENIZERS[arch]:
        fits = " or ".join(f"a {KIND_NAMES[k]}" for k in ARCH_TOKENIZERS[arch])
        raise SpacyMlmError(
            f"--arch {arch} needs {fits} tokenizer, but the one given is {KIND_NAMES.get(kind, kind)}: train one "
            f"with `spacy-mlm tokenizer CORPUS OUTPUT_DIR --vocab-size N --kind {ARCH_TOKENIZERS[arch][0]}`."
        )
    backend = tokenizer.backend_tokenizer
    specials = special_token_kwargs(tokenizer)
    common = dict(tokenizer_object=backend, model_max_length=max_length, **specials)
    if arch == "roberta":
        return RobertaTokenizerFast(**common)
    if arch in ("xlm-roberta", "deberta-v2", "albert"):
        # PreTrainedTokenizerFast carrying the architecture's conventions, not XLMRobertaTokenizerFast,
        # DebertaV2TokenizerFast or AlbertTokenizerFast: without a sentencepiece .model file their
        # vocab_file is None, and spacy-transformers opens tokenizer.vocab_file whenever the attribute
        # exists (huggingface_from_pretrained, HFShim.to_bytes), so the transformer would not load.
        backend = Tokenizer.from_str(backend.to_str())
        cls, sep = tokenizer.cls_token, tokenizer.sep_token
        # XLM-R: <s> A </s></s> B </s>; DeBERTa-v2/v3 and ALBERT: BERT's layout, with segment ids.
        pair = f"{cls} $A {sep} {sep} $B {sep}" if arch == "xlm-roberta" else f"{cls} $A {sep} $B:1 {sep}:1"
        backend.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}", pair=pair,
            special_tokens=[(cls, tokenizer.cls_token_id), (sep, tokenizer.sep_token_id)],
        )
        inputs = ["input_ids", "attention_mask"] if arch == "xlm-roberta" else ["input_ids", "token_type_ids", "attention_mask"]
        # As in the released tokenizers, the mask token takes the space before it.
        mask = AddedToken(tokenizer.mask_token, lstrip=True, rstrip=False, normalized=False, special=True)
        return PreTrainedTokenizerFast(**{**common, "tokenizer_object": backend, "mask_token": mask},
                                       model_input_names=inputs)
    lower = bool(getattr(tokenizer, "do_lower_case", False))
    wordpiece_classes = {"bert": BertTokenizerFast, "distilbert": DistilBertTokenizerFast, "electra": ElectraTokenizerFast}
    if arch in wordpiece_classes:
        return wordpiece_classes[arch](do_lower_case=lower, **common)
    return PreTrainedTokenizerFast(model_input_names=["input_ids", "attention_mask"], **common)


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
    model, tokenizer = build_model(tokenizer_dir, arch=arch, size=size, max_length=max_length, seed=seed,
                                   **config_overrides)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))
    return model


def build_model(
    tokenizer_dir: Union[str, Path],
    *,
    arch: str = "bert",
    size: str = "tiny",
    max_length: int = 512,
    seed: int = 0,
    **config_overrides,
):
    """init_model without saving: RETURNS (model, tokenizer), the random MLM and its tokenizer."""
    import torch
    from transformers import AutoModelForMaskedLM

    from .model import load_tokenizer

    if arch not in ARCHS:
        raise SpacyMlmError(f"Unknown --arch {arch!r}: use one of {', '.join(ARCHS)}.")
    if size not in MODEL_SIZES:
        raise SpacyMlmError(f"Unknown --size {size!r}: use one of {', '.join(MODEL_SIZES)}.")
    tok_path = Path(tokenizer_dir)
    if tok_path.exists() and not tok_path.is_dir():
        raise SpacyMlmError(
            f"The tokenizer {tok_path} is a file: pass its directory (with tokenizer.json), as written by "
            "`spacy-mlm tokenizer CORPUS OUTPUT_DIR`."
        )
    if not tok_path.is_dir():
        raise SpacyMlmError(
            f"Tokenizer directory not found: {tok_path}. Train one with `spacy-mlm tokenizer CORPUS {tok_path}`."
        )
    tokenizer = load_tokenizer(str(tok_path))
    if tokenizer.mask_token is None or tokenizer.pad_token is None:
        raise SpacyMlmError(f"The tokenizer in {tok_path} has no mask or padding token: an MLM needs both.")
    tokenizer = _tokenizer_for(arch, tokenizer, max_length)
    config = _config_for(arch, size, tokenizer, max_length, **config_overrides)
    torch.manual_seed(seed)
    return AutoModelForMaskedLM.from_config(config), tokenizer
