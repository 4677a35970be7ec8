"""The masked-LM head of an HF checkpoint, run on hidden states computed elsewhere.

spacy-transformers loads checkpoints with `AutoModel`, which drops the MLM head.
We load the same checkpoint with `AutoModelForMaskedLM`, keep the head and swap the
encoder for a stub that hands back hidden states we already have. The model's own
forward then computes the logits, so every architecture with an `AutoModelForMaskedLM`
class works and matches HF exactly. A decoder tied to the input embeddings is not
stored: it is re-tied to the shared transformer's embedding matrix.
"""

import json
from pathlib import Path
from typing import Dict, List, Optional, Union

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from transformers.modeling_outputs import BaseModelOutput

from .errors import SpacyMlmError
from .util import IN_PLACE_HINT, atomic_write_bytes, atomic_write_text, disk_writes

HEAD_WEIGHTS = "head.safetensors"
HEAD_CONFIG = "config.json"
HEAD_META = "head.json"


class _HiddenStates(torch.nn.Module):
    """Stands in for the encoder: returns the hidden states it was handed."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden: Optional[torch.Tensor] = None

    def forward(self, *args, **kwargs) -> BaseModelOutput:
        return BaseModelOutput(last_hidden_state=self.hidden)


class MaskedLMHead(torch.nn.Module):
    """Maps hidden states (n, width) to vocabulary logits (n, vocab)."""

    def __init__(self, mlm_model, tied: bool) -> None:
        super().__init__()
        self.prefix = mlm_model.base_model_prefix
        setattr(mlm_model, self.prefix, _HiddenStates())
        self.mlm = mlm_model
        self.tied = tied
        self.mlm.eval()

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

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        stub = getattr(self.mlm, self.prefix)
        stub.hidden = hidden.unsqueeze(0)
        try:
            return self.mlm(return_dict=True).logits[0]
        finally:
            stub.hidden = None

    # Serialization: the head's own weights as safetensors, never the tied decoder.
    def head_state(self) -> Dict[str, torch.Tensor]:
        state: Dict[str, torch.Tensor] = {}
        seen = set()
        skip = self.decoder_weight.data_ptr() if self.tied else None
        for key, value in self.mlm.state_dict().items():
            ptr = value.data_ptr()
            if key.startswith(self.prefix + ".") or ptr == skip or ptr in seen:
                continue
            seen.add(ptr)
            state[key] = value.detach().cpu().contiguous()
        return state

    def head_bytes(self) -> bytes:
        return save_safetensors(self.head_state())

    def to_disk(self, path: Union[str, Path]) -> None:
        path = Path(path)
        # Each file replaced atomically: a failed save never leaves a truncated head file.
        with disk_writes("the fill_mask head", path, IN_PLACE_HINT):
            path.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path / HEAD_WEIGHTS, self.head_bytes())
            atomic_write_text(path / HEAD_CONFIG, self.config.to_json_string())
            atomic_write_text(path / HEAD_META, json.dumps({"tied": self.tied}))

    @classmethod
    def from_disk(cls, path: Union[str, Path]) -> "MaskedLMHead":
        path = Path(path)
        for name in (HEAD_WEIGHTS, HEAD_CONFIG, HEAD_META):
            if not (path / name).is_file():
                raise SpacyMlmError(
                    f"{path / name} is missing: the fill_mask directory is incomplete. "
                    "Save the pipeline again with nlp.to_disk()."
                )
        meta = json.loads((path / HEAD_META).read_text(encoding="utf8"))
        return cls.from_parts(
            (path / HEAD_CONFIG).read_text(encoding="utf8"), bool(meta["tied"]),
            (path / HEAD_WEIGHTS).read_bytes(), source=str(path / HEAD_WEIGHTS),
        )

    @classmethod
    def from_parts(cls, config_json: str, tied: bool, weights: bytes, source: str = "head weights") -> "MaskedLMHead":
        """Rebuild a head from its config (JSON), tie flag and safetensors bytes."""
        from transformers import AutoConfig, AutoModelForMaskedLM

        config_dict = json.loads(config_json)
        config = AutoConfig.for_model(config_dict.pop("model_type"), **config_dict)
        head = cls(AutoModelForMaskedLM.from_config(config), tied=tied)
        head.load_head_bytes(weights, source=source)
        return head

    def load_head_bytes(self, data: bytes, source: str = "head weights") -> None:
        try:
            state = load_safetensors(data)
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


def check_checkpoint(checkpoint: Union[str, Path]) -> str:
    """Fail early, naming the path, when a local checkpoint is missing or not an HF checkpoint.
    Names that are not local paths are left to the hub (users have internet)."""
    name = str(checkpoint)
    local = Path(name).expanduser()
    if (name.startswith((".", "/", "~")) or local.exists()) and not (local / "config.json").is_file():
        hint = "the directory does not exist" if not local.exists() else "it has no config.json"
        raise SpacyMlmError(
            f"Checkpoint {name!r} is not an HF checkpoint ({hint}). Pass a directory written by "
            "save_pretrained() or `spacy-mlm init-model`, or a hub name."
        )
    return name


def load_mlm_head(checkpoint: Union[str, Path], *, require_trained: bool = True) -> MaskedLMHead:
    """Load the MLM head of an HF checkpoint (a local directory or a hub name).

    require_trained: raise if the checkpoint has no MLM head weights (the head would
    be random). With False, a fresh head is returned (for pretraining).
    """
    from transformers import AutoModelForMaskedLM

    name = check_checkpoint(checkpoint)
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(name, output_loading_info=True)
    except (OSError, ValueError) as e:
        raise SpacyMlmError(
            f"Could not load an MLM checkpoint from {name!r}: {e}. Check the path or hub name, and that its "
            "config.json names an architecture with a masked-LM class (BERT, RoBERTa, DistilBERT, ModernBERT, ...)."
        ) from None
    head_missing = [k for k in info["missing_keys"] if not k.startswith(model.base_model_prefix + ".")]
    if head_missing and require_trained:
        raise SpacyMlmError(
            f"Checkpoint {name!r} has no masked-LM head (missing weights: {', '.join(head_missing[:4])}). "
            "fill_mask needs a checkpoint with an MLM head: use one saved from an *ForMaskedLM model, "
            "or train a head with `spacy-mlm pretrain` (it adds one to head-less checkpoints)."
        )
    out_emb, in_emb = model.get_output_embeddings(), model.get_input_embeddings()
    tied = out_emb is not None and out_emb.weight is in_emb.weight
    return MaskedLMHead(model, tied=tied)
