"""The one MLM core: load a masked-LM checkpoint, run its own head on hidden states, and
tell a spaCy pipeline from an HF checkpoint. Pipes, pretraining, scoring and the CLI use it.

spacy-transformers loads checkpoints with `AutoModel`, which drops the MLM head. We load the
same checkpoint with `AutoModelForMaskedLM` and run the model's own forward with its encoder
swapped for a stub that hands back hidden states we already have: every architecture with a
masked-LM class works and matches HF exactly.
"""

import json
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Union

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from transformers.modeling_outputs import BaseModelOutput

from .errors import SpacyMlmError


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
    """Vocabulary logits (n, vocab) for hidden states (n, width), through the *ForMaskedLM
    model's own head code: its encoder is swapped for a stub during the call."""
    prefix = model.base_model_prefix
    encoder = model._modules[prefix]
    model._modules[prefix] = _HiddenStates(hidden.unsqueeze(0))
    try:
        return model(return_dict=True).logits[0]
    finally:
        model._modules[prefix] = encoder


def check_checkpoint(checkpoint: Union[str, Path], role: str = "Checkpoint", also: str = "") -> str:
    """Fail early, naming the path, when a local checkpoint is missing, not an HF checkpoint, or
    has a damaged (e.g. truncated) or unreadable safetensors file. Names that are not local paths are
    left to the hub. also: what else the caller accepts, for the message (e.g. "a spaCy pipeline")."""
    name = str(checkpoint)
    local = Path(name).expanduser()
    if (name.startswith((".", "/", "~")) or local.exists()) and not (local / "config.json").is_file():
        why = ("(the directory does not exist)" if not local.exists()
               else "(it is a file, not a directory)" if not local.is_dir()
               else "(no config.json): the directory exists, but it has no config.json")
        raise SpacyMlmError(
            f"{role} {name!r} is not an HF checkpoint {why}. Pass a directory written by save_pretrained() "
            f"or `spacy-mlm init-model`, {also + ', ' if also else ''}or a hub name."
        )
    if local.is_dir():
        for weights in sorted(local.glob("*.safetensors")):
            check_safetensors(weights, f"{role} {name!r}")
    return name


def check_safetensors(path: Path, owner: str) -> None:
    """Read the header of a safetensors file (not its tensors): a truncated or damaged file fails
    here, naming the file, instead of deep inside the model loading."""
    from safetensors import safe_open

    from .readers.lines import open_input

    open_input(path).close()  # safetensors reports a file it may not read as missing
    try:
        with safe_open(str(path), framework="pt"):
            pass
    except (OSError, SafetensorError) as e:
        raise SpacyMlmError(
            f"{owner}: {path} is damaged or incomplete ({e}). Copy or download the checkpoint again, or "
            "write it again with save_pretrained()."
        ) from None


def load_masked_lm(checkpoint: Union[str, Path], *, config=None, fresh_head: bool = False, role: str = "Checkpoint",
                   attn_implementation: Optional[str] = None):
    """The AutoModelForMaskedLM of an HF checkpoint (a local directory or a hub name).

    A checkpoint without MLM head weights raises, unless fresh_head: then the new head's decoder
    is tied to the input embeddings (a much better start than random) and a FreshHeadWarning says so.
    attn_implementation ("sdpa", "eager"; None: transformers' default, sdpa where the architecture has it).
    """
    from transformers import AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging

    name = check_checkpoint(checkpoint, role)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # our own errors and FreshHeadWarning replace HF's "newly initialized"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kwargs = {} if config is None else {"config": config}
            if attn_implementation is not None:
                kwargs["attn_implementation"] = attn_implementation
            model, info = AutoModelForMaskedLM.from_pretrained(name, output_loading_info=True, **kwargs)
    except (OSError, ValueError, SafetensorError) as e:
        raise SpacyMlmError(
            f"Could not load an MLM checkpoint from {name!r}: {str(e).rstrip('.')}. Check the path or hub name, and that its "
            "config.json names an architecture with a masked-LM class (BERT, RoBERTa, DistilBERT, ModernBERT, ...)."
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    head_missing = [k for k in info["missing_keys"] if not k.startswith(model.base_model_prefix + ".")]
    if head_missing and not fresh_head:
        raise SpacyMlmError(
            f"{role} {name!r} has no masked-LM head (missing weights: {', '.join(head_missing[:4])}), so its "
            "predictions would be random: use a checkpoint saved from an *ForMaskedLM model, or train a head "
            "with `spacy-mlm pretrain` (it adds one to head-less checkpoints)."
        )
    if head_missing:
        # Saved with the model, so a copy of it (e.g. the project's models/base) still says its head
        # is untrained; MLM pretraining's final checkpoint clears it.
        model.config.untrained_mlm_head = True
        if model.get_output_embeddings() is not None:
            model.config.tie_word_embeddings = True
            model.get_output_embeddings().weight = model.get_input_embeddings().weight
        warnings.warn(
            f"{name} has no masked-LM head (missing {', '.join(head_missing[:3])}...): training a fresh "
            "head with its decoder tied to the input embeddings.",
            FreshHeadWarning,
            stacklevel=2,
        )
    return model


def has_mlm_head(checkpoint: Union[str, Path]) -> bool:
    """Does the checkpoint ship trained masked-LM head weights? (Loads it once.) A head that was
    added fresh and saved untrained (config `untrained_mlm_head`) does not count."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FreshHeadWarning)
        model = load_masked_lm(checkpoint, fresh_head=True, role="Base model")
    fresh = any(issubclass(w.category, FreshHeadWarning) for w in caught)
    return not fresh and not getattr(model.config, "untrained_mlm_head", False)


class MaskedLMHead(torch.nn.Module):
    """The MLM head of a *ForMaskedLM model (its encoder dropped): hidden states (n, width) to
    vocabulary logits (n, vocab). A decoder tied to the input embeddings is not the head's own:
    it is re-tied to the shared transformer's embedding matrix, and neither stored nor listed
    among the head's parameters."""

    def __init__(self, mlm_model, tied: bool) -> None:
        super().__init__()
        self.prefix = mlm_model.base_model_prefix
        mlm_model._modules[self.prefix] = torch.nn.Identity()  # the shared transformer is the encoder
        self.mlm = mlm_model
        self.tied = tied
        self.mlm.eval()

    @classmethod
    def from_checkpoint(cls, checkpoint: Union[str, Path]) -> "MaskedLMHead":
        model = load_masked_lm(checkpoint)
        out_emb, in_emb = model.get_output_embeddings(), model.get_input_embeddings()
        return cls(model, tied=out_emb is not None and out_emb.weight is in_emb.weight)

    @classmethod
    def from_config(cls, config_json: str, tied: bool) -> "MaskedLMHead":
        """A head with fresh weights for an HF config (JSON), to load saved weights into."""
        from transformers import AutoConfig, AutoModelForMaskedLM

        config_dict = json.loads(config_json)
        config = AutoConfig.for_model(config_dict.pop("model_type"), **config_dict)
        return cls(AutoModelForMaskedLM.from_config(config), tied=tied)

    @property
    def config(self):
        return self.mlm.config

    @property
    def decoder_weight(self) -> torch.nn.Parameter:
        return self.mlm.get_output_embeddings().weight

    def tie_to(self, input_embeddings: torch.nn.Embedding) -> None:
        """Share the decoder matrix with the encoder's input embeddings (no copy)."""
        if self.tied:
            self.mlm.get_output_embeddings().weight = input_embeddings.weight
        self.to(input_embeddings.weight.device)

    def named_parameters(self, *args, **kwargs):
        # The tied decoder is the transformer's parameter: its optimizer step is the transformer's.
        decoder = self.decoder_weight if self.tied else None
        return ((name, p) for name, p in super().named_parameters(*args, **kwargs) if p is not decoder)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return head_logits(self.mlm, hidden)

    def head_bytes(self) -> bytes:
        """The head's own weights as safetensors: no encoder, no tied decoder, no aliases."""
        aliases = set(self._aliases())
        state = {
            key: value.detach().cpu().contiguous()
            for key, value in self.mlm.state_dict().items()
            if key not in aliases and not key.startswith(self.prefix + ".")
        }
        return save_safetensors(state)

    def load_head_bytes(self, data: bytes, source: str = "head weights") -> None:
        try:
            state: Dict[str, torch.Tensor] = load_safetensors(data)
        except Exception as e:  # safetensors raises its own error types
            raise SpacyMlmError(
                f"{source} is not a valid safetensors file ({e}). spacy-mlm never reads pickles: "
                "save the pipeline again with nlp.to_disk()."
            ) from None
        missing, unexpected = self.mlm.load_state_dict(state, strict=False)
        expected_missing = set(self._aliases())
        missing = [k for k in missing if not k.startswith(self.prefix + ".") and k not in expected_missing]
        if missing or unexpected:
            raise SpacyMlmError(
                f"{source} does not match the head config: missing {missing}, unexpected {unexpected}. "
                "The weights and config.json come from different models or were edited: save the pipeline "
                "again with nlp.to_disk()."
            )

    def _aliases(self) -> List[str]:
        """Keys of the state dict whose tensor is shared with an earlier key or is the tied decoder."""
        out, seen = [], set()
        skip = self.decoder_weight.data_ptr() if self.tied else None
        for key, value in self.mlm.state_dict().items():
            ptr = value.data_ptr()
            if ptr == skip or ptr in seen:
                out.append(key)
            seen.add(ptr)
        return out


def is_pipeline(model: str) -> bool:
    """A spaCy pipeline directory or installed package (else: an HF checkpoint directory or hub name)."""
    import spacy

    path = Path(model)
    return (path / "config.cfg").is_file() or (not path.exists() and spacy.util.is_package(model))


def load_fill_mask_pipeline(model: str, top_k: Optional[int] = None):
    """A spaCy pipeline with fill_mask from a pipeline dir/package or an HF checkpoint dir/name."""
    import spacy

    from .loading import first_line

    if top_k is not None and top_k < 1:
        raise SpacyMlmError(f"top_k = {top_k}: use 1 or more predictions per mask.")
    if is_pipeline(model):
        from .loading import load_pipeline

        nlp = load_pipeline(model)
        if "fill_mask" not in nlp.pipe_names:
            raise SpacyMlmError(
                f"The pipeline {model!r} has no fill_mask component, so it has no MLM head: add one "
                "(nlp.add_pipe('fill_mask'), nlp.initialize()) and save it again."
            )
    else:
        check_checkpoint(model, also="a spaCy pipeline directory (with config.cfg)")
        nlp = spacy.blank("en")
        nlp.add_pipe("transformer", config={"model": {"name": model}})
        nlp.add_pipe("fill_mask")
        try:
            nlp.initialize()
        except SpacyMlmError:
            raise
        except (OSError, ValueError, SafetensorError) as e:
            raise SpacyMlmError(
                f"Could not load the HF checkpoint {model!r}: {first_line(e, 600).rstrip('.')}. Check the path or hub "
                "name."
            ) from None
    if top_k is not None:
        nlp.get_pipe("fill_mask").top_k = top_k
    return nlp
