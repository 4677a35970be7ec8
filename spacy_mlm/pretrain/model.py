"""Load the checkpoint to pretrain, and run its MLM head only where tokens are masked."""

import warnings
from typing import Optional, Tuple

import torch
from transformers.modeling_outputs import BaseModelOutput

from ..errors import SpacyMlmError

# Any of these makes a directory a tokenizer directory for AutoTokenizer.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model")


class FreshHeadWarning(UserWarning):
    """The checkpoint had no MLM head: a new one was initialised."""


class _HiddenStates(torch.nn.Module):
    """Stands in for the encoder while the model's own forward runs its head."""

    def __init__(self, hidden: torch.Tensor) -> None:
        super().__init__()
        self.hidden = hidden

    def forward(self, *args, **kwargs) -> BaseModelOutput:
        return BaseModelOutput(last_hidden_state=self.hidden)


def head_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """Vocabulary logits (n, vocab) for hidden states (n, width), through the model's own head
    code (so every *ForMaskedLM architecture works): the encoder is swapped for a stub."""
    prefix = model.base_model_prefix
    encoder = model._modules[prefix]
    model._modules[prefix] = _HiddenStates(hidden.unsqueeze(0))
    try:
        return model(return_dict=True).logits[0]
    finally:
        model._modules[prefix] = encoder


class SparseMLM(torch.nn.Module):
    """Encoder on the whole batch, MLM head on the masked positions only (sparse prediction):
    the vocab projection, the largest matmul in a small encoder, shrinks ~7x at 15% masking."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        encoder = getattr(self.model, self.model.base_model_prefix)
        hidden = encoder(input_ids=input_ids, attention_mask=attention_mask, return_dict=True).last_hidden_state
        return head_logits(self.model, hidden[positions])


def load_mlm_model(
    name: str, tokenizer_name: Optional[str] = None, dropout: Optional[float] = None
) -> Tuple[torch.nn.Module, object]:
    """The AutoModelForMaskedLM and tokenizer to train. A checkpoint without an MLM head gets a
    fresh head with its decoder tied to the input embeddings, and a FreshHeadWarning."""
    from pathlib import Path

    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    local = Path(name)
    if (name.startswith((".", "/", "~")) or local.exists()) and not (local / "config.json").is_file():
        raise SpacyMlmError(
            f"Base model {name!r} is not an HF checkpoint (no config.json). Create one with "
            "`spacy-mlm init-model` or pass a directory written by save_pretrained()."
        )
    tok_name = tokenizer_name or name
    tok_dir = Path(tok_name)
    if tok_dir.is_dir() and not any((tok_dir / f).is_file() for f in TOKENIZER_FILES):
        # transformers would fall back to a slow-tokenizer conversion and fail with an unrelated ImportError.
        raise SpacyMlmError(
            f"Could not load a tokenizer from {tok_name!r}: the directory holds none of {', '.join(TOKENIZER_FILES)}. "
            "Pass a directory written by `spacy-mlm tokenizer` or save_pretrained()."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(tok_name)
    except (OSError, ValueError, ImportError) as e:
        raise SpacyMlmError(f"Could not load a tokenizer from {tok_name!r}: {e}") from None
    if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
        raise SpacyMlmError(f"The tokenizer of {tokenizer_name or name!r} has no mask or padding token.")
    try:
        config = AutoConfig.from_pretrained(name)
        if dropout is not None:
            for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout",
                        "embedding_dropout", "mlp_dropout"):
                if hasattr(config, key):
                    setattr(config, key, dropout)
        from transformers.utils import logging as hf_logging

        # Our own FreshHeadWarning below replaces HF's "newly initialized" message.
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model, info = AutoModelForMaskedLM.from_pretrained(name, config=config, output_loading_info=True)
        finally:
            hf_logging.set_verbosity(verbosity)
    except (OSError, ValueError) as e:
        raise SpacyMlmError(f"Could not load an MLM checkpoint from {name!r}: {e}") from None
    head_missing = [k for k in info["missing_keys"] if not k.startswith(model.base_model_prefix + ".")]
    if head_missing:
        # Tying gives the fresh decoder the trained embeddings: a much better start than random.
        if model.get_output_embeddings() is not None:
            model.config.tie_word_embeddings = True
            model.get_output_embeddings().weight = model.get_input_embeddings().weight
        warnings.warn(
            f"{name} has no masked-LM head (missing {', '.join(head_missing[:3])}...): training a fresh "
            "head with its decoder tied to the input embeddings.",
            FreshHeadWarning,
            stacklevel=2,
        )
    n_embeddings = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > n_embeddings:
        raise SpacyMlmError(
            f"Tokenizer/model vocabulary mismatch: the tokenizer has {len(tokenizer)} entries but the model "
            f"{name} has {n_embeddings} embeddings. Use the tokenizer the model was created with "
            "(`spacy-mlm init-model --tokenizer`)."
        )
    return model, tokenizer
