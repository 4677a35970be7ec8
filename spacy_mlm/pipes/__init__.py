"""spaCy components that read the shared `transformer` component's output."""

from ._fork import register_fork_handler
from .fill_mask import FillMask, make_fill_mask
from .ner import TrfEntityRecognizer, make_trf_ner
from .similarity import TrfSimilarity, make_trf_similarity, restore_vector_hooks
from .tagger_ner import TrfTaggerEntityRecognizer, make_trf_tagger_ner
from .textcat import (
    TrfMultiLabelTextCategorizer,
    TrfTextCategorizer,
    make_trf_textcat,
    make_trf_textcat_multilabel,
)

__all__ = [
    "FillMask",
    "TrfEntityRecognizer",
    "TrfMultiLabelTextCategorizer",
    "TrfSimilarity",
    "TrfTaggerEntityRecognizer",
    "TrfTextCategorizer",
    "make_fill_mask",
    "make_trf_ner",
    "make_trf_similarity",
    "make_trf_tagger_ner",
    "make_trf_textcat",
    "make_trf_textcat_multilabel",
    "restore_vector_hooks",
]

register_fork_handler()
