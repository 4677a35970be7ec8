"""Windows as long as the checkpoint allows: `spacy_mlm.model_max_spans.v1`.

spacy-transformers' `strided_spans.v1` counts its window in spaCy tokens, and whatever a window
has beyond the tokenizer's `model_max_length` wordpieces is cut off silently (spacy-transformers'
truncate_oversize_splits). `model_max_spans.v1` counts wordpieces instead: each window holds as
many whole spaCy tokens as fit in `window` wordpieces (default: the tokenizer's model_max_length,
8,192 for ModernBERT), special tokens included, and consecutive windows overlap by `overlap`.
A doc that fits is one window, encoded exactly as HF encodes its whole text.

Counting wordpieces needs the transformer's tokenizer, which the span getter gets from the model
it serves: use it with `@architectures = "spacy_mlm.TransformerModel.v1"` (spacy-transformers'
TransformerModel.v3 with that one addition) or `spacy_mlm.PrecisionTransformerModel.v1`.
"""

from typing import Any, Callable, Dict, List, Optional

import numpy
import spacy_transformers.util  # noqa: F401  (creates spaCy's registry.span_getters)
from spacy.tokens import Doc, Span
from spacy.util import SimpleFrozenDict, registry

from .errors import SpacyMlmError

SPAN_GETTER = "spacy_mlm.model_max_spans.v1"
ARCHITECTURE = "spacy_mlm.TransformerModel.v1"
# Wordpieces kept free per window: a window's text is tokenized again on its own, and its first
# word may then split differently than inside the doc (byte-level BPE without its leading space).
SLACK = 4
# tokenizers without a model_max_length report a huge sentinel (transformers' VERY_LARGE_INTEGER).
NO_MAX_LENGTH = 10**9
NO_SETTINGS = SimpleFrozenDict()


class ModelMaxSpans:
    """Windows of whole spaCy tokens, each at most `window` wordpieces with its special tokens."""

    def __init__(self, window: Optional[int], overlap: float) -> None:
        if window is not None and window < 8:
            raise SpacyMlmError(f"{SPAN_GETTER}: window = {window} wordpieces is too small; use at least 8 or null "
                                "(the checkpoint's maximum).")
        if not 0.0 <= overlap < 1.0:
            raise SpacyMlmError(f"{SPAN_GETTER}: overlap = {overlap} must be in [0, 1) (a fraction of the window).")
        self.window = window
        self.overlap = overlap
        self.model = None

    def bind(self, model) -> None:
        """Count wordpieces with `model.tokenizer` (read on each call: it is loaded after the model is built)."""
        self.model = model

    def piece_budget(self, tokenizer) -> int:
        """Wordpieces per window for the spaCy tokens' own pieces (specials and slack taken off)."""
        model_max = tokenizer.model_max_length
        window = self.window if self.window is not None else model_max
        if window >= NO_MAX_LENGTH:
            raise SpacyMlmError(
                f"{SPAN_GETTER}: the tokenizer has no model_max_length: set `window` in "
                "[components.transformer.model.get_spans] (e.g. the checkpoint's max_position_embeddings)."
            )
        if window > model_max:
            raise SpacyMlmError(
                f"{SPAN_GETTER}: window = {window} exceeds the tokenizer's model_max_length ({model_max}), beyond "
                f"which spacy-transformers cuts wordpieces off: use window <= {model_max} or null."
            )
        return window - tokenizer.num_special_tokens_to_add(pair=False) - SLACK

    def __call__(self, docs: List[Doc]) -> List[List[Span]]:
        if self.model is None:
            raise SpacyMlmError(
                f"{SPAN_GETTER} counts wordpieces with the transformer's tokenizer: set [components.transformer.model] "
                f"@architectures = \"{ARCHITECTURE}\" (spacy-transformers.TransformerModel.v3 plus this)."
            )
        tokenizer = self.model.tokenizer
        budget = self.piece_budget(tokenizer)
        return [self.doc_spans(doc, tokenizer, budget) for doc in docs]

    def doc_spans(self, doc: Doc, tokenizer, budget: int) -> List[Span]:
        if len(doc) == 0:
            return []
        ends = numpy.cumsum(pieces_per_token(doc, tokenizer))
        starts = numpy.concatenate([[0], ends[:-1]])
        spans, start = [], 0
        while True:
            # The most tokens from `start` whose pieces fit the budget (at least one token).
            end = max(start + 1, int(numpy.searchsorted(ends, starts[start] + budget, side="right")))
            spans.append(doc[start:end])
            if end >= len(doc):
                return spans
            start += max(1, int((end - start) * (1.0 - self.overlap)))


def pieces_per_token(doc: Doc, tokenizer) -> numpy.ndarray:
    """How many wordpieces each spaCy token gets when the doc's text is tokenized whole: a piece
    belongs to the token its first character is in (whitespace before a token counts to it)."""
    if tokenizer.is_fast:
        offsets = tokenizer(doc.text, add_special_tokens=False, return_offsets_mapping=True,
                            verbose=False)["offset_mapping"]
        token_starts = numpy.asarray([token.idx for token in doc])
        piece_starts = numpy.asarray([start for start, _ in offsets], dtype=int)
        owner = numpy.clip(numpy.searchsorted(token_starts, piece_starts, side="right") - 1, 0, len(doc) - 1)
        return numpy.bincount(owner, minlength=len(doc))
    # Slow tokenizers have no offsets: each token on its own (counts a word-start marker per token).
    return numpy.asarray([len(tokenizer.tokenize(token.text)) for token in doc])


@registry.span_getters(SPAN_GETTER)
def create_model_max_spans(window: Optional[int] = None, overlap: float = 0.25) -> Callable[[List[Doc]], List[List[Span]]]:
    """Windows of at most `window` wordpieces, special tokens included (null: the tokenizer's
    model_max_length), overlapping by `overlap` of a window's spaCy tokens (0.25 as strided_spans'
    window 128 / stride 96). Needs @architectures = "spacy_mlm.TransformerModel.v1"."""
    return ModelMaxSpans(window, overlap)


def bind_span_getter(model) -> None:
    """Let a span getter that counts wordpieces (one with `bind`) read the model's tokenizer."""
    get_spans = model.attrs["get_spans"]
    if hasattr(get_spans, "bind"):
        get_spans.bind(model)


@registry.architectures(ARCHITECTURE)
def create_transformer_model(
    name: str,
    get_spans: Callable,
    tokenizer_config: Dict[str, Any] = NO_SETTINGS,
    transformer_config: Dict[str, Any] = NO_SETTINGS,
    mixed_precision: bool = False,
    grad_scaler_config: Dict[str, Any] = NO_SETTINGS,
):
    """spacy-transformers.TransformerModel.v3 whose span getter may count wordpieces
    (spacy_mlm.model_max_spans.v1)."""
    from spacy_transformers.layers import TransformerModel

    # Copies: spacy-transformers writes into these dicts.
    model = TransformerModel(name, get_spans, dict(tokenizer_config), dict(transformer_config), mixed_precision,
                             dict(grad_scaler_config))
    bind_span_getter(model)
    return model
