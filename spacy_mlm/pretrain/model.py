"""Load the checkpoint to pretrain, and run its MLM head only where tokens are masked."""

from pathlib import Path
from typing import Optional, Tuple

import torch

from ..errors import SpacyMlmError
from ..mlm import FreshHeadWarning, head_logits, load_masked_lm

__all__ = ["FreshHeadWarning", "SparseMLM", "TOKENIZER_FILES", "load_mlm_model"]

# Any of these makes a directory a tokenizer directory for AutoTokenizer.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model")
DROPOUT_KEYS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout",
                "embedding_dropout", "mlp_dropout")


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


def load_tokenizer(name: str):
    """AutoTokenizer.from_pretrained, failing with the path and the fix where the directory holds no tokenizer."""
    from transformers import AutoTokenizer

    tok_dir = Path(name)
    if tok_dir.is_dir() and not any((tok_dir / f).is_file() for f in TOKENIZER_FILES):
        # transformers would fall back to a slow-tokenizer conversion and fail with an unrelated ImportError.
        raise SpacyMlmError(
            f"Could not load a tokenizer from {name!r}: the directory holds none of {', '.join(TOKENIZER_FILES)}. "
            "Pass a directory written by `spacy-mlm tokenizer` or save_pretrained()."
        )
    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as e:
        if tok_dir.is_dir():
            check_tokenizer_files(tok_dir)  # names the file where transformers' error names none or the wrong one
        if isinstance(e, (OSError, ValueError, ImportError)):
            raise SpacyMlmError(f"Could not load a tokenizer from {name!r}: {e}") from None
        raise


def check_tokenizer_files(tok_dir: Path) -> None:
    """Every tokenizer file of tok_dir can be read and its tokenizer.json parses, else a SpacyMlmError
    naming the file (transformers reports a damaged tokenizer.json as a missing protobuf package)."""
    from tokenizers import Tokenizer

    from ..readers.lines import open_input

    for name in TOKENIZER_FILES:
        if (tok_dir / name).is_file():
            open_input(tok_dir / name).close()
    if (tok_dir / "tokenizer.json").is_file():
        try:
            Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
        except Exception as e:  # tokenizers raises plain Exceptions
            reason = " ".join(str(e).split())[:200]
            raise SpacyMlmError(
                f"{tok_dir / 'tokenizer.json'} is damaged or not a tokenizer ({reason}): write the tokenizer again "
                "with `spacy-mlm tokenizer` or save_pretrained(), or copy it again."
            ) from None


def load_mlm_model(
    name: str, tokenizer_name: Optional[str] = None, dropout: Optional[float] = None, attn_implementation: str = "auto"
) -> Tuple[torch.nn.Module, object]:
    """The AutoModelForMaskedLM and tokenizer to train. A checkpoint without an MLM head gets a
    fresh head with its decoder tied to the input embeddings, and a FreshHeadWarning.
    attn_implementation: "sdpa", "eager" or "auto" (transformers' choice: sdpa where the architecture has it);
    the model's config._attn_implementation says which one runs."""
    from transformers import MODEL_FOR_MASKED_LM_MAPPING, AutoConfig

    from ..mlm import check_checkpoint

    check_checkpoint(name, role="Base model")
    tokenizer = load_tokenizer(tokenizer_name or name)
    if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
        raise SpacyMlmError(f"The tokenizer of {tokenizer_name or name!r} has no mask or padding token.")
    try:
        config = AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as e:
        raise SpacyMlmError(f"Could not load an MLM checkpoint from {name!r}: {e}") from None
    if dropout is not None:
        for key in DROPOUT_KEYS:
            if hasattr(config, key):
                setattr(config, key, dropout)
    model_class = MODEL_FOR_MASKED_LM_MAPPING.get(type(config), None)
    if attn_implementation == "sdpa" and model_class is not None and not model_class._supports_sdpa:
        raise SpacyMlmError(
            f"[model] attn_implementation = \"sdpa\", but transformers has no SDPA attention for {model_class.__name__} "
            f"({name}): use \"auto\" or \"eager\"."
        )
    model = load_masked_lm(name, config=config, fresh_head=True, role="Base model",
                           attn_implementation=None if attn_implementation == "auto" else attn_implementation)
    n_embeddings = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > n_embeddings:
        raise SpacyMlmError(
            f"Tokenizer/model vocabulary mismatch: the tokenizer has {len(tokenizer)} entries but the model "
            f"{name} has {n_embeddings} embeddings. Use the tokenizer the model was created with "
            "(`spacy-mlm init-model --tokenizer`)."
        )
    return model, tokenizer
