"""Reduced-precision inference for the shared `transformer` component.

`spacy_mlm.PrecisionTransformerModel.v1` is spacy-transformers' TransformerModel.v3 with one more
setting, `dtype`, so a pipeline's config says how its encoder runs and `spacy.load` restores it:

- `fp32`: unchanged (trainable).
- `int8`: the encoder's Linear layers are dynamically quantized (torch `quantize_dynamic`, INT8
  weights with one scale per output channel, activations quantized per batch); the word-embedding
  matrix is stored as INT8 rows with one scale each and dequantized on load (the fill_mask
  decoder is tied to it). CPU only.
- `bf16` / `fp16`: the Linear weights are stored and kept in bf16 / fp16 and the forward pass runs
  under torch autocast; embeddings and LayerNorm stay fp32. bf16 on CPU and GPU, fp16 on GPU only.

The saved weights are the reduced ones (INT8 or 16-bit), and loading puts them back as they were
saved: a pipeline reloaded from disk predicts exactly what the one that was saved predicted.
A reduced-precision encoder is for inference: training it raises an error naming the fix
(train in fp32, then `spacy-mlm quantize`).
"""

import copy
import warnings
from contextlib import nullcontext
from typing import Callable, Iterable, List, Optional

import torch
from spacy.tokens import Doc
from spacy.util import SimpleFrozenDict, load_model_from_config, registry
from spacy_transformers.data_classes import FullTransformerBatch, HFObjects
from spacy_transformers.layers import TransformerModel
from spacy_transformers.layers.hf_shim import HFShim
from spacy_transformers.layers.transformer_model import set_pytorch_transformer
from thinc.api import Model, get_torch_default_device
from transformers import AutoModel

from .errors import SpacyMlmError
from .spans import ARCHITECTURE as SPANS_ARCHITECTURE
from .spans import bind_span_getter

DTYPES = ("fp32", "int8", "bf16", "fp16")
REDUCED = DTYPES[1:]
TORCH_DTYPE = {"bf16": torch.bfloat16, "fp16": torch.float16}
ARCHITECTURE = "spacy_mlm.PrecisionTransformerModel.v1"
NO_SETTINGS = SimpleFrozenDict()
# Linear layers an INT8 encoder keeps in fp32, by module-name suffix. Empty: with per-channel
# weights everywhere, NER F1, textcat accuracy and STS-B stayed within the bounds on MiniLM
# (BENCHMARKS.md). Of the layers `python -m bench precision recipes` leaves in fp32, only the FFN
# outputs moved sentence-vector cosine (0.990 -> 0.995), at +44% size: not worth the default.
INT8_FP32_MODULES: tuple = ()


def train_in_fp32_fix(dtype: str) -> str:
    return (
        f"The shared transformer runs in {dtype} (dtype = \"{dtype}\" in [components.transformer.model]), "
        "which is for inference only. Train (nlp.update, spacy train) the fp32 pipeline, then write a "
        f"{dtype} copy of it with: spacy-mlm quantize PIPELINE OUTPUT --dtype {dtype}"
    )


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise SpacyMlmError(
            f"Unknown transformer dtype {dtype!r} in [components.transformer.model]: use one of {', '.join(DTYPES)}."
        )
    return dtype


def check_device(dtype: str, device: torch.device) -> None:
    """Fail with the fix when `dtype` cannot run on `device`."""
    if dtype == "fp16" and device.type != "cuda":
        raise SpacyMlmError(
            "This pipeline's transformer is fp16, which runs on a GPU only: call spacy.require_gpu() before "
            "spacy.load(), or quantize the fp32 pipeline for CPU with --dtype bf16 or --dtype int8."
        )
    if dtype == "int8" and device.type != "cpu":
        raise SpacyMlmError(
            f"This pipeline's transformer is int8, which runs on CPU only (torch dynamic quantization), not on "
            f"{device}: load it without spacy.require_gpu(), or quantize the fp32 pipeline with --dtype bf16/fp16 "
            "for GPU."
        )


class Int8RowEmbedding(torch.nn.Embedding):
    """An embedding matrix saved as INT8 rows with one fp32 scale per row (symmetric, round to
    nearest) and used as the dequantized fp32 matrix, so that modules tied to `weight` (the
    fill_mask decoder) keep working. torch's quantized Embedding has no fp32 `weight` to tie to."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: Optional[int] = None) -> None:
        super().__init__(num_embeddings, embedding_dim, padding_idx=padding_idx)
        self.register_buffer("qweight", torch.zeros(num_embeddings, embedding_dim, dtype=torch.int8))
        self.register_buffer("scale", torch.ones(num_embeddings))
        self.weight.requires_grad_(False)

    @classmethod
    def from_float(cls, embedding: torch.nn.Embedding) -> "Int8RowEmbedding":
        weight = embedding.weight.detach().float()
        out = cls(*weight.shape, padding_idx=embedding.padding_idx).to(weight.device)
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        out.qweight.copy_(torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8))
        out.scale.copy_(scale)
        out._dequantize()
        return out

    def _dequantize(self) -> None:
        with torch.no_grad():
            self.weight.copy_(self.qweight.float() * self.scale[:, None])

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        # The INT8 rows and their scales only: the fp32 matrix is derived from them.
        for name in ("qweight", "scale"):
            buffer = getattr(self, name)
            destination[prefix + name] = buffer if keep_vars else buffer.detach()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        if prefix + "weight" in state_dict:
            error_msgs.append(f"{prefix}weight is an fp32 matrix, but this encoder is int8 (it reads qweight, scale)")
            return
        for name in ("qweight", "scale"):
            if prefix + name in state_dict:
                getattr(self, name).copy_(state_dict[prefix + name])
            elif strict:
                missing_keys.append(prefix + name)
        self._dequantize()


def _linear_names(model: torch.nn.Module) -> List[str]:
    return [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]


def reduce_precision(model: torch.nn.Module, dtype: str, fp32_modules: Iterable[str] = INT8_FP32_MODULES,
                     int8_embeddings: bool = True) -> torch.nn.Module:
    """Convert an fp32 HF encoder, in place, to the structure and values `dtype` saves and loads.
    int8 only: `fp32_modules` are name suffixes of Linear layers left in fp32; `int8_embeddings`
    stores the word embeddings as INT8 rows (the bench's recipe sweep varies both)."""
    check_dtype(dtype)
    model.eval()
    if dtype == "int8":
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        if int8_embeddings:
            model.set_input_embeddings(Int8RowEmbedding.from_float(model.get_input_embeddings()))
        fp32_modules = tuple(fp32_modules)
        spec = {name: per_channel_dynamic_qconfig for name in _linear_names(model)
                if not name.endswith(fp32_modules)}
        with warnings.catch_warnings():  # torch deprecates torch.ao for torchao, which is not a dependency
            warnings.simplefilter("ignore")
            quantize_dynamic(model, qconfig_spec=spec, dtype=torch.qint8, inplace=True)
    elif dtype in TORCH_DTYPE:
        for name in _linear_names(model):
            model.get_submodule(name).to(TORCH_DTYPE[dtype])
    for param in model.parameters():
        param.requires_grad_(dtype == "fp32")
    return model


class PrecisionAutoModel:
    """What HFShim.from_bytes builds the encoder with: AutoModel.from_config, converted to the
    reduced structure first, so that the saved reduced weights load into it unchanged."""

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype

    def from_config(self, config) -> torch.nn.Module:
        check_device(self.dtype, get_torch_default_device())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return reduce_precision(AutoModel.from_config(config), self.dtype)


class PrecisionHFShim(HFShim):
    """HFShim that runs the encoder in `dtype` and refuses to train a reduced-precision one."""

    def __init__(self, model: HFObjects, dtype: str, mixed_precision: bool = False,
                 grad_scaler_config: dict = NO_SETTINGS):
        super().__init__(model, mixed_precision=mixed_precision, grad_scaler_config=dict(grad_scaler_config),
                         model_cls=PrecisionAutoModel(dtype) if dtype != "fp32" else AutoModel)
        self.dtype = dtype

    def __call__(self, inputs, is_train):
        if is_train and self.dtype != "fp32":
            raise SpacyMlmError(train_in_fp32_fix(self.dtype))
        return super().__call__(inputs, is_train)

    def predict(self, inputs):
        if self.dtype == "fp32":
            return super().predict(inputs)
        device = self.device
        check_device(self.dtype, device)
        autocast = (torch.autocast(device.type, dtype=TORCH_DTYPE[self.dtype]) if self.dtype in TORCH_DTYPE
                    else nullcontext())
        self._model.eval()
        with torch.no_grad(), autocast:
            outputs = self._model(*inputs.args, **inputs.kwargs)
        # The pipes' heads and spaCy's arrays are fp32 (numpy has no bf16).
        for key, value in outputs.items():
            if torch.is_tensor(value) and value.is_floating_point():
                outputs[key] = value.float()
        return outputs


def _set_transformer(dtype: str) -> Callable:
    def set_transformer(model: TransformerModel, hf_model: HFObjects) -> None:
        """spacy-transformers' set_transformer (initialize from an HF checkpoint), then convert."""
        check_device(dtype, hf_model.transformer.device)
        reduce_precision(hf_model.transformer, dtype)
        set_pytorch_transformer(model, hf_model)

    return set_transformer


@registry.architectures(ARCHITECTURE)
def create_precision_transformer_model(
    name: str,
    get_spans: Callable[[Iterable[Doc]], list],
    tokenizer_config: dict = NO_SETTINGS,
    transformer_config: dict = NO_SETTINGS,
    mixed_precision: bool = False,
    grad_scaler_config: dict = NO_SETTINGS,
    dtype: str = "fp32",
) -> Model[List[Doc], FullTransformerBatch]:
    """spacy-transformers.TransformerModel.v3 whose encoder runs in `dtype` (fp32, int8, bf16, fp16).

    Initialized from an HF checkpoint, the encoder is converted after loading; loaded from a saved
    pipeline, it reads the reduced weights as saved. Only fp32 can be trained.
    """
    check_dtype(dtype)
    # Copies: spacy-transformers writes into these dicts.
    model = TransformerModel(name, get_spans, dict(tokenizer_config), dict(transformer_config), mixed_precision,
                             dict(grad_scaler_config))
    wrapper = model.layers[0]
    wrapper.shims[0] = PrecisionHFShim(wrapper.shims[0]._hfmodel, dtype, mixed_precision, grad_scaler_config)
    if dtype != "fp32":
        model.attrs["set_transformer"] = _set_transformer(dtype)
    model.attrs["dtype"] = dtype
    bind_span_getter(model)
    return model


def encoder_dtype(nlp, name: str = "transformer") -> str:
    """The dtype the pipeline's transformer runs in ("fp32" for spacy-transformers' own models)."""
    return nlp.get_pipe(name).model.attrs.get("dtype", "fp32")


def quantize_pipeline(nlp, dtype: str, transformer: str = "transformer"):
    """A copy of the fp32 pipeline `nlp` whose `transformer` runs in `dtype`: its config names
    spacy_mlm.PrecisionTransformerModel.v1 with `dtype`, its encoder holds the converted weights.
    Every other component is carried over unchanged."""
    check_dtype(dtype)
    if transformer not in nlp.pipe_names:
        raise SpacyMlmError(f"The pipeline has no '{transformer}' component to quantize (it has {nlp.pipe_names}).")
    current = encoder_dtype(nlp, transformer)
    if current != "fp32":
        raise SpacyMlmError(
            f"The '{transformer}' component is already {current}: quantize the fp32 pipeline it was made from."
        )
    config = nlp.config.copy()
    model_cfg = config["components"][transformer]["model"]
    if not str(model_cfg.get("@architectures", "")).startswith(("spacy-transformers.TransformerModel.",
                                                                 "spacy_mlm.PrecisionTransformerModel.",
                                                                 SPANS_ARCHITECTURE)):
        raise SpacyMlmError(
            f"[components.{transformer}.model] uses {model_cfg.get('@architectures')!r}; quantize supports "
            f"spacy-transformers.TransformerModel.v1-v3, {SPANS_ARCHITECTURE} and spacy_mlm.PrecisionTransformerModel.v1."
        )
    model_cfg["@architectures"] = ARCHITECTURE
    model_cfg["dtype"] = dtype
    check_device(dtype, get_torch_default_device())
    quantized = load_model_from_config(config, auto_fill=False, validate=True, meta=dict(nlp.meta))
    # The transformer first (fill_mask reads its tokenizer when loaded): a fresh TransformerModel
    # takes the HF encoder like initialize() does, converting it. Then everything else as it is.
    model = quantized.get_pipe(transformer).model
    model.attrs["set_transformer"](model, copy.deepcopy(nlp.get_pipe(transformer).model.layers[0].shims[0]._hfmodel))
    quantized.from_bytes(nlp.to_bytes(exclude=[transformer]), exclude=[transformer])
    return quantized
