"""spaCy components that read the shared `transformer` component's output.

The names below load their module (and torch/transformers with it) on first access, so
`import spacy_mlm.pipes` stays cheap; spaCy imports a pipe's module through its
`spacy_factories` entry point when a pipeline uses it.
"""

from importlib import import_module
from typing import Any, Dict, List

_MODULE_OF: Dict[str, str] = {
    "FillMask": "fill_mask",
    "make_fill_mask": "fill_mask",
    "OovTargetWarning": "_fill_mask_lookup",
    "TrfEntityRecognizer": "ner",
    "make_trf_ner": "ner",
    "TrfSimilarity": "similarity",
    "make_trf_similarity": "similarity",
    "restore_vector_hooks": "_similarity_hooks",
    "TrfTaggerEntityRecognizer": "tagger_ner",
    "make_trf_tagger_ner": "tagger_ner",
    "TrfMultiLabelTextCategorizer": "textcat",
    "TrfTextCategorizer": "textcat",
    "make_trf_textcat": "textcat",
    "make_trf_textcat_multilabel": "textcat",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_MODULE_OF))
